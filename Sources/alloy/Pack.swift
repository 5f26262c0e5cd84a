import ArgumentParser
import Foundation
import Formats
import Tensors

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
    var codec: String = "auto"

    @Option(help: "Kind recorded in the metadata: base, task-vector, lora, sparse, head, merged.")
    var kind: String = "base"

    @Option(help: "Base model directory, for a diff-pruned delta given as <tensor>.indices/.values pairs (shapes and the base's hash come from it).")
    var base: String?

    func validate() throws {
        guard codec == "auto" || AlloyCodec(name: codec) != nil else { throw ValidationError("unknown codec \"\(codec)\"") }
        guard ["base", "task-vector", "lora", "sparse", "head", "merged"].contains(kind) else { throw ValidationError("unknown kind \"\(kind)\"") }
    }

    func run() throws {
        if let base {
            let delta = try SafetensorsFile(path: source)
            let encoded = try AlloyFile.packSparseDelta(delta, base: try WeightSource(path: base),
                                                        extraMetadata: [("provenance", .object([("source", .string(source)), ("tool", .string("alloy pack --base"))]))])
            try encoded.write(to: out)
            let raw = (try? FileManager.default.attributesOfItem(atPath: source)[.size] as? Int) ?? 0
            print("packed sparse delta: \(Fmt.bytes(raw)) (indices + values) → \(Fmt.bytes(encoded.size)) → \(out)")
            return
        }
        let src = try WeightSource(path: source)
        let chosen = AlloyCodec(name: codec)
        let start = Date()
        let encoded = try AlloyFile.pack(src, kind: kind, extraMetadata: [("provenance", .object([("source", .string(source)), ("tool", .string("alloy pack"))]))]) { _, t in
            guard let chosen else { return AlloyCodec.automatic(for: t) }
            if !chosen.isLossless && t.byteCount < 1024 { return AlloyCodec.automatic(for: t) }
            return chosen
        }
        try encoded.write(to: out)
        let raw = src.entries.reduce(0) { $0 + $1.info.dataRange.count }
        let secs = Date().timeIntervalSince(start)
        print("packed \(src.count) tensors: \(Fmt.bytes(raw)) → \(Fmt.bytes(encoded.size)) (×\(String(format: "%.3f", Double(raw) / Double(max(1, encoded.size))))) in \(String(format: "%.2f", secs)) s → \(out)")
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

    func run() throws {
        let f = try AlloyFile(path: file)
        if verify { try f.verify() }
        try f.unpack(to: out)
        print("unpacked \(f.tensors.count) tensors → \(out)")
    }
}
