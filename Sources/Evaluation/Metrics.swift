import Tensors

/// Classification metrics with a seeded bootstrap confidence interval.
public struct Metrics: Sendable, Codable {
    public let accuracy: Double
    public let macroF1: Double
    /// 95% percentile-bootstrap interval of the accuracy (1,000 resamples, seeded).
    public let accuracyCI: [Double]
    public let count: Int

    public init(predicted: [String], gold: [String], seed: UInt64 = 17, resamples: Int = 1000) {
        // An invariant of the callers: one prediction per example of a split TaskData has
        // already refused when empty.
        precondition(predicted.count == gold.count && !gold.isEmpty)
        let n = gold.count
        let correct = zip(predicted, gold).map { $0 == $1 ? 1.0 : 0.0 }
        accuracy = correct.reduce(0, +) / Double(n)
        let labels = Set(gold)
        var f1s: [Double] = []
        for l in labels.sorted() {  // a fixed order: the sum is bit-reproducible
            let tp = Double(zip(predicted, gold).filter { $0 == l && $1 == l }.count)
            let fp = Double(zip(predicted, gold).filter { $0 == l && $1 != l }.count)
            let fn = Double(zip(predicted, gold).filter { $0 != l && $1 == l }.count)
            f1s.append(tp == 0 ? 0 : 2 * tp / (2 * tp + fp + fn))
        }
        macroF1 = f1s.reduce(0, +) / Double(labels.count)
        var rng = SplitMix(seed: seed)
        var accs: [Double] = []
        accs.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var s = 0.0
            for _ in 0..<n { s += correct[Int(rng.next() % UInt64(n))] }
            accs.append(s / Double(n))
        }
        accs.sort()
        accuracyCI = [accs[Int(0.025 * Double(resamples))], accs[Int(0.975 * Double(resamples)) - 1]]
        count = n
    }
}
