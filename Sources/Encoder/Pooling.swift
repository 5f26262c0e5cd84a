import Tensors

/// How a sequence's token states become one vector: sentence-transformers' `Pooling` module
/// (`1_Pooling/config.json`). Several modes at once concatenate their vectors in the order
/// given (legacy `pooling_mode_*` flags: cls, max, mean, mean_sqrt_len, weightedmean, lasttoken).
/// Every token counts (special tokens included), as the attention mask has them.
public struct Pooling: Equatable, Sendable, CustomStringConvertible {
    public enum Mode: String, CaseIterable, Sendable {
        /// The first token's state ([CLS], `<s>`): BERT-family classification heads use it.
        case cls
        /// Element-wise maximum over the tokens.
        case max
        /// Mean over the tokens.
        case mean
        /// Sum over the tokens divided by √length.
        case meanSqrtLen = "mean_sqrt_len_tokens"
        /// Mean weighted by position (1, 2, …, L), as `pooling_mode_weightedmean_tokens`.
        case weightedMean = "weightedmean"
        /// The last token's state.
        case lastToken = "lasttoken"
    }

    public let modes: [Mode]

    /// `modes` in order, each once.
    public init(_ modes: [Mode]) {
        var seen: [Mode] = []
        for m in modes where !seen.contains(m) { seen.append(m) }
        self.modes = seen.isEmpty ? [.mean] : seen
    }
    public static let mean = Pooling([.mean])
    public static let cls = Pooling([.cls])

    public var description: String { modes.map(\.rawValue).joined(separator: "+") }

    /// Output width for token states of width `hidden`.
    public func width(hidden: Int) -> Int { hidden * modes.count }

    /// Sequence `s`'s pooled vector (not normalised).
    public func pool(_ h: HiddenStates, sequence s: Int) -> [Float] {
        let lo = h.offsets[s], hi = h.offsets[s + 1], w = h.width
        var out = [Float]()
        out.reserveCapacity(w * modes.count)
        h.values.withUnsafeBufferPointer { vb in
            let v = vb.baseAddress   // nil only for an empty batch, which has no sequence s
            func row(_ r: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: v.map { $0 + r * w }, count: w) }
            for mode in modes {
                guard hi > lo else { out.append(contentsOf: repeatElement(0, count: w)); continue }
                switch mode {
                case .cls: out.append(contentsOf: row(lo))
                case .lastToken: out.append(contentsOf: row(hi - 1))
                case .max:
                    var m = Array(row(lo))
                    for r in (lo + 1)..<hi { let x = row(r); for c in 0..<w where x[c] > m[c] { m[c] = x[c] } }
                    out.append(contentsOf: m)
                case .mean, .meanSqrtLen, .weightedMean:
                    var m = [Float](repeating: 0, count: w), total: Float = 0
                    for r in lo..<hi {
                        let weight: Float = mode == .weightedMean ? Float(r - lo + 1) : 1
                        let x = row(r)
                        for c in 0..<w { m[c] += weight * x[c] }
                        total += weight
                    }
                    let d = mode == .meanSqrtLen ? Float(hi - lo).squareRoot() : total
                    for c in 0..<w { m[c] /= d }
                    out.append(contentsOf: m)
                }
            }
        }
        return out
    }

    /// `v` divided by its L2 norm (sentence-transformers' `Normalize`, with torch's 1e-12 floor).
    public static func normalized(_ v: [Float]) -> [Float] {
        let norm = max(1e-12, v.reduce(0) { $0 + $1 * $1 }.squareRoot())
        return v.map { $0 / norm }
    }
}
