import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// What `audit archive` moved.
public struct AuditArchiveReport: Codable, Sendable {
    public var segments: [String]
    public var checkpoints: [String]
    /// First entry still in `audit/`.
    public var firstRetainedSeq: Int
    public var destination: String
}

extension AuditLog {
    /// Moves every segment but the one being written, and the checkpoints older than what
    /// remains, to `destination`, and writes `audit/base.json` so that the retained log
    /// still verifies against any checkpoint at or after its first entry. Nothing is
    /// rewritten: archived files are copied byte for byte and fsynced before the originals
    /// are removed. The whole log is checked first; a damaged log is never archived.
    public func archive(to destination: String) throws -> AuditArchiveReport {
        try locked {
            let head = try synchronise()
            try Self.refuseSameFolder(destination, layout.audit)
            try Self.refuseSameFolder(destination + "/" + AuditFiles.checkpointsFolder, layout.audit + "/" + AuditFiles.checkpointsFolder)
            let reader = AuditLogReader(directory: layout.audit, macKey: key)
            let segments = try AuditFiles.segments(in: layout.audit).filter { $0.name != head.segment }
            guard let retainedFrom = try AuditFiles.segments(in: layout.audit).first(where: { $0.name == head.segment })?.firstSeq else {
                throw VaultError(.dataError, "the segment being written is missing", location: layout.audit + "/" + head.segment)
            }
            var report = AuditArchiveReport(segments: [], checkpoints: [], firstRetainedSeq: retainedFrom, destination: destination)
            guard !segments.isEmpty else { return report }

            // The chain and the frontier at the first retained entry, from a full check.
            let summary: AuditLogReader.Summary
            do { summary = try reader.scan(frontiersAt: [retainedFrom]) } catch let problem as AuditProblem {
                throw VaultError(.dataError, "the log does not verify, so it is not archived: \(problem)")
            }
            // Normally the frontier at the first retained entry comes from the scan; when an
            // interrupted archive already wrote the base for it, the base is kept.
            let existing = try reader.base()
            let atBase: (frontier: MerkleFrontier, lastLeaf: [UInt8])
            if let found = summary.frontiers[retainedFrom] {
                atBase = found
            } else if let existing, existing.firstSeq == retainedFrom, let leaf = Hex.decode(existing.prevLeaf),
                      let frontier = MerkleFrontier(size: existing.firstSeq, peaks: existing.peaks.compactMap(Hex.decode)) {
                atBase = (frontier, leaf)
            } else {
                throw VaultError(.dataError, "the log has no entry \(retainedFrom - 1) before the segment being written", location: layout.audit)
            }

            try FileIO.makeDirectory(destination)
            try FileIO.makeDirectory(destination + "/" + AuditFiles.checkpointsFolder)
            for segment in segments {
                try Self.copyDurably(layout.audit + "/" + segment.name, to: destination + "/" + segment.name)
                report.segments.append(segment.name)
            }
            let checkpointFolder = layout.audit + "/" + AuditFiles.checkpointsFolder
            let oldCheckpoints = try FileIO.listDirectory(checkpointFolder).filter {
                $0.hasSuffix(".note") && (Int($0.dropLast(5)) ?? Int.max) < retainedFrom
            }.sorted()
            for name in oldCheckpoints {
                try Self.copyDurably(checkpointFolder + "/" + name, to: destination + "/" + AuditFiles.checkpointsFolder + "/" + name)
                report.checkpoints.append(name)
            }
            try FileIO.fsyncDirectory(destination + "/" + AuditFiles.checkpointsFolder)
            try FileIO.fsyncDirectory(destination)

            let base = AuditBase(firstSeq: retainedFrom, prevLeaf: Hex.encode(atBase.lastLeaf), peaks: atBase.frontier.peaks.map(Hex.encode))
            try FileIO.writeAtomically(try key.authenticatedFile(base, label: AuditBase.label), to: layout.audit + "/" + AuditBase.fileName)
            // The saved state must name the segment that stays before anything is removed.
            try saveState(head)
            for name in report.segments { unlink(layout.audit + "/" + name) }
            for name in report.checkpoints { unlink(checkpointFolder + "/" + name) }
            try FileIO.fsyncDirectory(checkpointFolder)
            try FileIO.fsyncDirectory(layout.audit)
            return report
        }
    }

    /// Refuses an archive destination that is the folder being archived.
    static func refuseSameFolder(_ destination: String, _ source: String) throws {
        var a = stat(), b = stat()
        guard stat(destination, &a) == 0, stat(source, &b) == 0 else { return }
        if a.st_dev == b.st_dev && a.st_ino == b.st_ino {
            throw VaultError(.usage, "the archive destination is the audit folder itself; archive to another folder", location: destination)
        }
    }

    /// Copies a file and fsyncs the copy. An existing identical copy is kept; a different
    /// one is an error.
    static func copyDurably(_ source: String, to target: String) throws {
        let bytes = try FileIO.readAll(source)
        if FileIO.exists(target) {
            guard try FileIO.readAll(target) == bytes else {
                throw VaultError(.cannotCreate, "a different file with this name is already in the archive", location: target)
            }
            return
        }
        try FileIO.writeAtomically(bytes, to: target, mode: 0o640)
    }
}
