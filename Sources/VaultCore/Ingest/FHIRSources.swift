/// FHIR R4 Bulk Data NDJSON input (one resource per line).
struct FHIRNDJSONSource: RecordSource {
    let paths: [String]
    func read(into sink: IngestSink) throws {
        throw VaultError(.usage, "fhir-ndjson ingest is not available yet")
    }
}

/// FHIR R4 Bundle input: a folder of Bundle JSON files or a .tgz of them.
struct FHIRBundleSource: RecordSource {
    let paths: [String]
    func read(into sink: IngestSink) throws {
        throw VaultError(.usage, "fhir-bundle ingest is not available yet")
    }
}
