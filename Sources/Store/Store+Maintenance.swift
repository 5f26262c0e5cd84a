import Crypto
import Foundation
import Formats
import GRDB

/// What `alloy verify` found.
public struct VerifyReport: Sendable {
    /// Damage: a blob missing, with the wrong hash, or failing its own checks. Non-empty ⇒ failure.
    public var problems: [String] = []
    /// Harmless leftovers (unreferenced blobs, temp files from interrupted writes) that `gc` removes.
    public var leftovers: [String] = []
    public var entries = 0
    public var blobs = 0
    public var bytes = 0
    public var ok: Bool { problems.isEmpty }
}

extension Store {
    /// Removes names (and the entry once it has none). A base with deltas cannot be removed.
    /// Blobs stay until `gc`.
    public func remove(_ ref: String) throws -> StoredItem {
        try withLock(exclusive: true) {
            let item = try resolve(ref)
            try db.write { db in
                let deps = try dependents(db, of: item.entry.id!)
                if !deps.isEmpty { throw StoreError.inUse(ref: ref, dependents: deps) }
                _ = try StoreEntry.deleteOne(db, key: item.entry.id!)
            }
            return item
        }
    }

    /// Re-hashes every blob the catalog names and opens and fully decodes it (chunk CRCs and
    /// content hash); reports blobs and temp files the catalog does not name.
    public func verify(progress: ((Int, Int) -> Void)? = nil) throws -> VerifyReport {
        try withLock(exclusive: false) {
            var report = VerifyReport()
            let rows = try db.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT b.role, b.sha256, b.bytes, e.digest, e.kind, e.content_sha256,
                           COALESCE((SELECT MIN(n.name) FROM name n WHERE n.entry_id = e.id), substr(e.digest, 1, 12)) AS ref
                    FROM blob b JOIN entry e ON e.id = b.entry_id ORDER BY e.id, b.role
                    """)
            }
            report.entries = try db.read { try StoreEntry.fetchCount($0) }
            if let integrity = try db.read({ try String.fetchOne($0, sql: "PRAGMA integrity_check") }), integrity != "ok" {
                report.problems.append("catalog: SQLite integrity check failed: \(integrity)")
            }
            var referenced = Set<String>()
            for (k, r) in rows.enumerated() {
                progress?(k, rows.count)
                let sha: String = r["sha256"], role: String = r["role"], ref: String = r["ref"], size: Int = r["bytes"]
                referenced.insert(sha)
                let path = blobPath(sha)
                guard let data = FileManager.default.contents(atPath: path) else {
                    report.problems.append("\(ref): \(role) blob \(sha.prefix(12))… is missing (\(path))"); continue
                }
                report.blobs += 1; report.bytes += data.count
                if data.count != size { report.problems.append("\(ref): \(role) blob has \(data.count) bytes, the catalog says \(size)") }
                let actual = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
                if actual != sha { report.problems.append("\(ref): \(role) blob \(sha.prefix(12))… hashes to \(actual.prefix(12))… — it was modified") ; continue }
                do {
                    let f = try AlloyFile(path: path)
                    try f.verify()
                    if role == "weights", let c = f.contentHash, c != (r["content_sha256"] as String), (r["content_sha256"] as String) != "" {
                        report.problems.append("\(ref): weights content hash \(c.prefix(12))… differs from the catalog's")
                    }
                } catch {
                    report.problems.append("\(ref): \(role) blob fails its checks: \(error)")
                }
            }
            progress?(rows.count, rows.count)
            for f in blobFiles() where !referenced.contains(f.sha) {
                report.leftovers.append(f.sha.isEmpty ? "temporary file \(f.path)" : "unreferenced blob \(f.sha.prefix(12))… (\(f.path))")
            }
            return report
        }
    }

    /// Every file under blobs/: (sha, path); temp files have an empty sha.
    func blobFiles() -> [(sha: String, path: String)] {
        var out: [(String, String)] = []
        let fm = FileManager.default
        for d in (try? fm.contentsOfDirectory(atPath: blobsDir))?.sorted() ?? [] {
            let dir = (blobsDir as NSString).appendingPathComponent(d)
            for f in (try? fm.contentsOfDirectory(atPath: dir))?.sorted() ?? [] {
                let p = (dir as NSString).appendingPathComponent(f)
                if f.hasSuffix(".alloy"), f.count == 64 + 6 { out.append((String(f.prefix(64)), p)) } else { out.append(("", p)) }
            }
        }
        return out
    }

    /// Deletes unreferenced blobs, temp files and the checkout cache. Returns (files, bytes) freed.
    public func gc() throws -> (files: Int, bytes: Int) {
        try withLock(exclusive: true) {
            let referenced = Set(try db.read { try String.fetchAll($0, sql: "SELECT sha256 FROM blob") })
            let fm = FileManager.default
            var files = 0, bytes = 0
            func drop(_ p: String) {
                bytes += ((try? fm.attributesOfItem(atPath: p))?[.size] as? Int) ?? 0
                if (try? fm.removeItem(atPath: p)) != nil { files += 1 }
            }
            for f in blobFiles() where !referenced.contains(f.sha) { drop(f.path) }
            for dir in [tmpDir, cacheDir] {
                for f in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] { drop((dir as NSString).appendingPathComponent(f)) }
            }
            return (files, bytes)
        }
    }
}
