#if canImport(Glibc)
import Glibc
#endif

/// FHIR R4 Bulk Data NDJSON input (one resource per line): files, or folders of `*.ndjson`
/// files. Each line's `resourceType` decides how it is read, whatever the file is called.
/// Resource types the model does not hold are counted and reported per file as not
/// ingested; so is a bulk export's `log.ndjson`. Errors name the file, the line (1-based)
/// and the field.
struct FHIRNDJSONSource: RecordSource {
    let paths: [String]

    func read(into sink: IngestSink) throws {
        let files = try Self.inputFiles(paths)
        let tape = JSONTape()
        // Medication resources only serve to resolve medicationReference; index them first.
        // A bulk export file holds one resource type, so its first line tells.
        var references = FHIRMapper.References()
        for file in files where !Self.isExportLog(file) {
            guard try Self.firstResourceType(file, tape) == "Medication" else { continue }
            try Self.forEachResource(file, tape) { resource, type, _ in
                if type == "Medication", let id = resource["id"]?.string, let code = FHIRMapper.medicationCode(ofMedication: resource) {
                    references.medications["Medication/" + id] = code
                }
            }
        }

        let mapper = FHIRMapper(pseudonym: sink.pseudonym(of:))
        var records: [ClinicalRecord] = []
        for file in files {
            if Self.isExportLog(file) {
                sink.noteSkipped(file + " (bulk export log, not resources)")
                continue
            }
            var skipped: [String: Int] = [:]
            try Self.forEachResource(file, tape) { resource, type, line in
                guard FHIRMapper.ingestedTypes.contains(type) else {
                    skipped[type, default: 0] += 1
                    return
                }
                records.removeAll(keepingCapacity: true)
                do {
                    try mapper.map(resource, type: type, references: references, into: &records)
                } catch let e as FHIRFieldError {
                    throw VaultError(.dataError, "\(type): \(e.message)", location: VaultError.at(file, line: line, field: e.field))
                }
                let source = sink.registerSource(path: file, patientField: FHIRMapper.patientField(of: type))
                for record in records { try sink.emit(record, source: source, line: line) }
            }
            if !skipped.isEmpty { sink.noteSkipped(file + " (" + FHIRSkipped.describe(skipped) + ")") }
            sink.noteInputBytes(FileIO.size(file))
        }
    }

    /// The files to read: each path given, or the `*.ndjson` files of a folder, in name order.
    static func inputFiles(_ paths: [String]) throws -> [String] {
        var files: [String] = []
        for path in paths {
            guard FileIO.isDirectory(path) else {
                files.append(path)
                continue
            }
            let names = try FileIO.listDirectory(path).filter { $0.hasSuffix(".ndjson") }
            guard !names.isEmpty else { throw VaultError(.noInput, "no .ndjson files in folder", location: path) }
            files += names.map { path + "/" + $0 }
        }
        return files
    }

    /// The log a bulk export client writes beside the data (events, not FHIR resources).
    static func isExportLog(_ path: String) -> Bool {
        path == "log.ndjson" || path.hasSuffix("/log.ndjson")
    }

    /// Calls `body` with each resource of an NDJSON file, its type and its line number.
    /// Blank lines are skipped.
    static func forEachResource(_ path: String, _ tape: JSONTape,
                                _ body: (JSONTape.Value, String, Int) throws -> Void) throws {
        let reader = try LineReader(path: path)
        try reader.forEachLine { text, line in
            guard let resource = try resource(text, line: line, path: path, tape) else { return true }
            guard let type = resource["resourceType"]?.string, !type.isEmpty else {
                throw VaultError(.dataError, "not a FHIR resource (no resourceType)",
                                 location: VaultError.at(path, line: line, field: "resourceType"))
            }
            try body(resource, type, line)
            return true
        }
    }

    /// The resourceType of the first resource in a file, or nil.
    static func firstResourceType(_ path: String, _ tape: JSONTape) throws -> String? {
        var type: String?
        let reader = try LineReader(path: path)
        try reader.forEachLine { text, line in
            guard let resource = try resource(text, line: line, path: path, tape) else { return true }
            type = resource["resourceType"]?.string
            return false
        }
        return type
    }

    /// Parses one line; nil for a blank line.
    private static func resource(_ text: UnsafeRawBufferPointer, line: Int, path: String, _ tape: JSONTape) throws -> JSONTape.Value? {
        var text = text
        if line == 1, text.starts(with: [0xEF, 0xBB, 0xBF]) { text = UnsafeRawBufferPointer(rebasing: text[3...]) } // BOM
        guard text.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { return nil }
        do {
            try tape.parse(text)
        } catch let e as JSONTape.SyntaxError {
            throw VaultError(.dataError, "not valid JSON: \(e.message)", location: VaultError.at(path, line: line))
        }
        guard tape.root.isObject else {
            throw VaultError(.dataError, "not a JSON object (NDJSON holds one resource per line)",
                             location: VaultError.at(path, line: line))
        }
        return tape.root
    }
}

/// FHIR R4 Bundle input (transaction, collection or any other bundle type: `entry[].resource`
/// is read): Bundle JSON files, folders of `*.json` files, and `.tgz`/`.tar.gz` archives of
/// them, decompressed in memory (up to `maximumArchiveSize`), never to disk. Bundles without
/// a Patient (Synthea's hospitalInformation and practitionerInformation bundles) only add to
/// the not-ingested counts.
///
/// Errors name the file (`archive.tgz:member.json` inside an archive); bundles are not
/// line-oriented, so the number after the file is the entry index (0-based), and fields are
/// named from the entry, e.g. `entry[12].resource.subject.reference`. Errors found later in
/// ingest (a record whose patient is not in the input) name `resource.subject.reference`
/// with the same entry index.
struct FHIRBundleSource: RecordSource {
    let paths: [String]

    /// Largest decompressed archive accepted: the whole tar is held in memory (TarReader reads
    /// from memory). Larger inputs can be given as folders of bundles, read one at a time.
    static let maximumArchiveSize = 4 << 30

    func read(into sink: IngestSink) throws {
        let reader = BundleReader(sink: sink)
        for path in paths {
            var skipped: [String: Int] = [:]
            if FileIO.isDirectory(path) {
                let names = try FileIO.listDirectory(path).filter { $0.hasSuffix(".json") || Self.isArchive($0) }
                guard !names.isEmpty else { throw VaultError(.noInput, "no .json bundles or .tgz archives in folder", location: path) }
                for name in names {
                    let file = path + "/" + name
                    if Self.isArchive(name) {
                        try readArchive(file, reader, sink, &skipped)
                    } else {
                        try reader.read(try FileIO.readAll(file)[...], name: file, skipped: &skipped)
                        sink.noteInputBytes(FileIO.size(file))
                    }
                }
            } else if Self.isArchive(path) {
                try readArchive(path, reader, sink, &skipped)
            } else {
                try reader.read(try FileIO.readAll(path)[...], name: path, skipped: &skipped)
                sink.noteInputBytes(FileIO.size(path))
            }
            if !skipped.isEmpty { sink.noteSkipped(path + " (" + FHIRSkipped.describe(skipped) + ")") }
        }
    }

    static func isArchive(_ name: String) -> Bool { name.hasSuffix(".tgz") || name.hasSuffix(".tar.gz") }

    private func readArchive(_ path: String, _ reader: BundleReader, _ sink: IngestSink, _ skipped: inout [String: Int]) throws {
        let compressed = try FileIO.readAll(path)
        let tar: [UInt8]
        do {
            tar = try Inflate.gzip(compressed, maximumOutputSize: Self.maximumArchiveSize)
        } catch let e as DecompressionError {
            throw VaultError(.dataError, "cannot decompress the archive: \(e)", location: path)
        }
        var archive = TarReader(tar)
        while true {
            let next: TarEntry?
            do {
                next = try archive.next()
            } catch let e as TarError {
                throw VaultError(.dataError, "not a valid tar archive: \(e)", location: path)
            }
            guard let entry = next else { break }
            if entry.isDirectory { continue }
            if entry.name.hasSuffix(".json") {
                try reader.read(entry.contents, name: path + ":" + entry.name, skipped: &skipped)
            } else {
                // Counted, not named: member names (Synthea's carry patient names) go into the report.
                skipped["archive files not ending in .json", default: 0] += 1
            }
        }
        sink.noteInputBytes(compressed.count)
    }
}

/// Reads one Bundle after another into an `IngestSink`.
final class BundleReader {
    private let sink: IngestSink
    private let tape = JSONTape(capacity: 1 << 22)
    private let mapper: FHIRMapper
    private var records: [ClinicalRecord] = []

    init(sink: IngestSink) {
        self.sink = sink
        mapper = FHIRMapper(pseudonym: sink.pseudonym(of:))
    }

    /// Reads the Bundle JSON `bytes`; `name` is the file named in errors.
    func read(_ bytes: ArraySlice<UInt8>, name: String, skipped: inout [String: Int]) throws {
        do {
            try bytes.withUnsafeBytes { try tape.parse($0) }
        } catch let e as JSONTape.SyntaxError {
            let line = bytes.prefix(e.offset).reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
            throw VaultError(.dataError, "not valid JSON: \(e.message) (text line \(line))", location: name)
        }
        let root = tape.root
        guard root.isObject, root["resourceType"]?.string == "Bundle" else {
            throw VaultError(.dataError, "not a FHIR Bundle", location: VaultError.at(name, field: "resourceType"))
        }
        guard let entryList = root["entry"] else { return } // an empty bundle
        let entries = entryList.elements

        // References to resolve inside this bundle: its Patients' and Medications' fullUrls.
        var references = FHIRMapper.References()
        for entry in entries {
            guard let resource = entry["resource"], let type = resource["resourceType"]?.string else { continue }
            let fullUrl = entry["fullUrl"]?.string
            if type == "Patient", let fullUrl {
                let id = resource["id"]?.string ?? (fullUrl.hasPrefix("urn:uuid:") ? String(fullUrl.dropFirst(9)) : nil)
                if let id { references.patients[fullUrl] = id }
            } else if type == "Medication", let code = FHIRMapper.medicationCode(ofMedication: resource) {
                if let fullUrl { references.medications[fullUrl] = code }
                if let id = resource["id"]?.string { references.medications["Medication/" + id] = code }
            }
        }

        for (index, entry) in entries.enumerated() {
            let prefix = "entry[\(index)].resource"
            guard let resource = entry["resource"] else {
                skipped["entries without a resource", default: 0] += 1
                continue
            }
            guard resource.isObject, let type = resource["resourceType"]?.string, !type.isEmpty else {
                throw VaultError(.dataError, "not a FHIR resource (no resourceType)",
                                 location: VaultError.at(name, line: index, field: prefix + ".resourceType"))
            }
            guard FHIRMapper.ingestedTypes.contains(type) else {
                skipped[type, default: 0] += 1
                continue
            }
            records.removeAll(keepingCapacity: true)
            do {
                try mapper.map(resource, type: type, fullUrl: entry["fullUrl"]?.string, references: references, into: &records)
            } catch let e as FHIRFieldError {
                throw VaultError(.dataError, "\(type): \(e.message)",
                                 location: VaultError.at(name, line: index, field: prefix + "." + e.field))
            }
            let source = sink.registerSource(path: name, patientField: "resource." + FHIRMapper.patientField(of: type))
            for record in records { try sink.emit(record, source: source, line: index) }
        }
    }
}

/// Counts of resources that were not ingested, as report text.
enum FHIRSkipped {
    /// "12 Claim, 3 Device": by count, largest first, then by name.
    static func describe(_ counts: [String: Int]) -> String {
        counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }
}

/// Reads a file line by line in blocks, so memory stays bounded by the longest line.
final class LineReader {
    let path: String
    private let fd: Int32
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int

    init(path: String, blockSize: Int = 4 << 20) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError.system(errno == ENOENT ? .noInput : .ioError, "cannot open input file", path: path, errno: errno)
        }
        capacity = blockSize
        buffer = .allocate(byteCount: blockSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        close(fd)
    }

    /// Calls `body` with each line (without its `\n`) and its 1-based number, until it
    /// returns false. A last line without a newline counts.
    func forEachLine(_ body: (UnsafeRawBufferPointer, Int) throws -> Bool) throws {
        var start = 0
        var end = 0
        var line = 0
        var eof = false
        while true {
            if start < end, let newline = memchr(buffer + start, 0x0A, end - start) {
                let stop = buffer.distance(to: newline)
                line += 1
                guard try body(UnsafeRawBufferPointer(start: buffer + start, count: stop - start), line) else { return }
                start = stop + 1
                continue
            }
            if eof {
                if start < end {
                    line += 1
                    _ = try body(UnsafeRawBufferPointer(start: buffer + start, count: end - start), line)
                }
                return
            }
            // Keep the partial line, then read more; grow when one line fills the buffer.
            if start > 0 {
                if end > start { buffer.copyMemory(from: buffer + start, byteCount: end - start) }
                end -= start
                start = 0
            }
            if end == capacity {
                let larger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 16)
                larger.copyMemory(from: buffer, byteCount: end)
                buffer.deallocate()
                buffer = larger
                capacity *= 2
            }
            let n = read(fd, buffer + end, capacity - end)
            if n < 0 {
                if errno == EINTR { continue }
                throw VaultError.system(.ioError, "read failed", path: path, errno: errno)
            }
            if n == 0 { eof = true } else { end += n }
        }
    }
}
