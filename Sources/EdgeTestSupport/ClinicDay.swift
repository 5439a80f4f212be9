import CloudStub
import EdgeCore
import Foundation

/// A small clinic day for tests and the demo: patients with known QR tokens, professionals,
/// services, rooms (one linked to the installer's key `sala-2`, plus the vaccine fridge) and
/// appointments placed relative to `now`.
public struct ClinicDay: Sendable {
    public struct Patient: Sendable {
        public let id, name, phone, qr: String
        public init(id: String, name: String, phone: String, qr: String) { self.id = id; self.name = name; self.phone = phone; self.qr = qr }
    }
    public let now: Date
    public var patients: [Patient]
    public var appointments: [JSONValue] = []
    public let drErick = "7a1e0000-0000-4000-8000-0000000000e1"
    public let draAna = "7a1e0000-0000-4000-8000-0000000000a2"
    public let acupuntura = "5e7f0000-0000-4000-8000-000000000001"
    public let nutricao = "5e7f0000-0000-4000-8000-000000000002"
    public let sala2 = "400e0000-0000-4000-8000-000000000002"
    public let sala3 = "400e0000-0000-4000-8000-000000000003"

    public static func iso(_ d: Date) -> String { Time.rfc3339(d) }

    public init(now: Date = Date()) {
        self.now = now
        patients = [
            Patient(
                id: "9a000000-0000-4000-8000-000000000001", name: "Maria Aparecida Souza", phone: "+5511990000001", qr: "medic-qr:v1:maria:7f3c9e21b4"
            ),
            Patient(id: "9a000000-0000-4000-8000-000000000002", name: "João Pedro Lima", phone: "+5511990000002", qr: "medic-qr:v1:joao:1b2c3d4e5f"),
            Patient(
                id: "9a000000-0000-4000-8000-000000000003", name: "Beatriz Santos", phone: "+5511990000003", qr: "medic-qr:v1:beatriz:99aa88bb77"),
            Patient(
                id: "9a000000-0000-4000-8000-000000000004", name: "Carlos Eduardo Nunes", phone: "+5511990000004", qr: "medic-qr:v1:carlos:0c0c0c0c0c"
            ),
        ]
    }

    public var maria: Patient { patients[0] }
    public var joao: Patient { patients[1] }
    public var beatriz: Patient { patients[2] }
    public var carlos: Patient { patients[3] }

    /// Adds an appointment starting `startMinutes` from now; returns its id.
    @discardableResult
    public mutating func book(
        _ p: Patient, startMinutes: Double, minutes: Double = 50, status: String = "confirmed",
        professional: String? = nil, room: String? = nil, service: String? = nil,
        id: String? = nil, createdDaysAgo: Double = 1
    ) -> String {
        let aid = id ?? "a0000000-0000-4000-8000-\(String(format: "%012d", appointments.count + 1))"
        let start = now.addingTimeInterval(startMinutes * 60)
        appointments.append(
            .object([
                "id": .string(aid), "patient_id": .string(p.id), "professional_id": .string(professional ?? drErick),
                "service_id": .string(service ?? acupuntura), "room_id": .string(room ?? sala2),
                "scheduled_start": .string(ClinicDay.iso(start)), "scheduled_end": .string(ClinicDay.iso(start.addingTimeInterval(minutes * 60))),
                "status": .string(status), "created_at": .string(ClinicDay.iso(now.addingTimeInterval(-createdDaysAgo * 86400))), "updated_at": .null,
            ]))
        return aid
    }

    public func patientRow(_ p: Patient) -> JSONValue {
        .object([
            "id": .string(p.id), "name": .string(p.name), "phone": .string(p.phone), "qr_code_hash": .string(QRCode.hash(p.qr)),
            "cpf": .string("000.000.000-00"), "created_at": .string(ClinicDay.iso(now.addingTimeInterval(-86400 * 30))), "updated_at": .null,
        ])
    }

    public var seed: CloudStubSeed {
        let created = JSONValue.string(ClinicDay.iso(now.addingTimeInterval(-86400 * 60)))
        return CloudStubSeed(
            eventKey: "test-key", directusToken: "test-token",
            collections: [
                "patients": patients.map(patientRow),
                "professionals": [
                    .object(["id": .string(drErick), "name": "Dr. Erick", "created_at": created, "updated_at": .null]),
                    .object(["id": .string(draAna), "name": "Dra. Ana", "created_at": created, "updated_at": .null]),
                ],
                "services": [
                    .object(["id": .string(acupuntura), "name": "Acupuntura", "created_at": created, "updated_at": .null]),
                    .object(["id": .string(nutricao), "name": "Nutrição", "created_at": created, "updated_at": .null]),
                ],
                "rooms": [
                    .object([
                        "id": .string(sala2), "name": "Sala 2", "iot_config": .object(["mqtt_room_id": "sala-2"]), "created_at": created,
                        "updated_at": .null,
                    ]),
                    .object([
                        "id": .string(sala3), "name": "Sala 3", "iot_config": .object(["mqtt_room_id": "sala-3"]), "created_at": created,
                        "updated_at": .null,
                    ]),
                ],
                "appointments": appointments,
            ])
    }
}

extension JSONValue {
    /// The same document as the appliance's `JSON`.
    public var asJSON: JSON { (try? JSON.parse(serialized())) ?? .null }
}
