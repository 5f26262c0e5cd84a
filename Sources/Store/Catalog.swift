import Foundation
import Formats
import GRDB

/// The store's catalog: entries, their names, blobs and lineage in SQLite (GRDB). Owns every
/// SQL statement of the store; knows nothing about files.
final class Catalog: Sendable {
    let path: String
    /// The store folder, for error messages.
    let storeRoot: String
    private let db: DatabaseQueue

    /// Opens (creating) the catalog at `path` and migrates it to the current schema.
    init(path: String, storeRoot: String) throws {
        self.path = path
        self.storeRoot = storeRoot
        var config = Configuration()
        config.busyMode = .timeout(60)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            db = try DatabaseQueue(path: path, configuration: config)
            try Self.migrator.migrate(db)
        } catch let e as DatabaseError {
            throw StoreError.io(path: path, reason: "the catalog cannot be opened: \(e.message ?? e.description)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "entry") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("digest", .text).notNull().unique()
                t.column("kind", .text).notNull()
                t.column("base_id", .integer).references("entry", onDelete: .restrict)
                t.column("base_sha256", .text)
                t.column("content_sha256", .text).notNull()
                t.column("task", .text)
                t.column("tags", .text).notNull()
                t.column("parameters", .integer).notNull()
                t.column("raw_bytes", .integer).notNull()
                t.column("stored_bytes", .integer).notNull()
                t.column("metadata", .text).notNull()
                t.column("source", .text).notNull()
                t.column("created_at", .text).notNull()
            }
            try db.create(table: "name") { t in
                t.primaryKey("name", .text)
                t.column("entry_id", .integer).notNull().indexed().references("entry", onDelete: .cascade)
            }
            try db.create(table: "blob") { t in
                t.column("entry_id", .integer).notNull().references("entry", onDelete: .cascade)
                t.column("role", .text).notNull()
                t.column("sha256", .text).notNull().indexed()
                t.column("bytes", .integer).notNull()
                t.primaryKey(["entry_id", "role"])
            }
            try db.create(table: "lineage") { t in
                t.column("entry_id", .integer).notNull().references("entry", onDelete: .cascade)
                // Lineage outlives its parents: the name and digest stay when a parent is removed.
                t.column("parent_id", .integer).references("entry", onDelete: .setNull)
                t.column("parent_digest", .text).notNull()
                t.column("parent_name", .text).notNull()
                t.column("relation", .text).notNull()
                t.column("weight", .double)
            }
        }
        return m
    }

    /// The row id of a fetched entry. Rows read from the table always have one; an entry
    /// without one is an unsaved record passed in by mistake, reported rather than trapped.
    static func id(_ e: StoreEntry) throws -> Int64 {
        guard let id = e.id else { throw StoreError.io(path: e.shortDigest, reason: "catalog entry has no row id (not saved)") }
        return id
    }

    // MARK: lookups

    /// Resolves a name, a digest or a unique digest prefix (≥ 6 hex digits).
    func resolve(_ ref: String) throws -> StoredItem {
        try db.read { db in
            // Cached statements: a server resolves an adapter on its first request, and building
            // and preparing each query's SQL cost more than running it.
            if let id = try Int64.fetchOne(db.cachedStatement(sql: "SELECT entry_id FROM name WHERE name = ?"), arguments: [ref]) {
                return try item(db, id: id)
            }
            let hex = ref.hasPrefix("sha256:") ? String(ref.dropFirst(7)) : ref
            if hex.count >= 6, hex.allSatisfy(\.isHexDigit) {
                let rows = try StoreEntry.filter(sql: "digest LIKE ?", arguments: [hex.lowercased() + "%"]).fetchAll(db)
                if rows.count == 1 { return try item(db, id: try Self.id(rows[0])) }
                if rows.count > 1 { throw StoreError.ambiguous(ref: ref, matches: rows.map(\.shortDigest)) }
            }
            throw StoreError.notFound(ref: ref, store: storeRoot)
        }
    }

    /// Every entry, newest first, optionally filtered by kind and base entry id.
    func list(kind: EntryKind?, baseID: Int64?) throws -> [StoredItem] {
        try db.read { db in
            var q = StoreEntry.order(Column("id").desc)
            if let kind { q = q.filter(Column("kind") == kind.rawValue) }
            if let baseID { q = q.filter(Column("base_id") == baseID) }
            return try q.fetchAll(db).map { try item(db, id: try Self.id($0)) }
        }
    }

    func item(id: Int64) throws -> StoredItem {
        try db.read { try item($0, id: id) }
    }

    /// The base entry whose weights have content hash `sha`, if stored.
    func base(contentSHA256 sha: String) throws -> StoredItem? {
        try db.read { db in
            try StoreEntry.filter(Column("kind") == EntryKind.base.rawValue && Column("content_sha256") == sha)
                .fetchOne(db).map { try item(db, id: try Self.id($0)) }
        }
    }

    private func item(_ db: Database, id: Int64) throws -> StoredItem {
        guard let e = try StoreEntry.fetchOne(db.cachedStatement(sql: "SELECT * FROM entry WHERE id = ?"), arguments: [id]) else {
            throw StoreError.notFound(ref: "#\(id)", store: storeRoot)
        }
        let names = try String.fetchAll(db.cachedStatement(sql: "SELECT name FROM name WHERE entry_id = ? ORDER BY name"), arguments: [id])
        var blobs: [String: (String, Int)] = [:]
        for b in try BlobRow.fetchAll(db.cachedStatement(sql: "SELECT * FROM blob WHERE entry_id = ?"), arguments: [id]) { blobs[b.role] = (b.sha256, b.bytes) }
        let parents = try Row.fetchAll(db.cachedStatement(sql: """
            SELECT l.relation, l.weight,
                   COALESCE((SELECT MIN(n.name) FROM name n WHERE n.entry_id = l.parent_id), l.parent_name || ' (removed)') AS pname
            FROM lineage l WHERE l.entry_id = ? ORDER BY l.rowid
            """), arguments: [id]).map { (name: $0["pname"] as String, relation: $0["relation"] as String, weight: $0["weight"] as Double?) }
        return StoredItem(entry: e, names: names, blobs: blobs.mapValues { (sha256: $0.0, bytes: $0.1) }, parents: parents)
    }

    /// Names (or digests) of the entries whose base is `id`.
    private func dependents(_ db: Database, of id: Int64) throws -> [String] {
        try StoreEntry.filter(Column("base_id") == id).fetchAll(db).map { e in
            try NameRow.filter(Column("entry_id") == Self.id(e)).order(Column("name")).fetchOne(db)?.name ?? e.shortDigest
        }
    }

    // MARK: writes

    /// What one new entry records beside its blobs.
    struct NewEntry {
        var digest: String
        var kind: EntryKind
        var baseID: Int64?
        var baseSHA256: String?
        var contentSHA256: String
        var task: String?
        var tags: [String]
        var parameters: Int
        var rawBytes: Int
        var metadataJSON: String
        var source: String
        var blobs: [(role: String, sha256: String, bytes: Int)]
        var parents: [(item: StoredItem, relation: String, weight: Double?)]
    }

    /// Records `e` under `name` in one transaction. Content already stored (same digest) only
    /// gains the name; a name owned by other content is refused. Returns the entry and whether
    /// it existed.
    func record(_ e: NewEntry, name: String) throws -> (item: StoredItem, existed: Bool) {
        let (id, existed): (Int64, Bool) = try db.write { db in
            if let owner = try NameRow.fetchOne(db, key: name), let o = try StoreEntry.fetchOne(db, key: owner.entryID), o.digest != e.digest {
                throw StoreError.nameTaken(name: name, existing: "\(o.kind.rawValue) \(o.shortDigest)")
            }
            if let old = try StoreEntry.filter(Column("digest") == e.digest).fetchOne(db) {
                let oldID = try Self.id(old)
                if try NameRow.fetchOne(db, key: name) == nil { try NameRow(name: name, entryID: oldID).insert(db) }
                return (oldID, true)
            }
            var row = StoreEntry(id: nil, digest: e.digest, kind: e.kind, baseID: e.baseID, baseSHA256: e.baseSHA256,
                                 contentSHA256: e.contentSHA256, task: e.task,
                                 tags: JSONValue.array(e.tags.map { .string($0) }).serialized(), parameters: e.parameters,
                                 rawBytes: e.rawBytes, storedBytes: e.blobs.reduce(0) { $0 + $1.bytes }, metadata: e.metadataJSON,
                                 source: e.source, createdAt: ISO8601DateFormatter().string(from: Date()))
            try row.insert(db)
            let newID = try Self.id(row)
            try NameRow(name: name, entryID: newID).insert(db)
            for b in e.blobs { try BlobRow(entryID: newID, role: b.role, sha256: b.sha256, bytes: b.bytes).insert(db) }
            for par in e.parents {
                try LineageRow(entryID: newID, parentID: par.item.entry.id, parentDigest: par.item.entry.digest, parentName: par.item.ref,
                               relation: par.relation, weight: par.weight).insert(db)
            }
            return (newID, false)
        }
        return (try item(id: id), existed)
    }

    /// Deletes the entry `ref` names (names, blob rows and its own lineage cascade); refuses
    /// a base that other entries depend on.
    func remove(_ ref: String) throws -> StoredItem {
        let item = try resolve(ref)
        let id = try Self.id(item.entry)
        try db.write { db in
            let deps = try dependents(db, of: id)
            if !deps.isEmpty { throw StoreError.inUse(ref: ref, dependents: deps) }
            _ = try StoreEntry.deleteOne(db, key: id)
        }
        return item
    }

    // MARK: maintenance

    /// One blob row as `verify` checks it.
    struct BlobUse {
        let ref: String
        let role: String
        let sha256: String
        let bytes: Int
        let contentSHA256: String
    }

    /// Every blob row with its entry's ref and content hash, by entry then role.
    func blobUses() throws -> [BlobUse] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT b.role, b.sha256, b.bytes, e.content_sha256,
                       COALESCE((SELECT MIN(n.name) FROM name n WHERE n.entry_id = e.id), substr(e.digest, 1, 12)) AS ref
                FROM blob b JOIN entry e ON e.id = b.entry_id ORDER BY e.id, b.role
                """).map { BlobUse(ref: $0["ref"], role: $0["role"], sha256: $0["sha256"], bytes: $0["bytes"], contentSHA256: $0["content_sha256"]) }
        }
    }

    /// The SHA-256 of every blob some entry uses.
    func referencedBlobs() throws -> Set<String> {
        Set(try db.read { try String.fetchAll($0, sql: "SELECT sha256 FROM blob") })
    }

    /// The digest of every entry (names of `cache/` folders that may be in use).
    func digests() throws -> Set<String> {
        Set(try db.read { try String.fetchAll($0, sql: "SELECT digest FROM entry") })
    }

    func entryCount() throws -> Int { try db.read { try StoreEntry.fetchCount($0) } }

    /// SQLite's own check; nil when it says "ok".
    func integrityProblem() throws -> String? {
        let r = try db.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
        return r == "ok" ? nil : (r ?? "no answer")
    }
}
