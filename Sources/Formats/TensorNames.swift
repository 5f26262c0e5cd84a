/// Conventions of transformers' tensor names, in one place.
public enum TensorNames {
    /// The encoder layer a tensor belongs to: the number after a `layer`, `layers` or `h`
    /// component (`encoder.layer.3.attention.self.query.weight` → 3), or nil for tensors
    /// outside the layer stack (embeddings, pooler, heads).
    public static func layerIndex(_ name: String) -> Int? {
        let parts = name.split(separator: ".")
        for (i, p) in parts.enumerated() where (p == "layer" || p == "layers" || p == "h") && i + 1 < parts.count {
            if let n = Int(parts[i + 1]), n >= 0 { return n }
        }
        return nil
    }

    /// The prefixes transformers' task models (`BertForSequenceClassification`, …) put before
    /// their encoder's names: each family's `base_model_prefix`.
    public static let taskModelPrefixes = ["bert.", "roberta.", "distilbert.", "electra.", "mpnet.", "model."]

    /// Names under which a checkpoint may hold the tensor `name` of another checkpoint of the
    /// same family: the name itself, without a task-model prefix, or with one (mergekit's
    /// architecture aliases do the same).
    public static func aliases(_ name: String) -> [String] {
        if let p = taskModelPrefixes.first(where: { name.hasPrefix($0) }) { return [name, String(name.dropFirst(p.count))] }
        return [name] + taskModelPrefixes.map { $0 + name }
    }

    /// Non-persistent buffers that transformers saves or not depending on its version
    /// (transformers 5 writes neither): a checkpoint may lack them.
    public static func isOptionalBuffer(_ name: String) -> Bool {
        name.hasSuffix("embeddings.position_ids") || name.hasSuffix("embeddings.token_type_ids")
    }
}
