import Crypto
import Foundation
import Formats
import Tensors

extension Store {
    /// The path of the blob with SHA-256 `sha`.
    public func blobPath(_ sha: String) -> String {
        "\(blobsDir)/\(sha.prefix(2))/\(sha).alloy"
    }

    /// Stores encoded `.alloy` bytes under the SHA-256 of those bytes; an existing blob of the
    /// same hash and size is kept (dedup). Atomic: temp file, fsync, rename, directory fsync.
    func putBlob(_ encoded: AlloyWriter.Encoded) throws -> (sha256: String, bytes: Int) {
        var sha = SHA256()
        let bytes = encoded.bytes
        sha.update(data: bytes)
        let hex = sha.finalize().map { String(format: "%02x", $0) }.joined()
        try putBytes(bytes, sha: hex)
        return (hex, bytes.count)
    }

    /// Stores an existing `.alloy` file as a blob after checking it opens and verifies.
    func putBlob(file: String) throws -> (sha256: String, bytes: Int) {
        let f = try AlloyFile(path: file)
        try f.verify()
        let bytes = Array(f.mapping.bytes)
        let hex = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        try putBytes(bytes, sha: hex)
        return (hex, bytes.count)
    }

    private func putBytes(_ bytes: [UInt8], sha: String) throws {
        let path = blobPath(sha)
        if let attrs = try? FileManager.default.attributesOfItem(atPath: path), (attrs[.size] as? Int) == bytes.count { return }
        let dir = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw StoreError.io(path: dir, reason: "cannot create: \(error.localizedDescription)")
            }
            Self.fsyncDirectory(blobsDir)
        }
        do { try AtomicFile.write(bytes, to: path) } catch { throw StoreError.io(path: path, reason: "\(error)") }
    }

    static func fsyncDirectory(_ dir: String) {
        let fd = Glibc.open(dir, O_RDONLY | O_DIRECTORY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    /// Opens the `role` blob of `item`, mapping failures to errors that name the entry.
    public func open(_ item: StoredItem, role: String) throws -> AlloyFile {
        guard let b = item.blobs[role] else { throw StoreError.unsupported(ref: item.ref, reason: "has no \(role) blob") }
        let path = blobPath(b.sha256)
        guard FileManager.default.fileExists(atPath: path) else { throw StoreError.missingBlob(ref: item.ref, role: role, path: path) }
        do { return try AlloyFile(path: path) } catch { throw StoreError.corruptBlob(ref: item.ref, role: role, reason: "\(error)") }
    }

    /// Reads tensor `name` of a blob; a checksum failure names the entry and the tensor.
    func tensor(_ f: AlloyFile, _ name: String, item: StoredItem, role: String) throws -> Tensor {
        do { return try f.tensor(name) } catch { throw StoreError.corruptBlob(ref: item.ref, role: role, reason: "\(error)") }
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
    public func files(of item: StoredItem) throws -> [(String, [UInt8])] {
        guard item.blobs["files"] != nil else { return [] }
        let f = try open(item, role: "files")
        return try f.names.map { ($0, Array(try tensor(f, $0, item: item, role: "files").rawBytes)) }
    }

    /// Reads the files the store keeps beside weights: HF configs, tokenizer, pooling, cards.
    static func collectFiles(in dir: String, extra: [String] = []) throws -> [(String, [UInt8])] {
        let fm = FileManager.default
        var out: [(String, [UInt8])] = []
        let wanted = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                      "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
                      "adapter_config.json", "card.json", "README.md"] + extra
        for rel in wanted {
            let p = (dir as NSString).appendingPathComponent(rel)
            if let d = fm.contents(atPath: p) { out.append((rel, Array(d))) }
        }
        return out
    }
}
