import Foundation
import Formats
import GRDB

/// A checkpoint store: content-addressed `.alloy` blobs plus a SQLite catalog (GRDB).
///
/// Layout of the store folder:
///
///     catalog.sqlite          entries, names, blobs per entry, lineage
///     blobs/ab/<sha256>.alloy content-addressed by the SHA-256 of the file's bytes
///     tmp/                    blobs being written (fsync'ed, then renamed into blobs/)
///     cache/<digest>/         materialised folders for the runtime (derived; `gc` empties it)
///     lock                    flock(2): exclusive for writers, shared for readers
///
/// Writes are ordered so that a crash at any moment leaves a consistent store: blobs first
/// (temp file, fsync, rename, directory fsync), the catalog transaction last. A crash before
/// the commit leaves only unreferenced blobs, which `verify` reports and `gc` deletes.
public final class Store {
    public let root: String
    let db: DatabaseQueue

    /// `$ALLOY_STORE`, else `~/.alloy`.
    public static var defaultRoot: String {
        if let s = ProcessInfo.processInfo.environment["ALLOY_STORE"], !s.isEmpty { return s }
        return (NSHomeDirectory() as NSString).appendingPathComponent(".alloy")
    }

    /// Opens (creating when `create`) the store at `root`.
    public init(root: String, create: Bool = true) throws {
        self.root = root
        let fm = FileManager.default
        let catalog = (root as NSString).appendingPathComponent("catalog.sqlite")
        if !fm.fileExists(atPath: catalog) && !create {
            throw StoreError.io(path: root, reason: "no store here (no catalog.sqlite); import something first or pass --store")
        }
        do {
            for d in ["", "blobs", "tmp", "cache"] {
                try fm.createDirectory(atPath: (root as NSString).appendingPathComponent(d), withIntermediateDirectories: true)
            }
        } catch { throw StoreError.io(path: root, reason: "cannot create the store folder: \(error.localizedDescription)") }
        var config = Configuration()
        config.busyMode = .timeout(60)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            db = try DatabaseQueue(path: catalog, configuration: config)
            try Self.migrator.migrate(db)
        } catch let e as DatabaseError {
            throw StoreError.io(path: catalog, reason: "the catalog cannot be opened: \(e.message ?? e.description)")
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

    var blobsDir: String { (root as NSString).appendingPathComponent("blobs") }
    var tmpDir: String { (root as NSString).appendingPathComponent("tmp") }
    var cacheDir: String { (root as NSString).appendingPathComponent("cache") }

    /// Runs `body` holding the store lock (exclusive for writers). Waiting is announced on
    /// standard error; the lock dies with the process, so a killed writer never wedges the store.
    public func withLock<T>(exclusive: Bool, _ body: () throws -> T) throws -> T {
        let path = (root as NSString).appendingPathComponent("lock")
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError.io(path: path, reason: "cannot open the lock file: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let op = exclusive ? LOCK_EX : LOCK_SH
        if flock(fd, op | LOCK_NB) != 0 {
            if errno != EWOULDBLOCK { throw StoreError.io(path: path, reason: "cannot lock: \(String(cString: strerror(errno)))") }
            FileHandle.standardError.write(Data("alloy: waiting for another alloy process to finish with the store \(root)\n".utf8))
            while flock(fd, op) != 0 {
                if errno != EINTR { throw StoreError.io(path: path, reason: "cannot lock: \(String(cString: strerror(errno)))") }
            }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
