import Foundation

/// SentencePiece's `precompiled_charsmap` (the `Precompiled` normalizer of XLM-R, T5, mBART…):
/// a little-endian `u32` byte size of a darts-clone double-array trie, the trie's `u32` units,
/// then NUL-terminated replacement strings the trie's values point into.
///
/// Reproduces the `spm_precompiled` crate that `tokenizers` uses (not sentencepiece's own
/// longest-match `NormalizePrefix`): each extended grapheme cluster shorter than 6 UTF-8 bytes
/// is replaced by the value of the *shortest* trie key that is a prefix of it, if any;
/// otherwise each of its scalars is replaced the same way or kept.
struct PrecompiledCharsmap: Sendable {
    let units: [UInt32]
    let normalized: [UInt8]

    /// Errors say what is wrong with the blob; the caller names the file and field.
    init(base64: String) throws(CharsmapError) {
        guard let data = Data(base64Encoded: base64) else { throw .notBase64 }
        let bytes = [UInt8](data)
        guard bytes.count >= 4 else { throw .truncated("\(bytes.count) bytes; no trie size") }
        let size = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        guard size % 4 == 0, size <= bytes.count - 4 else { throw .truncated("trie size \(size) does not fit in \(bytes.count - 4) bytes") }
        var units = [UInt32](repeating: 0, count: size / 4)
        for k in 0..<units.count {
            let o = 4 + 4 * k
            units[k] = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }
        let rest = Array(bytes[(4 + size)...])
        guard Array(String(decoding: rest, as: UTF8.self).utf8) == rest else { throw .truncated("the replacement strings are not UTF-8") }
        self.units = units
        normalized = rest
    }

    enum CharsmapError: Error, CustomStringConvertible {
        case notBase64
        case truncated(String)
        var description: String {
            switch self {
            case .notBase64: return "is not valid base64"
            case .truncated(let r): return "is not a sentencepiece charsmap: \(r)"
            }
        }
    }

    /// The replacement of the shortest key that is a prefix of `key` (darts-clone
    /// `commonPrefixSearch`, first result), bounds-checked against a hostile trie.
    func transform(_ key: some Collection<UInt8>) -> ArraySlice<UInt8>? {
        guard let first = units.first else { return nil }
        func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
        var pos = offset(first)
        for c in key {
            if c == 0 { return nil }
            pos ^= Int(c)
            guard pos < units.count else { return nil }
            let u = units[pos]
            guard u & ((1 << 31) | 0xFF) == UInt32(c) else { return nil }
            pos ^= offset(u)
            if (u >> 8) & 1 == 1 {
                guard pos < units.count else { return nil }
                let start = Int(units[pos] & ((1 << 31) - 1))
                guard start <= normalized.count else { return nil }
                var end = start
                while end < normalized.count && normalized[end] != 0 { end += 1 }
                return normalized[start..<end]
            }
        }
        return nil
    }

    func apply(_ text: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for ch in text {
            let g = ch.utf8
            if g.count < 6, let r = transform(g) { out.append(contentsOf: r); continue }
            for s in ch.unicodeScalars {
                if let r = transform(s.utf8) { out.append(contentsOf: r) } else { out.append(contentsOf: s.utf8) }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
