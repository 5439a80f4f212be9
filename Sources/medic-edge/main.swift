import MedicEdge

// Thin executable: everything lives in the MedicEdge library.
await MedicEdgeCommand.entry()
