import CKernels
import Tensors

/// Exact order statistics of |τ| = |θᵢ − θ_base| for the trimming steps of TIES and Model
/// Breadcrumbs, and the exact set of entries they keep.
///
/// mergekit keeps exactly k entries (`torch.argsort(|τ|, descending=True)[:k]` for TIES,
/// `torch.sort(|τ|)` positions `[n_bot, n_bot + target)` for breadcrumbs). Alloy finds the
/// boundary values without sorting: a seeded sample (n/64 magnitudes, 4,096 to 65,536) brackets each boundary
/// rank, one streaming pass counts the entries below each bracket and collects those inside it
/// (a few percent), and a selection among those gives the value, the count below it and its ties
/// per chunk. A bracket that misses (rare: the bracket spans ±4 standard deviations of the
/// sample quantile) falls back to the two-pass radix select plus a counting pass.
///
/// Ties at a boundary are broken by position, as stable sorts do: TIES keeps the tied entries
/// with the lowest flat indices (descending stable order); breadcrumbs orders ties by index in
/// its ascending sort, so it drops the lowest-index ties at its lower boundary and keeps the
/// lowest-index ties at its upper one. Chunks are fixed (`chunk` entries), so the result does
/// not depend on the number of threads.
enum MagnitudeSelect {
    /// Entries per chunk of the streaming passes (and of the merge pass that uses the ties).
    static let chunk = 1 << 16

    /// The value at one ascending rank of |τ|, how many entries are below it, and how many equal
    /// it in each chunk (in index order of chunks).
    struct Order {
        let value: Float
        let less: Int
        let equalPerChunk: [Int]
        var equal: Int { equalPerChunk.reduce(0, +) }
    }

    /// The orders at `ranks[i]` (ascending ranks in 0..<n) of model i's |τ|, for every model.
    /// `sigmas` widens each bracket (tests pass 0 to exercise the fallback).
    static func orders(ranks: [[Int]], base: UnsafePointer<Float>, models: [UnsafePointer<Float>], count n: Int, sigmas: Double = 4) -> [[Order?]] {
        var result: [[Order?]] = ranks.map { $0.map { _ in nil } }
        guard n > 0, ranks.contains(where: { !$0.isEmpty }) else { return result }
        let chunks = (n + chunk - 1) / chunk
        // Small tensors: sort a copy.
        if n <= 32_768 {
            for (i, rs) in ranks.enumerated() where !rs.isEmpty {
                var a = (0..<n).map { Swift.abs(models[i][$0] - base[$0]) }
                a.sort()
                for (q, r) in rs.enumerated() {
                    let v = a[r]
                    let less = lowerBound(a, v), upper = lowerBound(a, v.nextUp)
                    result[i][q] = Order(value: v, less: less, equalPerChunk: [upper - less])
                }
            }
            return result
        }
        // Brackets from a seeded sample.
        struct Bracket { let model: Int, slot: Int, rank: Int, lo: Float, hi: Float, share: Double }
        var brackets: [Bracket] = []
        var rng = SplitMix(seed: UInt64(n))
        // Larger tensors get larger samples (narrower brackets, fewer candidates to select among).
        let s = min(65_536, max(4096, n / 64))
        // Stratified: one seeded position in each of s equal strata, so in index order already.
        let positions = (0..<s).map { q in
            let lo = n * q / s, hi = n * (q + 1) / s
            return lo + Int(rng.next() % UInt64(hi - lo))
        }
        for (i, rs) in ranks.enumerated() where !rs.isEmpty {
            var sample = positions.map { Swift.abs(models[i][$0] - base[$0]) }
            for (q, r) in rs.enumerated() {
                let p = Double(r) / Double(n)
                let spread = sigmas * ((p * (1 - p) / Double(s)).squareRoot() + 0.5 / Double(s))
                let iLo = Int(((p - spread) * Double(s)).rounded(.down)), iHi = Int(((p + spread) * Double(s)).rounded(.up))
                let lo: Float = iLo < 0 ? -1 : quickselect(&sample, iLo)
                let hi: Float = iHi >= s ? .infinity : quickselect(&sample, iHi)
                brackets.append(Bracket(model: i, slot: q, rank: r, lo: lo, hi: hi, share: Double(iHi - iLo) / Double(s)))
            }
        }
        // One pass: below-counts and in-bracket candidates, per chunk.
        let nb = brackets.count
        var below = [Int](repeating: 0, count: nb * chunks)
        var candidates = [[Float]](repeating: [], count: nb * chunks)
        below.withUnsafeMutableBufferPointer { bp in candidates.withUnsafeMutableBufferPointer { cp in
            let box = UnsafeSendableBox((bp.nonEmptyBase, cp.nonEmptyBase, brackets, models, base))
            Parallel.forEach(count: chunks) { c in
                let (bp, cp, brackets, models, base) = box.value
                let range = (c * chunk)..<min(n, (c + 1) * chunk)
                for (b, br) in brackets.enumerated() {
                    // Magnitudes are ≥ 0, so they order like their bit patterns (NaN above ∞):
                    // the bracket is one unsigned range of bits (CKernels, 16 lanes at a time).
                    let m = models[br.model] + range.lowerBound, bb = base + range.lowerBound
                    let lo = br.lo < 0 ? 0 : br.lo.bitPattern, span = br.hi.bitPattern &- lo
                    var below = 0
                    // Room for twice the sample's share; a second scan when more fall inside.
                    var capacity = min(range.count, Int(2 * br.share * Double(range.count)) + 256)
                    var found: [Float] = []
                    while true {
                        var inside = 0
                        found = [Float](unsafeUninitializedCapacity: capacity) { buf, filled in
                            inside = alloy_bracket_scan(m, bb, range.count, lo, span, &below, buf.baseAddress, capacity)
                            filled = min(inside, capacity)
                        }
                        if inside <= capacity { break }
                        capacity = inside
                    }
                    bp[b * chunks + c] = below
                    (cp + b * chunks + c).initialize(to: found)
                }
            }
        } }
        // Each bracket's selection among its candidates, brackets in parallel.
        var found = [Order?](repeating: nil, count: nb)
        found.withUnsafeMutableBufferPointer { fp in
            let box = UnsafeSendableBox((fp.nonEmptyBase, brackets, below, candidates))
            Parallel.forEach(count: nb) { b in
                let (fp, brackets, below, candidates) = box.value
                let br = brackets[b]
                let lessThanBracket = below[(b * chunks)..<((b + 1) * chunks)].reduce(0, +)
                let perChunk = candidates[(b * chunks)..<((b + 1) * chunks)]
                let inside = perChunk.reduce(0) { $0 + $1.count }
                guard br.rank >= lessThanBracket, br.rank < lessThanBracket + inside else { return }
                var all = [Float](); all.reserveCapacity(inside)
                for c in perChunk { all += c }
                let v = quickselect(&all, br.rank - lessThanBracket)
                let less = lessThanBracket + all.reduce(0) { $0 + ($1 < v ? 1 : 0) }
                fp[b] = Order(value: v, less: less, equalPerChunk: perChunk.map { c in c.reduce(0) { $0 + ($1 == v ? 1 : 0) } })
            }
        }
        for (b, br) in brackets.enumerated() { result[br.model][br.slot] = found[b] }
        // Fallback for brackets that missed: radix select, then a counting pass.
        for br in brackets where result[br.model][br.slot] == nil {
            let v = RadixSelect.select([.init(model: br.model, rank: br.rank)], base: base, models: models, count: n)[0]
            var less = [Int](repeating: 0, count: chunks), equal = less
            less.withUnsafeMutableBufferPointer { lp in equal.withUnsafeMutableBufferPointer { ep in
                let box = UnsafeSendableBox((lp.nonEmptyBase, ep.nonEmptyBase, models[br.model], base))
                Parallel.forEach(count: chunks) { c in
                    let (lp, ep, m, base) = box.value
                    var l = 0, e = 0
                    for j in (c * chunk)..<min(n, (c + 1) * chunk) {
                        let a = Swift.abs(m[j] - base[j])
                        if a < v { l += 1 } else if a == v { e += 1 }
                    }
                    lp[c] = l; ep[c] = e
                }
            } }
            result[br.model][br.slot] = Order(value: v, less: less.reduce(0, +), equalPerChunk: equal)
        }
        return result
    }

    /// The first index of sorted `a` whose value is ≥ `v`.
    static func lowerBound(_ a: [Float], _ v: Float) -> Int {
        var lo = 0, hi = a.count
        while lo < hi { let mid = (lo + hi) / 2; if a[mid] < v { lo = mid + 1 } else { hi = mid } }
        return lo
    }

    /// The k-th smallest of `a` (0-based), reordering `a` (Hoare's selection, median-of-three;
    /// C. A. R. Hoare 1961, "Algorithm 65: Find").
    static func quickselect(_ a: inout [Float], _ k: Int) -> Float {
        a.withUnsafeMutableBufferPointer { quickselect($0.nonEmptyBase, count: $0.count, k) }
    }

    /// `quickselect` over `count` floats at `a` (no bounds checks in the partition loops).
    static func quickselect(_ a: UnsafeMutablePointer<Float>, count: Int, _ k: Int) -> Float {
        @inline(__always) func swap(_ i: Int, _ j: Int) { let t = a[i]; a[i] = a[j]; a[j] = t }
        var lo = 0, hi = count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if a[mid] < a[lo] { swap(mid, lo) }
            if a[hi] < a[lo] { swap(hi, lo) }
            if a[hi] < a[mid] { swap(hi, mid) }
            let pivot = a[mid]
            var i = lo, j = hi
            while i <= j {
                // Bounded scans: NaNs (which compare false) must not walk off either end.
                while i < hi && a[i] < pivot { i += 1 }
                while j > lo && pivot < a[j] { j -= 1 }
                if i <= j { swap(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return a[k] }
        }
        return a[k]
    }
}

/// The entries of one model's τ that trimming keeps, as value bounds plus tie windows: an entry
/// of magnitude a is kept when lo < a < hi; when a == lo (or a == hi) it is kept if its index
/// among the entries of that magnitude, in flat index order, falls in the window. `keep` is
/// called for the entries of one chunk in index order, starting from the chunk's tie counts.
struct MagnitudeBand: Sendable {
    let lo: Float, hi: Float
    let loWindow: Range<Int>, hiWindow: Range<Int>
    /// Per chunk: entries equal to lo (hi) in earlier chunks.
    let loBefore: [Int], hiBefore: [Int]

    /// TIES: the k largest magnitudes, ties at the k-th taken lowest index first.
    init(top k: Int, order t: MagnitudeSelect.Order, count n: Int) {
        let greater = n - t.less - t.equal
        lo = t.value; hi = .infinity
        loWindow = 0..<max(0, k - greater); hiWindow = 0..<0
        loBefore = Self.prefix(t.equalPerChunk); hiBefore = []
    }

    /// Breadcrumbs: ascending ranks first...last, ties ordered by index.
    init(ranks first: Int, _ last: Int, low l: MagnitudeSelect.Order, high h: MagnitudeSelect.Order) {
        lo = l.value; hi = h.value
        if l.value == h.value {
            loWindow = (first - l.less)..<(last - l.less + 1); hiWindow = 0..<0
        } else {
            loWindow = (first - l.less)..<Int.max; hiWindow = 0..<(last - h.less + 1)
        }
        loBefore = Self.prefix(l.equalPerChunk); hiBefore = Self.prefix(h.equalPerChunk)
    }

    static func prefix(_ counts: [Int]) -> [Int] {
        var out = [Int](repeating: 0, count: counts.count), acc = 0
        for (c, x) in counts.enumerated() { out[c] = acc; acc += x }
        return out
    }

    /// This band's trimmer for chunk `c` (tie counters start at the chunk's prefix).
    func trim(chunk c: Int) -> Trim {
        Trim(kind: .band, lo: lo, hi: hi, loWindow: loWindow, hiWindow: hiWindow,
             tLo: loBefore.isEmpty ? 0 : loBefore[c], tHi: hiBefore.isEmpty ? 0 : hiBefore[c])
    }
}

/// One model's trimming rule for one chunk as plain values (no references, so the inner loops
/// copy nothing): keep all, none, a magnitude band with tie windows (`MagnitudeBand`), or a
/// seeded random subset (DARE). `keep` is called for a chunk's entries in index order.
struct Trim {
    enum Kind: UInt8 { case all, none, band, random }
    var kind: Kind
    var lo: Float = 0, hi: Float = 0
    var loWindow: Range<Int> = 0..<0, hiWindow: Range<Int> = 0..<0
    /// Entries equal to lo (hi) seen so far, counted from the tensor's start.
    var tLo = 0, tHi = 0
    var density: Float = 0
    var key: UInt64 = 0
    /// ⌈density·2²⁴⌉: `uniform(key, j) < density` ⇔ its 24 random bits < threshold (exact).
    var threshold: UInt64 = 0

    init(kind: Kind, lo: Float = 0, hi: Float = 0, loWindow: Range<Int> = 0..<0, hiWindow: Range<Int> = 0..<0, tLo: Int = 0, tHi: Int = 0) {
        self.kind = kind; self.lo = lo; self.hi = hi; self.loWindow = loWindow; self.hiWindow = hiWindow; self.tLo = tLo; self.tHi = tHi
    }

    /// DARE: keep entry j when the counter-based uniform of (key, j) is below `density`.
    init(random density: Float, key: UInt64) {
        kind = .random; self.density = density; self.key = key
        threshold = UInt64((Double(density) * 16_777_216).rounded(.up))
    }

    @inline(__always)
    mutating func keep(_ j: Int, _ delta: Float) -> Bool {
        switch kind {
        case .all: return true
        case .none: return false
        case .random: return MergeKernels.uniform(key, j) < density
        case .band:
            let a = Swift.abs(delta)
            if a > lo && a < hi { return true }
            if a == lo { defer { tLo += 1 }; return loWindow.contains(tLo) }
            if a == hi { defer { tHi += 1 }; return hiWindow.contains(tHi) }
            return false
        }
    }
}
