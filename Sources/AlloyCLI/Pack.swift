import ArgumentParser
import Foundation
import Formats
import Tensors

/// `pack --codec`: automatic, or one codec for every tensor it suits.
enum CodecChoice: String, CaseIterable, ExpressibleByArgument {
    case auto, raw, float, sparse, f16, bf16, int8Row = "int8-row"
    /// The codec asked for; nil for auto.
    var codec: AlloyCodec? { AlloyCodec(name: rawValue) }
}

/// `pack --kind`: what the metadata records the file as.
enum PackKind: String, CaseIterable, ExpressibleByArgument {
    case base, taskVector = "task-vector", lora, sparse, head, merged
}

struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pack a .safetensors file (or HF model directory) into a compressed, checksummed .alloy file.",
        discussion: """
        Codecs: auto (default, lossless: sparse for mostly-zero tensors, float for other floats, raw \
        otherwise), raw, float, sparse; lossy, only when asked: f16, bf16, int8-row. Lossy codecs \
        apply to F32 tensors over 1 KiB; other tensors keep the automatic lossless codec. See docs/FORMAT.md.
        """)

    @Argument(help: "Source .safetensors file, index, or HF model directory.")
    var source: String

    @Option(name: .shortAndLong, help: "Output .alloy file.")
    var out: String

    @Option(help: "Codec: auto, raw, float, sparse, f16, bf16, int8-row.")
    var codec: CodecChoice = .auto

    @Option(help: "Kind recorded in the metadata: base, task-vector, lora, sparse, head, merged.")
    var kind: PackKind = .base

    @Option(help: "Base model directory, for a diff-pruned delta given as <tensor>.indices/.values pairs (shapes and the base's hash come from it).")
    var base: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    struct Report: Encodable {
        let tensors: Int, rawBytes: Int, storedBytes: Int, out: String, kind: String
        var ratio: JSONNumber { JSONNumber(Double(rawBytes) / Double(max(1, storedBytes))) }
        enum CodingKeys: String, CodingKey { case tensors, out, kind, ratio, rawBytes = "raw_bytes", storedBytes = "stored_bytes" }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(tensors, forKey: .tensors); try c.encode(rawBytes, forKey: .rawBytes); try c.encode(storedBytes, forKey: .storedBytes)
            try c.encode(out, forKey: .out); try c.encode(kind, forKey: .kind); try c.encode(ratio, forKey: .ratio)
        }
    }

    func run() throws {
        if let base {
            let delta = try SafetensorsFile(path: source)
            let encoded = try AlloyFile.packSparseDelta(delta, base: try WeightSource(path: base),
                                                        extraMetadata: [("provenance", .object([("source", .string(source)), ("tool", .string("alloy pack --base"))]))])
            try encoded.write(to: out)
            let raw = ((try? FileManager.default.attributesOfItem(atPath: source))?[.size] as? Int) ?? 0
            if json { return try Console.printJSON(Report(tensors: delta.names.count, rawBytes: raw, storedBytes: encoded.size, out: out, kind: "sparse")) }
            Console.print("packed sparse delta: \(Fmt.bytes(raw)) (indices + values) → \(Fmt.bytes(encoded.size)) → \(out)")
            return
        }
        let src = try WeightSource(path: source)
        let chosen = codec.codec
        let start = Date()
        let encoded = try AlloyFile.pack(src, kind: kind.rawValue, extraMetadata: [("provenance", .object([("source", .string(source)), ("tool", .string("alloy pack"))]))]) { _, t in
            guard let chosen else { return AlloyCodec.automatic(for: t) }
            if !chosen.isLossless && t.byteCount < 1024 { return AlloyCodec.automatic(for: t) }
            return chosen
        }
        try encoded.write(to: out)
        let raw = src.entries.reduce(0) { $0 + $1.info.dataRange.count }
        if json { return try Console.printJSON(Report(tensors: src.count, rawBytes: raw, storedBytes: encoded.size, out: out, kind: kind.rawValue)) }
        let secs = Date().timeIntervalSince(start)
        Console.print("packed \(src.count) tensors: \(Fmt.bytes(raw)) → \(Fmt.bytes(encoded.size)) (×\(String(format: "%.3f", Double(raw) / Double(max(1, encoded.size))))) in \(String(format: "%.2f", secs)) s → \(out)")
    }
}

struct Unpack: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unpack a .alloy file into a .safetensors file (bit-exact for lossless codecs).")

    @Argument(help: "The .alloy file.")
    var file: String

    @Option(name: .shortAndLong, help: "Output .safetensors file.")
    var out: String

    @Flag(help: "Also check the content hash (decodes everything once more).")
    var verify = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    struct Report: Encodable { let tensors: Int; let out: String; let verified: Bool }

    func run() throws {
        let f = try AlloyFile(path: file)
        if verify { try f.verify() }
        try f.unpack(to: out)
        if json { return try Console.printJSON(Report(tensors: f.tensors.count, out: out, verified: verify)) }
        Console.print("unpacked \(f.tensors.count) tensors → \(out)")
    }
}
