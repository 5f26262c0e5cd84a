import ArgumentParser
import Foundation
import Formats
import Store
import Tensors

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the tensors of a .safetensors/.alloy file or an HF model directory, or a store entry (with --compare, how two deltas agree).")

    @Argument(help: "A .safetensors or .alloy file, a model.safetensors.index.json, an HF model directory, or a store entry.")
    var path: String

    @Option(help: "Another delta in the store: print cosine similarity and sign-conflict rate with it.")
    var compare: String?

    @OptionGroup var storeOptions: StoreOptions

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    struct TensorJSON: Encodable {
        let name: String, dtype: String, shape: [Int]
        var codec: String? = nil, storedBytes: Int? = nil, chunks: Int? = nil
        enum CodingKeys: String, CodingKey { case name, dtype, shape, codec, chunks, storedBytes = "stored_bytes" }
    }
    struct FileJSON: Encodable {
        let format: String, parameters: Int, bytes: Int
        var files: Int? = nil, rawBytes: Int? = nil, kind: String? = nil, contentSHA256: String? = nil, architecture: String? = nil
        let tensors: [TensorJSON]
        enum CodingKeys: String, CodingKey {
            case format, parameters, bytes, files, kind, architecture, tensors, rawBytes = "raw_bytes", contentSHA256 = "content_sha256"
        }
        // Absent optionals are written as null, as before: a reader sees every field.
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(format, forKey: .format); try c.encode(parameters, forKey: .parameters); try c.encode(bytes, forKey: .bytes)
            try c.encode(tensors, forKey: .tensors)
            if format == "alloy" {
                try c.encode(rawBytes, forKey: .rawBytes); try c.encode(kind, forKey: .kind); try c.encode(contentSHA256, forKey: .contentSHA256)
            } else {
                try c.encodeIfPresent(files, forKey: .files); try c.encodeIfPresent(architecture, forKey: .architecture)
            }
        }
    }

    func run() throws {
        if compare != nil || !FileManager.default.fileExists(atPath: path) { return try inspectEntry() }
        if path.hasSuffix(".alloy") { return try inspectAlloy() }
        let source = try WeightSource(path: path)
        let config = try modelConfig()
        let rows = source.entries.map { e in
            (name: e.name, dtype: e.info.dtype, dims: e.info.shape.dims, params: e.info.shape.elementCount, bytes: e.info.dataRange.count)
        }
        let totalParams = rows.reduce(0) { $0 + $1.params }, totalBytes = rows.reduce(0) { $0 + $1.bytes }
        if json {
            return try Console.printJSON(FileJSON(format: source.format, parameters: totalParams, bytes: totalBytes, files: source.files.count,
                                                  architecture: config?.summary,
                                                  tensors: rows.map { TensorJSON(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.dims) }))
        }
        var table = TextTable(["tensor", "dtype", "shape", "parameters", "bytes"], align: [.left, .left, .left, .right, .right])
        for (key, members) in Dictionary(grouping: rows, by: { LayerGroup.of($0.name) }).sorted(by: { $0.key < $1.key }) {
            for r in members.sorted(by: { $0.name < $1.name }) {
                table.add([r.name, r.dtype.rawValue, Fmt.shape(r.dims), Fmt.int(r.params), Fmt.bytes(r.bytes)])
            }
            table.add(["  \(key.label) (\(members.count) tensors)", "", "",
                       Fmt.int(members.reduce(0) { $0 + $1.params }), Fmt.bytes(members.reduce(0) { $0 + $1.bytes })])
            table.rule()
        }
        table.add(["total (\(rows.count) tensors in \(source.files.count) file\(source.files.count == 1 ? "" : "s"))", "", "",
                   Fmt.int(totalParams), Fmt.bytes(totalBytes)])
        Console.print(table.render())
        if let config { Console.print("\narchitecture: \(config.summary)") }
        let dtypes = Dictionary(grouping: rows, by: \.dtype).map { "\($0.key.rawValue) \(Fmt.int($0.value.reduce(0) { $0 + $1.params }))" }
        Console.print("dtypes: \(dtypes.sorted().joined(separator: ", "))")
    }

    func inspectAlloy() throws {
        let f = try AlloyFile(path: path)
        let params = f.tensors.reduce(0) { $0 + $1.shape.elementCount }, raw = f.tensors.reduce(0) { $0 + $1.rawBytes }
        let stored = f.mapping.size
        if json {
            return try Console.printJSON(FileJSON(format: "alloy", parameters: params, bytes: stored, rawBytes: raw, kind: f.kind, contentSHA256: f.contentHash,
                                                  tensors: f.tensors.map {
                TensorJSON(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape.dims, codec: $0.codec.description, storedBytes: $0.storedBytes, chunks: $0.chunks.count)
            }))
        }
        var table = TextTable(["tensor", "dtype", "shape", "codec", "chunks", "raw", "stored", "ratio"],
                              align: [.left, .left, .left, .left, .right, .right, .right, .right])
        for e in f.tensors {
            table.add([e.name, e.dtype.rawValue, Fmt.shape(e.shape.dims), e.codec.description, String(e.chunks.count),
                       Fmt.bytes(e.rawBytes), Fmt.bytes(e.storedBytes), String(format: "×%.3f", Double(e.rawBytes) / Double(max(1, e.storedBytes)))])
        }
        table.rule()
        table.add(["total (\(f.tensors.count) tensors, file incl. header)", "", "", "", "", Fmt.bytes(raw), Fmt.bytes(stored),
                   String(format: "×%.3f", Double(raw) / Double(max(1, stored)))])
        Console.print(table.render())
        Console.print("\nkind: \(f.kind ?? "?")   parameters: \(Fmt.int(params))   content sha256: \(f.contentHash ?? "?")")
    }

    /// config.json beside the weights (or in the directory), if present.
    func modelConfig() throws -> HFConfig? {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let dir = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
        let cfg = (dir.isEmpty ? "." : dir as NSString).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: cfg) else { return nil }
        return try HFConfig.load(path: cfg)
    }
}

/// Groups tensor names by transformer layer ("layer 3") or by top-level module ("embeddings").
struct LayerGroup: Hashable, Comparable {
    let order: Int
    let label: String

    static func of(_ name: String) -> LayerGroup {
        if let n = TensorNames.layerIndex(name) { return LayerGroup(order: 1 + n, label: "layer \(n)") }
        let parts = name.split(separator: ".")
        let head = parts.first { !["bert", "model", "base_model", "roberta", "distilbert"].contains(String($0)) } ?? parts.first ?? ""
        let rank = head.hasPrefix("embeddings") ? 0 : 1_000_000
        return LayerGroup(order: rank, label: String(head))
    }

    static func < (l: LayerGroup, r: LayerGroup) -> Bool { (l.order, l.label) < (r.order, r.label) }
}
