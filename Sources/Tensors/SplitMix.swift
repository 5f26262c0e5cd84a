/// SplitMix64 (Steele, Lea & Flood 2014): a small seeded generator whose sequence is the same on
/// every platform — for reproducible tests, bootstrap resampling and seeded sampling.
public struct SplitMix: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

/// FNV-1a (64-bit) of a string's UTF-8 bytes: a hash that is the same in every process and on
/// every platform (Swift's `hashValue` is seeded per process), for seeded per-tensor streams.
public enum StableHash {
    public static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return h
    }
}
