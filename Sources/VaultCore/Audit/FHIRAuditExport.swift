import Foundation

/// Maps audit entries to FHIR R4 AuditEvent resources (hl7.org/fhir/R4/auditevent.html).
///
/// - `type`: a DICOM audit event id (DCM): 110100 Application Activity, 110101 Audit Log
///   Used, 110107 Import, 110110 Patient Record, 110113 Security Alert.
/// - `subtype`: the ShardVault action, in the code system `urn:shardvault:audit-action`.
/// - `action`: C, R, U or E; `recorded`: the entry's time; `outcome`: 0 success,
///   4 denied (minor failure), 8 error (serious failure), with `outcomeDesc` the reason.
/// - `purposeOfEvent`: the HL7 PurposeOfUse code (v3-ActReason).
/// - `agent`: the principal, the requestor; `source.observer`: the vault id.
/// - `entity`: the dataset, shard, job, result, key or patient pseudonym concerned, and the
///   audit entry itself (sequence number and leaf hash), so an exported event can be traced
///   back to the signed log.
public enum FHIRAuditExport {
    static let dcm = "http://dicom.nema.org/resources/ontology/DCM"
    static let actionSystem = "urn:shardvault:audit-action"
    static let entityType = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
    static let securitySource = "http://terminology.hl7.org/CodeSystem/security-source-type"

    static func type(of action: String, outcome: AuditOutcome) -> (code: String, display: String) {
        if outcome == .denied { return ("110113", "Security Alert") }
        if action.hasPrefix("audit.") { return ("110101", "Audit Log Used") }
        switch action {
        case AuditAction.ingest, AuditAction.shardWrite, AuditAction.manifestCommit: return ("110107", "Import")
        case AuditAction.shardDecrypt, AuditAction.verify, AuditAction.shardVerify, AuditAction.datasetsRead: return ("110110", "Patient Record")
        default: return ("110100", "Application Activity")
        }
    }

    static func actionCode(_ action: String) -> String {
        switch action {
        case AuditAction.vaultInit, AuditAction.ingest, AuditAction.shardWrite, AuditAction.manifestCommit, AuditAction.keyCreate: return "C"
        case AuditAction.auditExport: return "E"
        case AuditAction.auditArchive: return "U"
        default: return action.hasPrefix("key.") && action != AuditAction.keyUse ? "U" : "R"
        }
    }

    /// The AuditEvent for one entry, as a JSON object.
    public static func resource(for scanned: ScannedEntry, vaultId: String) -> [String: Any] {
        let e = scanned.entry
        let type = type(of: e.action, outcome: e.outcome)
        var event: [String: Any] = [
            "resourceType": "AuditEvent",
            "id": "sv-\(vaultId.prefix(16))-\(e.seq)",
            "type": ["system": dcm, "code": type.code, "display": type.display],
            "subtype": [["system": actionSystem, "code": e.action]],
            "action": actionCode(e.action),
            "recorded": e.time,
            "outcome": e.outcome == .success ? "0" : e.outcome == .denied ? "4" : "8",
            // A purpose outside the value set (a denied request) is kept as text only.
            "purposeOfEvent": [PurposeOfUse.codes.contains(e.purpose) ? ["coding": [["system": PurposeOfUse.system, "code": e.purpose]]] : ["text": e.purpose]],
            "agent": [[
                "type": ["coding": [["system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient"]]],
                "who": ["identifier": ["system": "urn:shardvault:principal", "value": e.principal]],
                "requestor": true,
            ] as [String: Any]],
            "source": [
                "site": "shardvault",
                "observer": ["identifier": ["system": "urn:shardvault:vault", "value": vaultId]],
                "type": [["system": securitySource, "code": "4", "display": "Application Server"]],
            ] as [String: Any],
        ]
        if let reason = e.reason { event["outcomeDesc"] = reason }
        var entities: [[String: Any]] = []
        func entity(_ system: String, _ value: String, _ details: [(String, String)] = []) {
            var item: [String: Any] = [
                "what": ["identifier": ["system": system, "value": value]],
                "type": ["system": entityType, "code": "2", "display": "System Object"],
            ]
            if !details.isEmpty { item["detail"] = details.map { ["type": $0.0, "valueString": $0.1] } }
            entities.append(item)
        }
        let r = e.resource
        if let dataset = r.dataset {
            var details: [(String, String)] = []
            if let g = r.generation { details.append(("generation", String(g))) }
            if let shard = r.shard { details.append(("shard", shard)) }
            if let sha = r.sha256 { details.append(("sha256", sha)) }
            entity("urn:shardvault:dataset", dataset, details)
        }
        if let job = r.job { entity("urn:shardvault:job", job) }
        if let result = r.result { entity("urn:shardvault:result", result) }
        if let key = r.key { entity("urn:shardvault:key", key, r.keyVersion.map { [("version", String($0))] } ?? []) }
        if let patient = r.patient {
            entities.append([
                "what": ["identifier": ["system": "urn:shardvault:patient-pseudonym", "value": patient]],
                "type": ["system": entityType, "code": "1", "display": "Person"],
            ])
        }
        entities.append([
            "what": ["identifier": ["system": "urn:shardvault:audit-entry", "value": String(e.seq)]],
            "type": ["system": entityType, "code": "2", "display": "System Object"],
            "detail": [["type": "leafHash", "valueString": Hex.encode(scanned.leafHash)], ["type": "request", "valueString": e.request]],
        ])
        event["entity"] = entities
        return event
    }

    /// One NDJSON line.
    public static func line(for scanned: ScannedEntry, vaultId: String) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: resource(for: scanned, vaultId: vaultId), options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
