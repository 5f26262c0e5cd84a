import Crypto
import Foundation
import Formats

/// What `alloy verify` found.
public struct VerifyReport: Sendable {
    /// Damage: a blob missing, with the wrong hash, or failing its own checks; a cache folder
    /// whose files differ from its completeness marker (something other than a crash changed
    /// it). Non-empty ⇒ failure.
    public var problems: [String] = []
    /// Harmless leftovers that `gc` removes: unreferenced blobs, temp files and folders from
    /// interrupted writes, builds and deletions, cache folders of removed entries.
    public var leftovers: [String] = []
    /// Cache folders that are not complete (interrupted, or written by an older alloy without
    /// a completeness marker). Not damage: the next command that needs one rebuilds it, and
    /// `gc` removes them.
    public var incompleteCaches: [String] = []
    public var entries = 0
    public var blobs = 0
    public var bytes = 0
    /// Complete cache folders, re-hashed against their markers.
    public var caches = 0
    public var ok: Bool { problems.isEmpty }
}

extension Store {
    /// Removes names (and the entry once it has none). A base with deltas cannot be removed.
    /// Blobs and cache folders stay until `gc`.
    public func remove(_ ref: String) throws -> StoredItem {
        try withLock(exclusive: true) { try catalog.remove(ref) }
    }

    /// Re-hashes every blob the catalog names and opens and fully decodes it (chunk CRCs and
    /// content hash); reports blobs and temp files the catalog does not name; checks every
    /// cache folder against its completeness marker, re-hashing its files.
    public func verify(progress: ((Int, Int) -> Void)? = nil) throws -> VerifyReport {
        try withLock(exclusive: false) {
            var report = VerifyReport()
            let rows = try catalog.blobUses()
            report.entries = try catalog.entryCount()
            if let integrity = try catalog.integrityProblem() {
                report.problems.append("catalog: SQLite integrity check failed: \(integrity)")
            }
            var referenced = Set<String>()
            for (k, r) in rows.enumerated() {
                progress?(k, rows.count)
                referenced.insert(r.sha256)
                let path = blobs.path(r.sha256)
                guard let data = FileManager.default.contents(atPath: path) else {
                    report.problems.append("\(r.ref): \(r.role) blob \(r.sha256.prefix(12))… is missing (\(path))"); continue
                }
                report.blobs += 1; report.bytes += data.count
                if data.count != r.bytes { report.problems.append("\(r.ref): \(r.role) blob has \(data.count) bytes, the catalog says \(r.bytes)") }
                let actual = BlobStore.hex(SHA256.hash(data: data))
                if actual != r.sha256 { report.problems.append("\(r.ref): \(r.role) blob \(r.sha256.prefix(12))… hashes to \(actual.prefix(12))… — it was modified"); continue }
                do {
                    let f = try AlloyFile(path: path)
                    try f.verify()
                    if r.role == "weights", let c = f.contentHash, c != r.contentSHA256, r.contentSHA256 != "" {
                        report.problems.append("\(r.ref): weights content hash \(c.prefix(12))… differs from the catalog's")
                    }
                } catch {
                    report.problems.append("\(r.ref): \(r.role) blob fails its checks: \(error)")
                }
            }
            progress?(rows.count, rows.count)
            for f in blobs.allFiles() where !referenced.contains(f.sha) {
                report.leftovers.append(f.sha.isEmpty ? "temporary file \(f.path)" : "unreferenced blob \(f.sha.prefix(12))… (\(f.path))")
            }
            let digests = try catalog.digests()
            for key in cache.keys() {
                let folder = cache.path(key), digest = CheckoutCache.digest(ofKey: key)
                guard digests.contains(digest) else { report.leftovers.append("cache folder of a removed entry \(folder)"); continue }
                switch cache.state(folder, digest: digest, deep: true) {
                case .complete, .missing: report.caches += 1
                case .incomplete(let why):
                    report.incompleteCaches.append("\(folder): \(why) — rebuilt by the next command that needs it")
                case .damaged(let why):
                    report.problems.append("cache folder \(folder): \(why) — it was modified; `alloy gc` removes it and the next command rebuilds it")
                }
            }
            for t in cache.temporaries() {
                report.leftovers.append(t.live ? "temporary \(t.path) (in use by a running alloy)" : "temporary \(t.path) (from an interrupted command)")
            }
            return report
        }
    }

    /// What `gc` freed.
    public struct GCResult: Sendable {
        /// Unreferenced blobs and temp files deleted.
        public var files = 0
        /// Cache folders and leftover temp folders deleted.
        public var folders = 0
        public var bytes = 0
    }

    /// Deletes unreferenced blobs, leftovers in `tmp/` (not those of running processes) and the
    /// checkout cache; counts files and folders apart. Cache folders are moved out of `cache/`
    /// by rename before they are deleted, so a gc killed at any moment leaves no partial folder
    /// there.
    public func gc() throws -> GCResult {
        try withLock(exclusive: true) {
            var r = GCResult()
            let referenced = try catalog.referencedBlobs()
            let fm = FileManager.default
            for f in blobs.allFiles() where !referenced.contains(f.sha) {
                let size = ((try? fm.attributesOfItem(atPath: f.path))?[.size] as? Int) ?? 0
                if (try? fm.removeItem(atPath: f.path)) != nil { r.files += 1; r.bytes += size }
            }
            let cleared = try cache.clear()
            r.folders += cleared.folders; r.bytes += cleared.bytes
            for t in cache.temporaries() where !t.live {
                let size = CheckoutCache.size(t.path)
                if cache.removeTree(t.path) { r.folders += 1; r.bytes += size }
            }
            return r
        }
    }
}
