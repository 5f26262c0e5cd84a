import Foundation
import Tensors

/// A classification head on pooled encoder states: optional dense layers, then the output
/// projection to one logit per label. Two kinds exist:
/// - Alloy's own experts: one linear layer on the mean-pooled (not normalised) states
///   (Adapters/*/card.json: head.pooling = "mean");
/// - transformers' `*ForSequenceClassification` heads on the first token's state (BERT's pooler
///   + classifier, RoBERTa's dense + tanh + out_proj, …; `ClassificationHead+HuggingFace.swift`).
public struct ClassificationHead: Sendable {
    /// What the logits mean (transformers' `problem_type`).
    public enum Problem: String, Sendable {
        /// One label per input: softmax.
        case singleLabel = "single_label_classification"
        /// Any number of labels per input: an independent sigmoid per label.
        case multiLabel = "multi_label_classification"
        /// Scores, returned as they are.
        case regression
    }

    /// How the encoder's token states are pooled for this head.
    public let pooling: Pooling
    /// Layers before the output projection (BERT's pooler, RoBERTa's `classifier.dense`, …).
    public let layers: [DenseLayer]
    /// labels × width, no activation.
    public let output: DenseLayer
    public var labels: [String]
    public var problem: Problem
    /// Token limit the head was trained with (card.json `head.max_length`, or the tokenizer's
    /// `model_max_length`), if recorded.
    public var maxLength: Int?
    /// transformers' `model_type` whose head layout this is, for heads from transformers
    /// checkpoints (kept by the store and written back on export); nil for Alloy's linear heads.
    public var layout: String?

    /// Alloy's linear head on mean-pooled states.
    public init(weight: Tensor, bias: Tensor, labels: [String]) throws {
        guard weight.shape.rank == 2, bias.shape.dims == [weight.shape.dims[0]] else {
            throw EncoderError.head(path: "head", reason: "classifier.weight \(weight.shape) and classifier.bias \(bias.shape) do not fit together")
        }
        try self.init(pooling: .mean, layers: [], output: DenseLayer(weight: weight, bias: bias, activation: .identity, source: "head", name: "classifier"),
                      labels: labels, problem: .singleLabel)
    }

    /// A head from its parts; `labels` empty names them LABEL_0… as transformers does.
    public init(pooling: Pooling, layers: [DenseLayer], output: DenseLayer, labels: [String], problem: Problem, layout: String? = nil) throws {
        var width = layers.first?.inputs ?? output.inputs
        for (i, l) in (layers + [output]).enumerated() {
            guard l.inputs == width else {
                throw EncoderError.head(path: "head", reason: "layer \(i) takes \(l.inputs) inputs but receives \(width)")
            }
            width = l.outputs
        }
        self.pooling = pooling
        self.layers = layers
        self.output = output
        self.labels = labels.isEmpty ? (0..<output.outputs).map { "LABEL_\($0)" } : labels
        self.problem = problem
        self.layout = layout
    }

    public var count: Int { output.outputs }
    /// Width of the pooled vectors the head takes.
    public var inputWidth: Int { layers.first?.inputs ?? output.inputs }
    /// The output projection's weight (labels × width) and bias.
    public var weight: Tensor { output.weight }
    public var bias: Tensor? { output.bias }

    /// Logits for one pooled vector.
    public func logits(_ pooled: [Float]) -> [Float] {
        var v = pooled
        for l in layers { v = l.apply(v) }
        return output.apply(v)
    }

    /// Scores for one pooled vector: softmax probabilities, per-label sigmoids (multi-label),
    /// or the raw scores (regression).
    public func probabilities(_ pooled: [Float]) -> [Float] {
        var z = logits(pooled)
        switch problem {
        case .singleLabel: z.withUnsafeMutableBufferPointer { Kernels.softmaxRow($0.nonEmptyBase, count: $0.count) }
        case .multiLabel: for i in z.indices { z[i] = 1 / (1 + Foundation.exp(-z[i])) }
        case .regression: break
        }
        return z
    }

    /// The label with the highest score for one pooled vector.
    public func predict(_ pooled: [Float]) -> String {
        let p = logits(pooled)
        return labels[p.indices.max { p[$0] < p[$1] } ?? 0]
    }
}
