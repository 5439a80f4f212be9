import EdgeLab

// Thin executable: the lab lives in the EdgeLab library (docs/modules.md).
await LabCommand.entry()
