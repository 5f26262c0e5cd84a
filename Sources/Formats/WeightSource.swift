import Foundation
import Tensors

/// One file of tensors a `WeightSource` reads: a safetensors file or a torch.save checkpoint.
public protocol WeightFile: AnyObject, Sendable {
    var path: String { get }
    /// Entries in file order.
    var tensors: [TensorInfo] { get }
    var metadata: [String: String]? { get }
    func tensor(_ name: String) throws -> Tensor
}

extension SafetensorsFile: WeightFile {}
extension TorchCheckpoint: WeightFile {}

/// A set of named tensors readable lazily: one safetensors file, or a sharded model
/// (`model.safetensors.index.json` + shards), or the same as PyTorch checkpoints
/// (`pytorch_model.bin`, or `pytorch_model.bin.index.json` + shards; see `TorchCheckpoint`).
/// Tensors are mmapped views (a strided tensor in a torch checkpoint is copied when read).
public final class WeightSource: @unchecked Sendable {
    /// The weight files a model directory may hold, in order of preference (safetensors first,
    /// as transformers' `from_pretrained` prefers them).
    public static let directoryFiles = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]

    public let path: String
    public let files: [any WeightFile]
    /// Tensor name → (file index, info), in a stable order (per file, header order).
    public let entries: [(name: String, file: Int, info: TensorInfo)]
    private let index: [String: Int]

    /// Opens a `.safetensors` file, a `.bin`/`.pt`/`.pth` torch checkpoint, an index JSON, or a
    /// directory holding one of `directoryFiles`.
    public init(path: String) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw SafetensorsError.io(path: path, reason: "no such file or directory")
        }
        var filePaths: [String]
        var weightMap: [String: String]? = nil
        if isDir.boolValue {
            guard let found = Self.directoryFiles.lazy.map({ (path as NSString).appendingPathComponent($0) })
                .first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                throw SafetensorsError.io(path: path, reason: "no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json in this directory")
            }
            if found.hasSuffix(".index.json") {
                (filePaths, weightMap) = try Self.readIndex(found)
            } else {
                filePaths = [found]
            }
        } else if path.hasSuffix(".index.json") {
            (filePaths, weightMap) = try Self.readIndex(path)
        } else {
            filePaths = [path]
        }
        files = try filePaths.map { try Self.open($0) }
        var entries: [(String, Int, TensorInfo)] = []
        var index = [String: Int]()
        for (fi, f) in files.enumerated() {
            for info in f.tensors {
                if index[info.name] != nil {
                    throw SafetensorsError.invalidIndex(path: path, reason: "tensor \"\(info.name)\" appears in more than one shard")
                }
                if let weightMap, weightMap[info.name] != (f.path as NSString).lastPathComponent {
                    throw SafetensorsError.invalidIndex(path: path, reason: "tensor \"\(info.name)\" found in \(f.path) but the index maps it to \(weightMap[info.name] ?? "nothing")")
                }
                index[info.name] = entries.count
                entries.append((info.name, fi, info))
            }
        }
        if let weightMap {
            for name in weightMap.keys where index[name] == nil {
                throw SafetensorsError.invalidIndex(path: path, reason: "index names tensor \"\(name)\" but no shard holds it")
            }
        }
        self.entries = entries
        self.index = index
    }

    /// Opens one weight file: a torch checkpoint by its extension (`.bin`, `.pt`, `.pth`), else safetensors.
    public static func open(_ path: String) throws -> any WeightFile {
        let ext = (path as NSString).pathExtension.lowercased()
        if ["bin", "pt", "pth"].contains(ext) { return try TorchCheckpoint(path: path) }
        return try SafetensorsFile(path: path)
    }

    /// "safetensors", or "pytorch" when the weights are torch.save checkpoints.
    public var format: String { files.contains { $0 is TorchCheckpoint } ? "pytorch" : "safetensors" }

    public var names: [String] { entries.map(\.name) }
    public var count: Int { entries.count }

    public func info(_ name: String) -> TensorInfo? { index[name].map { entries[$0].info } }

    public func tensor(_ name: String) throws -> Tensor {
        guard let i = index[name] else { throw SafetensorsError.tensorNotFound(path: path, tensor: name) }
        return try files[entries[i].file].tensor(name)
    }

    public var metadata: [String: String]? { files.first?.metadata }

    static func readIndex(_ path: String) throws -> ([String], [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafetensorsError.io(path: path, reason: "cannot read")
        }
        let json: JSONValue
        do { json = try data.withUnsafeBytes { try JSONValue.parse($0) } } catch {
            throw SafetensorsError.invalidIndex(path: path, reason: "not valid JSON (\(error))")
        }
        guard case .object(let wm)? = json["weight_map"] else {
            throw SafetensorsError.invalidIndex(path: path, reason: "missing \"weight_map\" object")
        }
        var map = [String: String]()
        var shards: [String] = []
        for (k, v) in wm {
            guard case .string(let f) = v, !f.contains("/"), !f.isEmpty else {
                throw SafetensorsError.invalidIndex(path: path, reason: "weight_map[\"\(k)\"] must be a file name in the same directory")
            }
            map[k] = f
            if !shards.contains(f) { shards.append(f) }
        }
        let dir = (path as NSString).deletingLastPathComponent
        return (shards.sorted().map { (dir as NSString).appendingPathComponent($0) }, map)
    }
}

extension SafetensorsWriter {
    /// Writes `tensors` as shards of at most `maxShardBytes` each plus
    /// `model.safetensors.index.json`, as transformers' `save_pretrained` does; a single
    /// `model.safetensors` when everything fits in one shard. Returns the written file names.
    @discardableResult
    public static func writeSharded(_ tensors: [(String, Tensor)], metadata: [String: String]? = nil,
                                    directory: String, maxShardBytes: Int) throws -> [String] {
        try checkUnique(tensors, path: directory)
        let ordered = tensors.sorted { $0.0 < $1.0 }
        var shards: [[(String, Tensor)]] = [[]]
        var size = 0
        for t in ordered {
            if size + t.1.byteCount > maxShardBytes, !shards[shards.count - 1].isEmpty {
                shards.append([])
                size = 0
            }
            shards[shards.count - 1].append(t)
            size += t.1.byteCount
        }
        if shards.count == 1 {
            try write(shards[0], metadata: metadata, to: (directory as NSString).appendingPathComponent("model.safetensors"))
            return ["model.safetensors"]
        }
        var names: [String] = []
        var weightMap: [(String, JSONValue)] = []
        let total = ordered.reduce(0) { $0 + $1.1.byteCount }
        for (i, shard) in shards.enumerated() {
            let name = String(format: "model-%05d-of-%05d.safetensors", i + 1, shards.count)
            try write(shard, metadata: metadata, to: (directory as NSString).appendingPathComponent(name))
            names.append(name)
            for (t, _) in shard { weightMap.append((t, .string(name))) }
        }
        weightMap.sort { $0.0 < $1.0 }
        let index = JSONValue.object([
            ("metadata", .object([("total_size", .integer(total))])),
            ("weight_map", .object(weightMap)),
        ])
        try AtomicFile.write(Array(index.serialized().utf8),
                             to: (directory as NSString).appendingPathComponent("model.safetensors.index.json"))
        return names + ["model.safetensors.index.json"]
    }
}
