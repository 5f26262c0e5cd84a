import Tensors

/// Exact order statistics of |θᵢ − θ_base| for several models and ranks at once, without
/// sorting or materialising the deltas: non-negative floats order like their bit patterns, so
/// one pass of 16-bit histograms (high half) and one more (low half, only inside the bin that
/// holds each rank) find every requested value. O(n) per pass, over both cores.
enum RadixSelect {
    struct Request { let model: Int; let rank: Int }

    static func select(_ requests: [Request], base: UnsafePointer<Float>, models: [UnsafePointer<Float>], count n: Int) -> [Float] {
        guard !requests.isEmpty else { return [] }
        let involved = Array(Set(requests.map(\.model))).sorted()
        // Pass 1: high 16 bits, one histogram per involved model.
        let high = histograms(count: n, tables: involved.count) { lo, hi, h in
            for (t, i) in involved.enumerated() {
                let m = models[i], table = h + t * 65536
                for j in lo..<hi { table[Int(abs(m[j] - base[j]).bitPattern >> 16)] += 1 }
            }
        }
        var prefixes: [UInt32] = [], residual: [Int] = []
        for r in requests {
            let t = involved.firstIndex(of: r.model)!
            var acc = 0, bin = 0
            while acc + high[t * 65536 + bin] <= r.rank { acc += high[t * 65536 + bin]; bin += 1 }
            prefixes.append(UInt32(bin)); residual.append(r.rank - acc)
        }
        // Pass 2: low 16 bits of the entries inside each request's bin.
        let low = histograms(count: n, tables: requests.count) { lo, hi, h in
            for (q, r) in requests.enumerated() {
                let m = models[r.model], table = h + q * 65536, prefix = prefixes[q]
                for j in lo..<hi {
                    let b = abs(m[j] - base[j]).bitPattern
                    if b >> 16 == prefix { table[Int(b & 0xFFFF)] += 1 }
                }
            }
        }
        return requests.indices.map { q in
            var r = residual[q], bin = 0
            while r >= low[q * 65536 + bin] { r -= low[q * 65536 + bin]; bin += 1 }
            return Float(bitPattern: prefixes[q] << 16 | UInt32(bin))
        }
    }

    /// `tables` histograms of 65,536 bins filled by `fill(lo, hi, tables)` over chunks of the
    /// index range, one private set per worker, summed at the end.
    static func histograms(count n: Int, tables: Int, fill: (Int, Int, UnsafeMutablePointer<Int>) -> Void) -> [Int] {
        let parts = max(1, min(Parallel.threadCount, n / 65536))
        let size = tables * 65536
        var all = [Int](repeating: 0, count: parts * size)
        all.withUnsafeMutableBufferPointer { buf in
            let box = UnsafeSendableBox(buf.nonEmptyBase)
            withoutActuallyEscaping(fill) { fill in
                let f = UnsafeSendableBox(fill)
                Parallel.forEach(count: parts) { p in
                    f.value(n * p / parts, n * (p + 1) / parts, box.value + p * size)
                }
            }
        }
        var total = Array(all[0..<size])
        for p in 1..<parts { for i in 0..<size { total[i] += all[p * size + i] } }
        return total
    }
}
