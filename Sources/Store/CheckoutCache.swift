import Crypto
import Foundation
import Formats
import Tensors

/// Derived folders under `cache/` that the runtime and merges read: a checkout per entry
/// (`cache/<digest>`) and a materialised HF model per delta (`cache/<digest>-hf`).
///
/// Crash safety (docs/STORE.md, "Cache"):
/// - **Publish by rename.** A folder is built in `tmp/build-<pid>-<random>`, every file is
///   fsync'ed, a completeness marker listing each file (size, SHA-256, or link target) is
///   written last, and the folder is renamed into `cache/`. A crash leaves only a folder in
///   `tmp/`, never a partial folder in `cache/`.
/// - **Remove by rename.** A folder leaves `cache/` by an atomic rename into
///   `tmp/trash-<pid>-<random>` before it is deleted recursively; a crash mid-delete leaves the
///   remains in `tmp/`, where nothing trusts them and `gc` deletes them.
/// - **Trust only complete folders.** A folder is used only if its marker names the entry and
///   every file it lists is present with the listed size (or link target) and nothing else is
///   there. Anything else — a folder from an older alloy without a marker, a damaged one — is
///   moved aside and rebuilt by the command that needs it. `verify` also re-hashes the files.
///
/// Building needs no store lock (readers build checkouts too); publishing and removing take
/// the exclusive `cache.lock` for the moment of the rename, so two builders never move each
/// other's folders away.
struct CheckoutCache {
    let dir: String
    let tmpDir: String
    let lockPath: String
    let blobs: BlobStore

    /// The marker's file name inside a cache folder; written last.
    static let markerName = ".alloy-complete.json"

    struct Marker: Codable {
        var format = "alloy-cache-v1"
        /// The entry's digest (the folder's name without `-hf`).
        var digest: String
        var files: [FileRecord]
    }

    struct FileRecord: Codable {
        /// Relative to the folder.
        var path: String
        var bytes: Int?
        var sha256: String?
        /// For a symbolic link (a delta's `delta.alloy` → its blob): the target.
        var link: String?
    }

    /// What a cache folder is worth.
    enum State: Equatable {
        case missing
        case complete
        /// Interrupted or from an older alloy: rebuilt by the next command that needs it.
        case incomplete(String)
        /// Complete by its marker, but a file's bytes differ from it (checked by `verify` only):
        /// not something a crash produces.
        case damaged(String)
    }

    func path(_ key: String) -> String { (dir as NSString).appendingPathComponent(key) }

    // MARK: checkout

    /// A folder the runtime can read for `item`: a base as an HF model folder, a LoRA as a
    /// PEFT folder, a delta as `delta.alloy` (a link to its blob) with `head.safetensors` and
    /// `card.json`; built once, rebuilt when not complete.
    func checkout(_ item: StoredItem) throws -> String {
        try folder(key: item.entry.digest, digest: item.entry.digest) { tmp in
            try fill(tmp, with: item)
        }
    }

    private func fill(_ tmp: String, with item: StoredItem) throws {
        func at(_ rel: String) -> String { (tmp as NSString).appendingPathComponent(rel) }
        func put(_ rel: String, _ bytes: [UInt8]) throws {
            let p = at(rel)
            try Self.createDirectory((p as NSString).deletingLastPathComponent)
            try AtomicFile.write(bytes, to: p)
        }
        switch item.entry.kind {
        case .base:
            let w = try blobs.open(item, role: "weights")
            try Exporter.write(try w.names.map { ($0, try blobs.tensor(w, $0, item: item, role: "weights")) },
                               metadata: w.safetensorsMetadata, to: at("model.safetensors"), ref: item.ref)
        case .lora:
            try Exporter.write(try blobs.tensors(item, role: "weights"), to: at("adapter_model.safetensors"), ref: item.ref)
        case .sparse, .taskVector, .merged:
            let w = try blobs.open(item, role: "weights")
            do { try FileManager.default.createSymbolicLink(atPath: at("delta.alloy"), withDestinationPath: w.path) } catch {
                throw StoreError.io(path: at("delta.alloy"), reason: "cannot link the delta's blob: \(error.localizedDescription)")
            }
        case .head:
            break
        }
        if item.blobs["head"] != nil || item.entry.kind == .head {
            let role = item.entry.kind == .head ? "weights" : "head"
            try Exporter.write(try blobs.tensors(item, role: role), to: at("head.safetensors"), ref: item.ref)
        }
        for (rel, bytes) in try blobs.files(of: item) { try put(rel, bytes) }
        if let card = try blobs.card(of: item) { try put("card.json", card) }
    }

    /// An HF model folder for a delta entry (`cache/<digest>-hf`), written by `export`.
    func materialized(_ item: StoredItem, export: (String) throws -> Void) throws -> String {
        try folder(key: item.entry.digest + "-hf", digest: item.entry.digest, build: export)
    }

    // MARK: the protocol

    /// The published folder `cache/<key>`, built by `build` into a fresh folder and published
    /// by rename when it is not complete.
    func folder(key: String, digest: String, build: (String) throws -> Void) throws -> String {
        let dest = path(key)
        if state(dest, digest: digest, deep: false) == .complete { return dest }
        let tmp = try makeTemporary("build")
        defer { if FileManager.default.fileExists(atPath: tmp) { removeTree(tmp) } }
        try build(tmp)
        try seal(tmp, digest: digest)
        let lock = try FileSystem.Lock(path: lockPath, exclusive: true, onWait: { _ in })
        defer { lock.unlock() }
        // Another process may have published it while this one was building.
        if state(dest, digest: digest, deep: false) == .complete { return dest }
        if FileManager.default.fileExists(atPath: dest) || isSymlink(dest) { try discard(dest) }
        if let code = FileSystem.move(tmp, dest) {
            throw StoreError.io(path: dest, reason: "cannot move the cache folder into place: \(FileSystem.describe(code))")
        }
        FileSystem.fsyncDirectory(dir)
        return dest
    }

    /// A new empty folder `tmp/<prefix>-<pid>-<random>`.
    func makeTemporary(_ prefix: String) throws -> String {
        let p = (tmpDir as NSString).appendingPathComponent("\(prefix)-\(FileSystem.pid)-\(UInt32.random(in: 0...UInt32.max))")
        try Self.createDirectory(p)
        return p
    }

    static func createDirectory(_ p: String) throws {
        do { try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true) } catch {
            throw StoreError.io(path: p, reason: "cannot create the folder: \(error.localizedDescription)")
        }
    }

    /// Records every file of `folder` in the marker (written last, atomically) and fsyncs the
    /// folders, so that the rename that follows publishes only durable, complete content.
    private func seal(_ folder: String, digest: String) throws {
        var records: [FileRecord] = []
        var folders = [folder]
        for rel in try Self.contents(folder) {
            let p = (folder as NSString).appendingPathComponent(rel)
            if isSymlink(p) {
                let target: String
                do { target = try FileManager.default.destinationOfSymbolicLink(atPath: p) } catch {
                    throw StoreError.io(path: p, reason: "cannot read the link: \(error.localizedDescription)")
                }
                records.append(FileRecord(path: rel, link: target))
            } else if FileManager.default.isDirectory(p) {
                folders.append(p)
            } else {
                try FileSystem.fsyncFile(p)
                let (bytes, sha) = try Self.hash(p)
                records.append(FileRecord(path: rel, bytes: bytes, sha256: sha))
            }
        }
        for f in folders.reversed() { FileSystem.fsyncDirectory(f) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(Marker(digest: digest, files: records)) } catch {
            throw StoreError.io(path: folder, reason: "cannot encode the cache marker: \(error)")
        }
        let markerPath = (folder as NSString).appendingPathComponent(Self.markerName)
        do { try AtomicFile.write(Array(data), to: markerPath) } catch { throw StoreError.io(path: markerPath, reason: "\(error)") }
    }

    /// Relative paths of everything under `folder` (files, links and sub-folders), sorted.
    static func contents(_ folder: String) throws -> [String] {
        do { return try FileManager.default.subpathsOfDirectory(atPath: folder).sorted() } catch {
            throw StoreError.io(path: folder, reason: "cannot list the folder: \(error.localizedDescription)")
        }
    }

    /// Size and SHA-256 of a file, read in 4 MiB pieces.
    static func hash(_ path: String) throws -> (Int, String) {
        guard let h = FileHandle(forReadingAtPath: path) else { throw StoreError.io(path: path, reason: "cannot open to hash") }
        defer { try? h.close() }
        var sha = SHA256()
        var n = 0
        while true {
            let d: Data
            do { d = try h.read(upToCount: 1 << 22) ?? Data() } catch { throw StoreError.io(path: path, reason: "cannot read: \(error.localizedDescription)") }
            if d.isEmpty { break }
            n += d.count
            sha.update(data: d)
        }
        return (n, BlobStore.hex(sha.finalize()))
    }

    func isSymlink(_ p: String) -> Bool {
        ((try? FileManager.default.attributesOfItem(atPath: p))?[.type] as? FileAttributeType) == .typeSymbolicLink
    }

    /// Whether `folder` is a complete cache folder for the entry `digest`; `deep` re-hashes files.
    func state(_ folder: String, digest: String, deep: Bool) -> State {
        let fm = FileManager.default
        guard fm.fileExists(atPath: folder) || isSymlink(folder) else { return .missing }
        guard fm.isDirectory(folder), !isSymlink(folder) else { return .incomplete("not a folder") }
        let markerPath = (folder as NSString).appendingPathComponent(Self.markerName)
        guard let data = fm.contents(atPath: markerPath) else { return .incomplete("no completeness marker (interrupted, or written by an older alloy)") }
        guard let marker = try? JSONDecoder().decode(Marker.self, from: data), marker.format == "alloy-cache-v1" else {
            return .incomplete("unreadable completeness marker")
        }
        guard marker.digest == digest else { return .incomplete("its marker names entry \(marker.digest.prefix(12))…") }
        var expected = Set([Self.markerName])
        for r in marker.files {
            expected.insert(r.path)
            // Sub-folders of listed files (1_Pooling/config.json) are expected too.
            var parent = (r.path as NSString).deletingLastPathComponent
            while !parent.isEmpty { expected.insert(parent); parent = (parent as NSString).deletingLastPathComponent }
            let p = (folder as NSString).appendingPathComponent(r.path)
            if let link = r.link {
                guard let t = try? fm.destinationOfSymbolicLink(atPath: p) else { return .incomplete("\(r.path) is missing") }
                guard t == link else { return .incomplete("\(r.path) links to \(t), not \(link)") }
                // A link made in another place (a store copied or moved) points outside this store.
                guard t.hasPrefix(blobs.dir + "/") else { return .incomplete("\(r.path) links outside this store's blobs (\(t))") }
                guard fm.fileExists(atPath: t) else { return .incomplete("\(r.path) links to a missing blob \(t)") }
                continue
            }
            guard let attrs = try? fm.attributesOfItem(atPath: p), let size = attrs[.size] as? Int else { return .incomplete("\(r.path) is missing") }
            guard size == r.bytes else { return .incomplete("\(r.path) has \(size) bytes, its marker says \(r.bytes ?? -1)") }
            if deep, let sha = r.sha256 {
                guard let (_, actual) = try? Self.hash(p) else { return .incomplete("\(r.path) cannot be read") }
                if actual != sha { return .damaged("\(r.path) hashes to \(actual.prefix(12))…, its marker says \(sha.prefix(12))…") }
            }
        }
        guard let present = try? Self.contents(folder) else { return .incomplete("cannot be listed") }
        if let extra = present.first(where: { !expected.contains($0) }) { return .incomplete("holds \(extra), which its marker does not list") }
        return .complete
    }

    // MARK: removal

    /// Moves `path` out of `cache/` by an atomic rename into `tmp/`, then deletes it. A crash
    /// mid-delete leaves the remains in `tmp/` (gc deletes them), never in `cache/`.
    func discard(_ path: String) throws {
        let trash = (tmpDir as NSString).appendingPathComponent("trash-\(FileSystem.pid)-\(UInt32.random(in: 0...UInt32.max))")
        if let code = FileSystem.move(path, trash) {
            if FileSystem.isMissing(code) { return }   // already gone (another process moved it)
            throw StoreError.io(path: path, reason: "cannot move the folder aside to delete it: \(FileSystem.describe(code))")
        }
        FileSystem.fsyncDirectory((path as NSString).deletingLastPathComponent)
        removeTree(trash)
    }

    /// Recursive delete; best effort (what remains is a leftover in `tmp/` for `gc`).
    @discardableResult
    func removeTree(_ p: String) -> Bool {
        (try? FileManager.default.removeItem(atPath: p)) != nil
    }

    /// The names of the folders in `cache/`.
    func keys() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// The entry digest a cache folder name belongs to.
    static func digest(ofKey key: String) -> String {
        key.hasSuffix("-hf") ? String(key.dropLast(3)) : key
    }

    /// Moves every folder out of `cache/` (under `cache.lock`) and deletes them. Returns the
    /// number of folders and bytes freed.
    func clear() throws -> (folders: Int, bytes: Int) {
        var moved: [String] = []
        do {
            let lock = try FileSystem.Lock(path: lockPath, exclusive: true, onWait: { _ in })
            defer { lock.unlock() }
            for k in keys() {
                let trash = (tmpDir as NSString).appendingPathComponent("trash-\(FileSystem.pid)-\(UInt32.random(in: 0...UInt32.max))")
                if let code = FileSystem.move(path(k), trash) {
                    if FileSystem.isMissing(code) { continue }
                    throw StoreError.io(path: path(k), reason: "cannot move the cache folder aside to delete it: \(FileSystem.describe(code))")
                }
                moved.append(trash)
            }
            FileSystem.fsyncDirectory(dir)
        }
        var bytes = 0
        for t in moved {
            bytes += Self.size(t)
            removeTree(t)
        }
        return (moved.count, bytes)
    }

    /// Bytes of the files under `p` (links not followed).
    static func size(_ p: String) -> Int {
        let fm = FileManager.default
        guard let attrs = try? fm.attributesOfItem(atPath: p) else { return 0 }
        if (attrs[.type] as? FileAttributeType) != .typeDirectory { return (attrs[.size] as? Int) ?? 0 }
        var n = 0
        for rel in (try? fm.subpathsOfDirectory(atPath: p)) ?? [] {
            if let a = try? fm.attributesOfItem(atPath: (p as NSString).appendingPathComponent(rel)),
               (a[.type] as? FileAttributeType) == .typeRegular { n += (a[.size] as? Int) ?? 0 }
        }
        return n
    }

    /// Entries of `tmp/`: interrupted builds and deletions, and blobs' temp files. `live` is
    /// true for names that carry the id of a running process (still being written).
    func temporaries() -> [(path: String, live: Bool)] {
        ((try? FileManager.default.contentsOfDirectory(atPath: tmpDir)) ?? []).sorted().map { name in
            let parts = name.split(separator: "-")
            let pid = parts.count >= 3 ? Int32(parts[parts.count - 2]) : nil
            let live = pid.map { $0 != FileSystem.pid && FileSystem.processExists($0) } ?? false
            return ((tmpDir as NSString).appendingPathComponent(name), live)
        }
    }
}

extension FileManager {
    func isDirectory(_ path: String) -> Bool {
        var d: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &d) && d.boolValue
    }
}
