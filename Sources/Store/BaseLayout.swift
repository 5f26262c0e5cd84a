import Encoder
import Foundation
import Formats
import Tensors

/// What deltas are checked against, read without loading the base: the shape of every base
/// tensor (from its weights blob's header), the architecture (config.json's `model_type`
/// through Encoder's name table, `Architecture.named`) and the hidden size (config.json).
struct BaseLayout {
    let ref: String
    let architecture: Architecture
    let hidden: Int
    /// Base tensor names in the blob's order, and their shapes.
    let names: [String]
    let shapes: [String: Shape]
    /// Canonical name (the architecture's table names, no `bert.` prefix) → base tensor name.
    let byCanonical: [String: String]

    init(base: StoredItem, blobs: BlobStore) throws {
        ref = base.ref
        let w = try blobs.open(base, role: "weights")
        guard let configBytes = try blobs.files(of: base).first(where: { $0.0 == "config.json" })?.1 else {
            throw StoreError.unsupported(ref: base.ref, reason: "has no config.json, so deltas cannot be checked against it; import the base's HF model folder instead")
        }
        let config: HFConfig
        do { config = try JSONDecoder().decode(HFConfig.self, from: Data(configBytes)) } catch {
            throw StoreError.unsupported(ref: base.ref, reason: "its config.json cannot be read as a model config: \(error)")
        }
        guard let arch = Architecture.named(modelType: config.modelType, architectures: config.architectures) else {
            throw StoreError.unsupported(ref: base.ref, reason: "its config.json names an unsupported architecture (\(config.modelType ?? config.architectures?.first ?? "none"))")
        }
        architecture = arch
        hidden = config.hiddenSize
        names = w.names
        var shapes: [String: Shape] = [:], canon: [String: String] = [:]
        for t in w.tensors {
            shapes[t.name] = t.shape
            canon[arch.canonical(t.name)] = t.name
        }
        self.shapes = shapes
        byCanonical = canon
    }

    /// The base tensor a delta or fine-tuned tensor named `name` updates, if any.
    func baseName(_ name: String) -> String? { byCanonical[architecture.canonical(name)] }

    /// Checks that every tensor of a delta updates a base tensor of the same shape.
    func checkDelta(_ tensors: [(name: String, shape: Shape)], source: String, hint: String = "") throws {
        for t in tensors {
            guard let b = baseName(t.name), let shape = shapes[b] else {
                throw StoreError.invalidSource(source: source, reason: "tensor \"\(t.name)\" is not a weight of the base\(hint)")
            }
            guard shape == t.shape else { throw StoreError.shapeMismatch(source: source, tensor: t.name, expected: shape.dims, found: t.shape.dims) }
        }
    }

    /// Checks a PEFT LoRA against the base: every module updates a base matrix whose
    /// (out, in) match B's rows and A's columns; a saved classifier reads `hidden` features.
    func checkLoRA(_ peft: PEFTAdapter, source: String) throws {
        for m in peft.modules {
            guard let b = baseName(m.path + ".weight"), let shape = shapes[b], shape.rank == 2 else {
                throw StoreError.invalidSource(source: source, reason: "targets \"\(m.path)\", which the base model has no weight for — was it made for another architecture?")
            }
            let (out, inp) = (shape.dims[0], shape.dims[1])
            guard m.a.shape.rank == 2, m.b.shape.rank == 2, m.a.shape.dims[1] == inp, m.b.shape.dims[0] == out else {
                throw StoreError.shapeMismatch(source: source, tensor: m.path + ".lora_A/lora_B", expected: [out, inp],
                                              found: [m.b.shape.dims.first ?? 0, m.a.shape.dims.last ?? 0])
            }
        }
        if let w = peft.savedTensors.first(where: { $0.key.hasSuffix("classifier.weight") })?.value {
            guard w.shape.rank == 2, w.shape.dims[1] == hidden else {
                throw StoreError.shapeMismatch(source: source, tensor: "classifier.weight", expected: [w.shape.dims.first ?? 0, hidden], found: w.shape.dims)
            }
        }
    }
}
