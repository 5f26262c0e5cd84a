import Foundation
import Formats
import Tensors

/// What an `--adapter PATH[@SCALE]` names, found by looking at the path.
public enum AdapterSource: Equatable {
    /// A PEFT LoRA folder (adapter_config.json).
    case lora(String)
    /// A diff-pruned delta: safetensors of `<tensor>.indices` (flat, I32/I64) and `<tensor>.values`.
    case sparse(String)
    /// A dense task vector: a safetensors file of deltas with the base's tensor names.
    case taskVector(String)
    /// A fully fine-tuned HF model directory: τ = θ_ft − θ_base.
    case fineTuned(String)
    /// A `.alloy` delta (kind sparse or task-vector) that records its base's content hash.
    case alloyDelta(String)

    public static func detect(_ path: String) throws -> AdapterSource {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw EncoderError.adapter(path: path, reason: "no such file or directory")
        }
        func has(_ f: String) -> Bool { fm.fileExists(atPath: (path as NSString).appendingPathComponent(f)) }
        if isDir.boolValue {
            if has("adapter_config.json") { return .lora(path) }
            if has("delta.alloy") { return .alloyDelta((path as NSString).appendingPathComponent("delta.alloy")) }
            if has("delta.safetensors") { return .sparse((path as NSString).appendingPathComponent("delta.safetensors")) }
            if has("config.json") { return .fineTuned(path) }
            throw EncoderError.adapter(path: path, reason: "not a PEFT folder (adapter_config.json), a sparse delta (delta.safetensors) or an HF model (config.json)")
        }
        if path.hasSuffix(".alloy") { return .alloyDelta(path) }
        let file = try SafetensorsFile(path: path)
        if SparseDelta.isSparse(file) { return .sparse(path) }
        return .taskVector(path)
    }
}

extension AdapterSet {
    /// Adds the adapter at `path` with `scale` (LoRA: times its α/r; deltas: λ). Several
    /// adapters sum their deltas. Returns the LoRA adapter when one was loaded (for its head).
    @discardableResult
    public mutating func add(path: String, scale: Float, model: EncoderModel, labels: [String] = []) throws -> LoRAAdapter? {
        switch try AdapterSource.detect(path) {
        case .lora(let dir):
            let a = try LoRAAdapter(peft: dir, for: model, labels: labels)
            loras.append((a, scale))
            return a
        case .sparse(let file):
            try addSparse(SafetensorsFile(path: file), scale: scale, model: model)
        case .taskVector(let file):
            let f = try SafetensorsFile(path: file)
            try addDense(names: f.names, tensor: { try f.tensor($0) }, minus: nil, scale: scale, model: model, source: file)
        case .alloyDelta(let file):
            let f = try AlloyFile(path: file)
            guard f.kind == "sparse" || f.kind == "task-vector" else {
                throw EncoderError.adapter(path: file, reason: "a .alloy adapter must be a sparse or task-vector delta, this one is \(f.kind ?? "unlabelled")")
            }
            if case .string(let want)? = f.metadata["base_sha256"], want != (try model.contentHash()) {
                throw EncoderError.adapter(path: file, reason: "made for a base with content hash \(want.prefix(12))…, but \(model.directory) is \(try model.contentHash().prefix(12))… — use the base it was made for")
            }
            try addDense(names: f.names, tensor: { try f.tensor($0) }, minus: nil, scale: scale, model: model, source: file)
        case .fineTuned(let dir):
            let ft = try EncoderModel(directory: dir)
            guard ft.config.hiddenSize == model.hidden, ft.layers == model.layers else {
                throw EncoderError.adapter(path: dir, reason: "fine-tuned model has \(ft.layers) layers × \(ft.hidden), the base \(model.layers) × \(model.hidden)")
            }
            try addDense(names: Array(ft.weights.keys), tensor: { name in
                guard let t = ft.weights[name] else { throw EncoderError.missingTensor(model: dir, tensor: name) }
                return t
            }, minus: model.weights, scale: scale, model: model, source: dir)
        }
        return nil
    }

    /// Adds the difference between full weights (e.g. a merge result held in memory) and the
    /// base, times `scale`, as `.fineTuned` does for a folder.
    public mutating func add(weights: [(String, Tensor)], scale: Float, model: EncoderModel, source: String) throws {
        let byName = Dictionary(weights, uniquingKeysWith: { a, _ in a })
        let names = weights.map(\.0).filter { model.weights[model.architecture.canonical($0)] != nil }
        try addDense(names: names, tensor: { name in
            guard let t = byName[name] else { throw EncoderError.missingTensor(model: source, tensor: name) }
            return t
        }, minus: model.weights, scale: scale, model: model, source: source)
    }

    /// Copy-on-write: the first patch of a tensor copies it from the base.
    /// A fresh copy of the weight `name` as this set has it (patched or base), put in `patched`
    /// for the caller to write: copies of the set never share what one of them changes.
    mutating func writable(_ name: String, model: EncoderModel, source: String) throws -> UnsafeMutablePointer<Float> {
        guard let current = patched[name] ?? model.weights[name] else {
            throw EncoderError.adapter(path: source, reason: "tensor \"\(name)\" is not a weight of the base model — was it made for another base?")
        }
        let copy = try Tensor(dtype: .f32, shape: current.shape, bytes: current.rawBytes)
        patched[name] = copy
        return copy.buffer.mutableBase.assumingMemoryBound(to: Float.self)
    }

    mutating func addSparse(_ f: SafetensorsFile, scale: Float, model: EncoderModel) throws {
        let arch = model.architecture
        let delta = try SparseDelta(f) { model.weights[arch.canonical($0)]?.elementCount }
        for e in delta.entries {
            let values = try e.values.floats()
            let dst = try writable(arch.canonical(e.name), model: model, source: f.path)
            for (k, i) in e.indices.enumerated() { dst[i] += scale * values[k] }
        }
    }

    mutating func addDense(names: [String], tensor: (String) throws -> Tensor, minus base: [String: Tensor]?, scale: Float,
                           model: EncoderModel, source: String) throws {
        for raw in names.sorted() {
            let name = model.architecture.canonical(raw)
            if model.architecture.ignorable.contains(name) { continue }
            guard let b = model.weights[name] else {
                throw EncoderError.adapter(path: source, reason: "tensor \"\(raw)\" is not a weight of the base model — was it made for another base?")
            }
            let t = try tensor(raw)
            guard t.shape == b.shape else { throw EncoderError.shapeMismatch(source: source, tensor: raw, expected: b.shape.dims, found: t.shape.dims) }
            var delta = try t.floats()
            if base != nil { let bv = try b.floats(); for i in delta.indices { delta[i] -= bv[i] } }
            if delta.allSatisfy({ $0 == 0 }) { continue }
            let dst = try writable(name, model: model, source: source)
            delta.withUnsafeBufferPointer { Kernels.axpy(scale, $0.nonEmptyBase, dst, count: delta.count) }
        }
    }
}
