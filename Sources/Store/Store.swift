import Foundation
import Formats
import Merging
import Tensors

/// A checkpoint store: content-addressed `.alloy` blobs plus a SQLite catalog (GRDB).
///
/// Layout of the store folder:
///
///     catalog.sqlite          entries, names, blobs per entry, lineage
///     blobs/ab/<sha256>.alloy content-addressed by the SHA-256 of the file's bytes
///     tmp/                    cache folders being built or deleted (`gc` removes leftovers)
///     cache/<digest>[-hf]/    derived folders for the runtime, each with a completeness marker
///     lock                    flock(2): exclusive for writers, shared for readers
///     cache.lock              flock(2): held for the moment a cache folder is renamed in or out
///
/// Writes are ordered so that a crash at any moment leaves a consistent store: blobs first
/// (temp file, fsync, rename, directory fsync), the catalog transaction last; cache folders
/// are published and removed by rename (`CheckoutCache`). A crash before the commit leaves
/// only unreferenced blobs or temp folders, which `verify` reports and `gc` deletes.
///
/// `Store` is the facade the commands use; the work is done by one owner each: `Catalog`
/// (records, refs, lineage), `BlobStore` (blobs), `CheckoutCache` (cache folders), `Importer`
/// and `Exporter`. Delta statistics live in Merging (`DeltaStatistics`); the store feeds them.
public final class Store: Sendable {
    public let root: String
    let catalog: Catalog
    let blobs: BlobStore
    let cache: CheckoutCache
    /// Called (with the lock file's path) when a command has to wait for another process's
    /// lock on the store; the library itself never prints.
    public let onLockWait: @Sendable (String) -> Void

    /// `$ALLOY_STORE`, else `~/.alloy`.
    public static var defaultRoot: String {
        if let s = ProcessInfo.processInfo.environment["ALLOY_STORE"], !s.isEmpty { return s }
        return (NSHomeDirectory() as NSString).appendingPathComponent(".alloy")
    }

    /// Opens (creating when `create`) the store at `root`. `onLockWait` is called when a
    /// command waits for another process holding the store.
    public init(root: String, create: Bool = true, onLockWait: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.root = root
        self.onLockWait = onLockWait
        let fm = FileManager.default
        func join(_ p: String) -> String { (root as NSString).appendingPathComponent(p) }
        let catalogPath = join("catalog.sqlite")
        if !fm.fileExists(atPath: catalogPath) && !create {
            throw StoreError.io(path: root, reason: "no store here (no catalog.sqlite); import something first or pass --store")
        }
        do {
            for d in ["", "blobs", "tmp", "cache"] {
                try fm.createDirectory(atPath: join(d), withIntermediateDirectories: true)
            }
        } catch { throw StoreError.io(path: root, reason: "cannot create the store folder: \(error.localizedDescription)") }
        catalog = try Catalog(path: catalogPath, storeRoot: root)
        blobs = BlobStore(dir: join("blobs"))
        cache = CheckoutCache(dir: join("cache"), tmpDir: join("tmp"), lockPath: join("cache.lock"), blobs: blobs)
    }

    var blobsDir: String { blobs.dir }
    var tmpDir: String { cache.tmpDir }
    var cacheDir: String { cache.dir }

    /// Runs `body` holding the store lock (exclusive for writers, shared for readers). When
    /// another process holds it, `onWait` is called once with the lock file's path before
    /// waiting. The lock dies with the process, so a killed writer never wedges the store.
    public func withLock<T>(exclusive: Bool, onWait: ((String) -> Void)? = nil, _ body: () throws -> T) throws -> T {
        let lock = try FileSystem.Lock(path: (root as NSString).appendingPathComponent("lock"), exclusive: exclusive,
                                       onWait: onWait ?? onLockWait)
        defer { lock.unlock() }
        return try body()
    }

    var importer: Importer {
        Importer(catalog: catalog, blobs: blobs, cache: cache, exclusive: { body in try self.withLock(exclusive: true, body) })
    }

    var exporter: Exporter { Exporter(catalog: catalog, blobs: blobs, cache: cache) }

    // MARK: catalog

    /// Resolves a name, a digest or a unique digest prefix (≥ 6 hex digits).
    public func resolve(_ ref: String) throws -> StoredItem { try catalog.resolve(ref) }

    /// Every entry, newest first, optionally filtered by kind and base.
    public func list(kind: EntryKind? = nil, base: String? = nil) throws -> [StoredItem] {
        let baseID = try base.map { try Catalog.id(try resolve($0).entry) }
        return try catalog.list(kind: kind, baseID: baseID)
    }

    /// The base entry of a delta.
    public func base(of item: StoredItem) throws -> StoredItem { try exporter.base(of: item) }

    /// The base entry whose weights have content hash `sha`, if stored.
    public func base(contentSHA256 sha: String) throws -> StoredItem? { try catalog.base(contentSHA256: sha) }

    // MARK: blobs

    /// The path of the blob with SHA-256 `sha`.
    public func blobPath(_ sha: String) -> String { blobs.path(sha) }

    /// Opens the `role` blob of `item`, mapping failures to errors that name the entry.
    public func open(_ item: StoredItem, role: String) throws -> AlloyFile { try blobs.open(item, role: role) }

    /// The files of an entry's `files` blob, by relative path.
    public func files(of item: StoredItem) throws -> [(String, [UInt8])] { try blobs.files(of: item) }

    /// The bytes of the entry's card.json, if it has a `card` blob.
    public func card(of item: StoredItem) throws -> [UInt8]? { try blobs.card(of: item) }

    /// Every file under blobs/: (sha, path); temp files have an empty sha.
    func blobFiles() -> [(sha: String, path: String)] { blobs.allFiles() }

    // MARK: import and export

    /// Imports `source` (an HF model directory or safetensors file, a fine-tuned model with
    /// `options.base`, a PEFT LoRA folder, a `.alloy` file, or an expert folder holding
    /// `delta.alloy` and `head.safetensors`) under `options.name`.
    public func importSource(_ source: String, options: ImportOptions) throws -> ImportResult {
        try importer.importSource(source, options: options)
    }

    /// Stores a merge result (an HF folder written by the merge engine) as a `merged` entry:
    /// a lossless task vector over `base`, with the recipe and its parents as lineage.
    public func importMerged(_ dir: String, name: String, base: StoredItem, parents: [(item: StoredItem, weight: Double?)],
                             method: String, recipe: String, tags: [String] = []) throws -> ImportResult {
        try importer.importMerged(dir, name: name, base: base, parents: parents, method: method, recipe: recipe, tags: tags)
    }

    /// Writes `item` to `out` in `format`; returns the files written.
    @discardableResult
    public func export(_ item: StoredItem, format: ExportFormat, to out: String) throws -> [String] {
        try exporter.export(item, format: format, to: out)
    }

    /// The delta of `item` as dense F32 values per base tensor name (LoRA: scale·B·A), in the
    /// base's tensor order; tensors the delta does not touch are absent.
    public func denseDelta(_ item: StoredItem) throws -> [(name: String, values: [Float], shape: Shape)] {
        try exporter.denseDelta(item)
    }

    // MARK: cache

    /// A folder the runtime can read for `item` (`cache/<digest>`), built once and published
    /// atomically; an incomplete or damaged one is rebuilt.
    public func checkout(_ item: StoredItem) throws -> String { try cache.checkout(item) }

    /// An HF model folder for any entry (a delta applied to its base), materialised once under
    /// `cache/` — what merge recipes read when they name store entries.
    public func materialize(_ item: StoredItem) throws -> String {
        if item.entry.kind == .base { return try checkout(item) }
        let exporter = self.exporter
        return try cache.materialized(item) { dir in _ = try exporter.export(item, format: .hf, to: dir) }
    }

    // MARK: statistics

    /// Per-layer norms and densities of a delta (computed by Merging's `DeltaStatistics`).
    public func statistics(_ item: StoredItem) throws -> DeltaStatistics {
        DeltaStatistics(try denseDelta(item))
    }

    /// How two deltas over the same base agree: cosine and sign conflicts per layer.
    public func compare(_ a: StoredItem, _ b: StoredItem) throws -> DeltaComparison {
        guard a.entry.baseSHA256 == b.entry.baseSHA256 else {
            throw StoreError.wrongBase(source: b.ref, expected: a.entry.baseSHA256 ?? "none", found: b.entry.baseSHA256 ?? "none")
        }
        return DeltaComparison(try denseDelta(a), try denseDelta(b))
    }
}
