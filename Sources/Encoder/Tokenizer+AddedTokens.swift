import Foundation

/// `tokenizer.json`'s `added_tokens`, matched in the input before the model sees it, as the
/// `tokenizers` library's `AddedVocabulary` does: tokens with `normalized: false` are found in
/// the raw text (leftmost-longest), the text between them is normalized, then tokens with
/// `normalized: true` are found in the normalized pieces (their pattern is their content run
/// through the same normalizer). `single_word` requires word boundaries around a match;
/// `lstrip`/`rstrip` extend it over adjacent whitespace.
struct AddedTokens: Sendable {
    struct Token: Sendable {
        var content: String
        var id: Int32
        var singleWord: Bool
        var lstrip: Bool
        var rstrip: Bool
        var normalized: Bool
    }

    /// A stretch of input: text for the pre-tokenizer and model, or an added token's id.
    /// `atStart` says the text begins at offset 0 of the input (Metaspace's "first" scheme).
    enum Segment: Equatable {
        case text(String, atStart: Bool)
        case token(Int32)
    }

    /// Literal patterns grouped by first byte, longest first.
    struct Matcher: Sendable {
        let tokens: [Token]
        let patterns: [[UInt8]]
        let byFirst: [[Int32]]
        /// Whether any pattern starts with the byte (the scan's one test per byte).
        let starts: [Bool]

        init(_ tokens: [Token], patterns: [String]) {
            var list: [Token] = [], pats: [[UInt8]] = []
            for (t, p) in zip(tokens, patterns) where !p.isEmpty { list.append(t); pats.append(Array(p.utf8)) }
            var by = [[Int32]](repeating: [], count: 256)
            for (i, p) in pats.enumerated() { by[Int(p[0])].append(Int32(i)) }
            for b in 0..<256 { by[b].sort { (pats[Int($0)].count, $1) > (pats[Int($1)].count, $0) } }
            self.tokens = list
            self.patterns = pats
            byFirst = by
            starts = by.map { !$0.isEmpty }
        }

        var isEmpty: Bool { patterns.isEmpty }

        /// Longest pattern at `i`, as an index into `patterns`.
        func match(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> Int? {
            candidates: for c in byFirst[Int(bytes[i])] {
                let p = patterns[Int(c)]
                guard p.count <= bytes.count - i else { continue }
                for k in 1..<p.count where bytes[i + k] != p[k] { continue candidates }
                return Int(c)
            }
            return nil
        }

        /// Whether `text` contains any pattern (the fast check before splitting).
        func occurs(in text: String) -> Bool {
            if patterns.isEmpty { return false }
            var s = text
            return s.withUTF8 { buf in
                starts.withUnsafeBufferPointer { first in
                    for i in 0..<buf.count where first[Int(buf[i])] && match(buf, at: i) != nil { return true }
                    return false
                }
            }
        }

        /// The `tokenizers` library's `find_matches`: text stretches and token matches in order.
        func split(_ text: String, atStart: Bool) -> [Segment] {
            if patterns.isEmpty || text.isEmpty { return [.text(text, atStart: atStart)] }
            let bytes = Array(text.utf8)
            var out: [Segment] = []
            var startOffset = 0
            func piece(_ a: Int, _ b: Int) -> String { String(decoding: bytes[a..<b], as: UTF8.self) }
            bytes.withUnsafeBufferPointer { buf in
                var i = 0
                while i < buf.count {
                    guard !byFirst[Int(buf[i])].isEmpty, let m = match(buf, at: i) else { i += 1; continue }
                    var start = i, stop = i + patterns[m].count
                    i = stop
                    let t = tokens[m]
                    if t.singleWord {
                        let before = start == 0 ? nil : Self.lastScalar(buf, before: start)
                        let after = stop == buf.count ? nil : Self.firstScalar(buf, at: stop)
                        if before.map(Self.isWordChar) == true || after.map(Self.isWordChar) == true { continue }
                    }
                    if t.lstrip {
                        var s = start
                        while s > 0, let c = Self.lastScalar(buf, before: s), c.properties.isWhitespace { s -= c.utf8.count }
                        start = max(s, startOffset)
                    }
                    if t.rstrip {
                        while stop < buf.count, let c = Self.firstScalar(buf, at: stop), c.properties.isWhitespace { stop += c.utf8.count }
                        i = max(i, stop)
                    }
                    start = max(start, startOffset)
                    if startOffset < start { out.append(.text(piece(startOffset, start), atStart: atStart && startOffset == 0)) }
                    out.append(.token(t.id))
                    startOffset = stop
                }
            }
            if startOffset < bytes.count { out.append(.text(piece(startOffset, bytes.count), atStart: atStart && startOffset == 0)) }
            return out
        }

        static func firstScalar(_ buf: UnsafeBufferPointer<UInt8>, at i: Int) -> Unicode.Scalar? {
            var it = buf[i...].makeIterator()
            var d = UTF8()
            if case .scalarValue(let s) = d.decode(&it) { return s }
            return nil
        }

        static func lastScalar(_ buf: UnsafeBufferPointer<UInt8>, before end: Int) -> Unicode.Scalar? {
            var s = end - 1
            while s > 0 && buf[s] & 0xC0 == 0x80 { s -= 1 }
            guard s >= 0 else { return nil }
            return firstScalar(buf, at: s)
        }

        /// Regex `\w` (Unicode): alphabetic, marks, decimal digits, connector punctuation, joiners.
        static func isWordChar(_ s: Unicode.Scalar) -> Bool {
            if s.properties.isAlphabetic || s.properties.isJoinControl { return true }
            switch s.properties.generalCategory {
            case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
            default: return false
            }
        }
    }

    let raw: Matcher
    let normalized: Matcher

    /// `normalize` maps a normalized token's content to its pattern.
    init(tokens: [Token], normalize: (String) -> String) {
        let rawTokens = tokens.filter { !$0.normalized }, normTokens = tokens.filter(\.normalized)
        raw = Matcher(rawTokens, patterns: rawTokens.map(\.content))
        normalized = Matcher(normTokens, patterns: normTokens.map { normalize($0.content) })
    }

    var isEmpty: Bool { raw.isEmpty && normalized.isEmpty }

    /// Raw split, normalization of each text stretch, normalized split.
    func segments(_ text: String, normalize: (String) -> String) -> [Segment] {
        if !raw.occurs(in: text) {
            let n = normalize(text)
            return normalized.occurs(in: n) ? normalized.split(n, atStart: true) : [.text(n, atStart: true)]
        }
        var out: [Segment] = []
        for s in raw.split(text, atStart: true) {
            guard case .text(let t, let atStart) = s else { out.append(s); continue }
            out.append(contentsOf: normalized.split(normalize(t), atStart: atStart))
        }
        return out
    }
}
