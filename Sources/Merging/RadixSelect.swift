import Tensors

/// Exact order statistics of |x| without sorting or copying: non-negative floats order like
/// their bit patterns, so two 16-bit histogram passes find the value of any rank. O(n) time,
/// two passes over the inputs, 2×256 KiB of counters per thread.
enum RadixSelect {
    /// The value of ascending rank `rank` (0-based) among the n values `value(j)` (all ≥ 0).
    static func ascending(rank: Int, count n: Int, value: @escaping (Int) -> Float) -> Float {
        precondition(rank >= 0 && rank < n)
        let high = histogram(count: n) { j in Int(value(j).bitPattern >> 16) }
        var acc = 0, bin = 0
        while acc + high[bin] <= rank { acc += high[bin]; bin += 1 }
        let prefix = UInt32(bin)
        let low = histogram(count: n) { j in
            let b = value(j).bitPattern
            return b >> 16 == prefix ? Int(b & 0xFFFF) : -1
        }
        var r = rank - acc, lbin = 0
        while r >= low[lbin] { r -= low[lbin]; lbin += 1 }
        return Float(bitPattern: prefix << 16 | UInt32(lbin))
    }

    /// Counts of `bin(j)` in 0..<65536 (negative bins skipped), over both cores.
    static func histogram(count n: Int, bin: @escaping (Int) -> Int) -> [Int] {
        let parts = max(1, min(Parallel.threadCount, n / 65536))
        var hists = [[Int]](repeating: [], count: parts)
        hists.withUnsafeMutableBufferPointer { hb in
            let box = UnsafeSendableBox(hb)
            Parallel.forEach(count: parts) { p in
                var h = [Int](repeating: 0, count: 65536)
                h.withUnsafeMutableBufferPointer { hp in
                    for j in (n * p / parts)..<(n * (p + 1) / parts) {
                        let b = bin(j)
                        if b >= 0 { hp[b] += 1 }
                    }
                }
                box.value[p] = h
            }
        }
        var total = hists[0]
        for p in 1..<parts { for i in 0..<65536 { total[i] += hists[p][i] } }
        return total
    }
}
