import Crypto
import Foundation
import Formats
import Tensors

/// Content-addressed `.alloy` blobs: `blobs/ab/<sha256>.alloy`, named by the SHA-256 of the
/// file's bytes. Writes are atomic (temp file beside the blob, fsync, rename, folder fsync);
/// a blob is never modified once written, only deleted by `gc` when no entry uses it.
struct BlobStore: Sendable {
    let dir: String

    /// The path of the blob with SHA-256 `sha`.
    func path(_ sha: String) -> String {
        "\(dir)/\(sha.prefix(2))/\(sha).alloy"
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// Stores encoded `.alloy` bytes under the SHA-256 of those bytes; an existing blob of the
    /// same hash and size is kept (dedup).
    func put(_ encoded: AlloyWriter.Encoded) throws -> (sha256: String, bytes: Int) {
        let bytes = encoded.bytes
        let hex = Self.hex(SHA256.hash(data: bytes))
        try putBytes(bytes, sha: hex)
        return (hex, bytes.count)
    }

    /// Stores an existing `.alloy` file as a blob after checking it opens and verifies.
    func put(file: String) throws -> (sha256: String, bytes: Int) {
        let f = try AlloyFile(path: file)
        try f.verify()
        let bytes = Array(f.mapping.bytes)
        let hex = Self.hex(SHA256.hash(data: bytes))
        try putBytes(bytes, sha: hex)
        return (hex, bytes.count)
    }

    private func putBytes(_ bytes: [UInt8], sha: String) throws {
        let path = path(sha)
        let fm = FileManager.default
        if let attrs = try? fm.attributesOfItem(atPath: path), (attrs[.size] as? Int) == bytes.count { return }
        let sub = (path as NSString).deletingLastPathComponent
        if !fm.fileExists(atPath: sub) {
            do { try fm.createDirectory(atPath: sub, withIntermediateDirectories: true) } catch {
                throw StoreError.io(path: sub, reason: "cannot create: \(error.localizedDescription)")
            }
            FileSystem.fsyncDirectory(dir)
        }
        do { try AtomicFile.write(bytes, to: path) } catch { throw StoreError.io(path: path, reason: "\(error)") }
    }

    /// Opens the `role` blob of `item`, mapping failures to errors that name the entry.
    func open(_ item: StoredItem, role: String) throws -> AlloyFile {
        guard let b = item.blobs[role] else { throw StoreError.unsupported(ref: item.ref, reason: "has no \(role) blob") }
        let path = path(b.sha256)
        guard FileManager.default.fileExists(atPath: path) else { throw StoreError.missingBlob(ref: item.ref, role: role, path: path) }
        do { return try AlloyFile(path: path) } catch { throw StoreError.corruptBlob(ref: item.ref, role: role, reason: "\(error)") }
    }

    /// Reads tensor `name` of a blob; a checksum failure names the entry and the tensor.
    func tensor(_ f: AlloyFile, _ name: String, item: StoredItem, role: String) throws -> Tensor {
        do { return try f.tensor(name) } catch { throw StoreError.corruptBlob(ref: item.ref, role: role, reason: "\(error)") }
    }

    /// Every tensor of the `role` blob of `item`, in the blob's order.
    func tensors(_ item: StoredItem, role: String) throws -> [(String, Tensor)] {
        let f = try open(item, role: role)
        return try f.names.map { ($0, try tensor(f, $0, item: item, role: role)) }
    }

    /// Small files (config.json, tokenizer.json, adapter_config.json, card.json …) as a blob:
    /// one U8 tensor per file, named by its relative path.
    static func encodeFiles(_ files: [(String, [UInt8])]) throws -> AlloyWriter.Encoded {
        let inputs = try files.sorted { $0.0 < $1.0 }.map { (name, bytes) in
            AlloyWriter.Input(name: name, tensor: try bytes.withUnsafeBytes { try Tensor(dtype: .u8, shape: Shape([bytes.count]), bytes: $0) }, codec: .raw)
        }
        return try AlloyWriter.encode(inputs, metadata: [("kind", .string("files"))])
    }

    /// The files of an entry's `files` blob, by relative path.
    func files(of item: StoredItem) throws -> [(String, [UInt8])] {
        guard item.blobs["files"] != nil else { return [] }
        return try tensors(item, role: "files").map { ($0.0, Array($0.1.rawBytes)) }
    }

    /// The entry's card.json, if it has a `card` blob.
    func card(of item: StoredItem) throws -> [UInt8]? {
        guard item.blobs["card"] != nil else { return nil }
        let f = try open(item, role: "card")
        return Array(try tensor(f, "card.json", item: item, role: "card").rawBytes)
    }

    /// Every file under blobs/: (sha, path); temp files and strays have an empty sha.
    func allFiles() -> [(sha: String, path: String)] {
        var out: [(String, String)] = []
        let fm = FileManager.default
        for d in (try? fm.contentsOfDirectory(atPath: dir))?.sorted() ?? [] {
            let sub = (dir as NSString).appendingPathComponent(d)
            for f in (try? fm.contentsOfDirectory(atPath: sub))?.sorted() ?? [] {
                let p = (sub as NSString).appendingPathComponent(f)
                if f.hasSuffix(".alloy"), f.count == 64 + 6 { out.append((String(f.prefix(64)), p)) } else { out.append(("", p)) }
            }
        }
        return out
    }
}
