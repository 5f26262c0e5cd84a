import Foundation
import Tensors

/// An additive attention-score bias that depends only on j − i, for every sequence of a packed
/// batch: for sequence s (length L) and head h, 2L − 1 values v[r + L − 1] for r = j − i, so no
/// L×L matrix per head is built (`Kernels.attentionHead` reads row i from the middle, step −1).
/// MPNet's relative-position bias (one set per head) and ModernBERT's sliding window (0 inside,
/// −∞ outside, shared by the heads) are both of this kind.
final class ScoreBias: @unchecked Sendable {
    private let values: UnsafeMutablePointer<Float>
    private let count: Int
    /// Start of sequence s's values.
    let offsets: [Int]
    let perHead: Bool

    /// Zeros for `lengths`, with `heads` sets per sequence when `perHead`.
    init(lengths: [Int], heads: Int, perHead: Bool) {
        var offsets = [0]
        for L in lengths { offsets.append(offsets[offsets.count - 1] + (perHead ? heads : 1) * max(0, 2 * L - 1)) }
        self.offsets = offsets
        self.perHead = perHead
        count = max(1, offsets[offsets.count - 1])
        values = .allocate(capacity: count)
        values.initialize(repeating: 0, count: count)
    }

    deinit { values.deallocate() }

    /// The 2L − 1 values of sequence s, head h (writable while building).
    func values(sequence s: Int, head h: Int, length L: Int) -> UnsafeMutablePointer<Float> {
        values + offsets[s] + (perHead ? h * (2 * L - 1) : 0)
    }

    /// Where row 0's bias starts (the value for r = 0): what `Kernels.attentionHead` takes with step −1.
    func middle(sequence s: Int, head h: Int, length L: Int) -> UnsafePointer<Float> {
        UnsafePointer(values(sequence: s, head: h, length: L) + (L - 1))
    }
}

extension EncoderModel {
    /// MPNet's relative-position bucket of key j seen from query i (`relative` = j − i), as
    /// transformers' `MPNetEncoder.relative_position_bucket` (after T5, Raffel et al. 2020):
    /// 32 buckets, half per direction (keys before the query in the upper half), exact below 8,
    /// logarithmic up to distance 128, saturating there. Float arithmetic as torch's float32.
    static func mpnetBucket(relative: Int, buckets: Int = mpnetBuckets, maxDistance: Int = 128) -> Int {
        let half = buckets / 2, maxExact = half / 2
        let n = -relative
        let base = n < 0 ? half : 0
        let m = abs(n)
        if m < maxExact { return base + m }
        let scaled = logf(Float(m) / Float(maxExact)) / Float(Foundation.log(Double(maxDistance) / Double(maxExact))) * Float(half - maxExact)
        return base + min(half - 1, maxExact + Int(scaled))
    }

    /// MPNet's bias for every sequence and head: table[bucket(j − i), h] (`MPNetEncoder.compute_position_bias`).
    func relativePositionBias(table name: String, offsets: [Int], adapters: AdapterSet) -> ScoreBias {
        let table = tensor(name + ".weight", adapters), nh = heads
        let lengths = (0..<(offsets.count - 1)).map { offsets[$0 + 1] - offsets[$0] }
        let bias = ScoreBias(lengths: lengths, heads: nh, perHead: true)
        var bucketOf: [Int] = []  // bucket of r + maxL − 1, shared by all sequences
        let maxL = lengths.max() ?? 0
        for r in (1 - maxL)..<maxL { bucketOf.append(Self.mpnetBucket(relative: r)) }
        for (s, L) in lengths.enumerated() where L > 0 {
            for h in 0..<nh {
                let v = bias.values(sequence: s, head: h, length: L)
                for r in (1 - L)..<L { v[r + L - 1] = table[bucketOf[r + maxL - 1] * nh + h] }
            }
        }
        return bias
    }
}
