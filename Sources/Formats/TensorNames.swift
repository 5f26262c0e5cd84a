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
}
