import Foundation
import Formats
import GRDB

extension Store {
    /// An HF model folder for any entry (a delta applied to its base), materialised once under
    /// `cache/` — what merge recipes read when they name store entries.
    public func materialize(_ item: StoredItem) throws -> String {
        if item.entry.kind == .base { return try checkout(item) }
        let dest = (cacheDir as NSString).appendingPathComponent(item.entry.digest + "-hf")
        if FileManager.default.fileExists(atPath: dest) { return dest }
        let tmp = (tmpDir as NSString).appendingPathComponent("materialize-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try export(item, format: .hf, to: tmp)
        Self.fsyncDirectory(tmp)
        if rename(tmp, dest) != 0 && !FileManager.default.fileExists(atPath: dest) {
            throw StoreError.io(path: dest, reason: "cannot move the materialised model into place: \(String(cString: strerror(errno)))")
        }
        return dest
    }

    /// The base entry whose weights have content hash `sha`, if stored.
    public func base(contentSHA256 sha: String) throws -> StoredItem? {
        try db.read { db in
            try StoreEntry.filter(Column("kind") == "base" && Column("content_sha256") == sha).fetchOne(db).map { try item(db, id: $0.id!) }
        }
    }

    /// Stores a merge result (an HF folder written by the merge engine) as a `merged` entry:
    /// a lossless task vector over `base`, with the recipe and its parents as lineage.
    public func importMerged(_ dir: String, name: String, base: StoredItem, parents: [(item: StoredItem, weight: Double?)],
                             method: String, recipe: String, tags: [String] = []) throws -> ImportResult {
        var o = ImportOptions(name: name)
        o.force = true   // a merge of distant experts may move far from the base; that is the user's recipe
        var p = try pendingFineTuned(dir, base: base, options: o)
        p.kind = .merged
        p.metadata += [("method", .string(method)), ("recipe", .string(recipe))]
        p.parents.append((base, "base", nil))
        for (item, w) in parents where item.entry.id != base.entry.id { p.parents.append((item, "merge", w)) }
        return try commit(p, name: name, tags: tags, source: "alloy merge (\(method))")
    }
}
