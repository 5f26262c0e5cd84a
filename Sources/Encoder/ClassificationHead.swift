import Tensors

/// A linear classification head on the mean-pooled (not normalised) hidden states — the
/// convention of Alloy's experts (Adapters/*/card.json: head.pooling = "mean").
public struct ClassificationHead: Sendable {
    public let weight: Tensor   // labels × hidden
    public let bias: Tensor     // labels
    public var labels: [String]
    /// Token limit the head was trained with (card.json `head.max_length`), if recorded.
    public var maxLength: Int?

    public init(weight: Tensor, bias: Tensor, labels: [String]) throws {
        guard weight.shape.rank == 2, bias.shape.dims == [weight.shape.dims[0]] else {
            throw EncoderError.head(path: "head", reason: "classifier.weight \(weight.shape) and classifier.bias \(bias.shape) do not fit together")
        }
        self.weight = try weight.converted(to: .f32)
        self.bias = try bias.converted(to: .f32)
        self.labels = labels.isEmpty ? (0..<weight.shape.dims[0]).map { "LABEL_\($0)" } : labels
    }

    public var count: Int { weight.shape.dims[0] }

    /// Softmax probabilities for one pooled vector.
    public func probabilities(_ pooled: [Float]) -> [Float] {
        // `init` converted both to F32; the loaders check the head's width against the encoder's,
        // so pooled vectors of that encoder always fit (API contract, not input).
        let w = weight.rawBytes.bindMemory(to: Float.self), b = bias.rawBytes.bindMemory(to: Float.self)
        let k = weight.shape.dims[1]
        precondition(pooled.count == k, "a pooled vector of \(pooled.count) for a head of width \(k)")
        var logits = (0..<count).map { c in (0..<k).reduce(b[c]) { $0 + w[c * k + $1] * pooled[$1] } }
        logits.withUnsafeMutableBufferPointer { Kernels.softmaxRow($0.nonEmptyBase, count: $0.count) }
        return logits
    }
}
