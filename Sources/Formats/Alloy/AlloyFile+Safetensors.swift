import Foundation
import Tensors

extension AlloyFile {
    /// Packs a safetensors source into `.alloy` bytes. `codec` picks the codec per tensor
    /// (default: `AlloyCodec.automatic`, lossless). The source's `__metadata__` is kept.
    public static func pack(_ source: WeightSource, kind: String = "base", extraMetadata: [(String, JSONValue)] = [],
                            codec: (String, Tensor) -> AlloyCodec = { AlloyCodec.automatic(for: $1) }) throws -> AlloyWriter.Encoded {
        var inputs: [AlloyWriter.Input] = []
        for name in source.names {
            let t = try source.tensor(name)
            let c = codec(name, t)
            inputs.append(.init(name: name, tensor: t, codec: c.applies(to: t.dtype, shape: t.shape) ? c : AlloyCodec.automatic(for: t)))
        }
        var meta: [(String, JSONValue)] = [("kind", .string(kind))] + extraMetadata
        if let m = source.metadata {
            meta.append(("safetensors_metadata", .object(m.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        return try AlloyWriter.encode(inputs, metadata: meta)
    }

    /// The `__metadata__` map recorded from the source safetensors, if any.
    public var safetensorsMetadata: [String: String]? {
        guard case .object(let kv)? = metadata["safetensors_metadata"] else { return nil }
        var m = [String: String]()
        for (k, v) in kv { if case .string(let s) = v { m[k] = s } }
        return m
    }

    /// Writes every tensor, decoded, as a safetensors file (bit-exact for lossless codecs).
    public func unpack(to path: String) throws {
        let all = try tensors.map { ($0.name, try decode($0)) }
        try SafetensorsWriter.write(all, metadata: safetensorsMetadata, to: path)
    }
}
