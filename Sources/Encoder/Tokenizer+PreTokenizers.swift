import Foundation
import Formats

/// The `tokenizers` library's pre-tokenizers used by BPE and Unigram models: `ByteLevel`
/// (GPT-2's split regex, `add_prefix_space`, `use_regex`, bytes mapped to printable
/// characters), `Metaspace` (spaces → `▁`, `prepend_scheme` always/first/never, split before
/// each `▁`), `WhitespaceSplit`, and `Sequence` of them. Empty pieces are dropped, as
/// `PreTokenizedString::split` does.
indirect enum PreTokenizer: Sendable {
    enum PrependScheme: Sendable { case always, first, never }
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case metaspace(replacement: Unicode.Scalar, scheme: PrependScheme, split: Bool)
    case whitespaceSplit
    case sequence([PreTokenizer])

    typealias Piece = (text: String, atStart: Bool)

    static func parse(_ value: JSONValue?, _ json: TokenizerJSON, field: String = "pre_tokenizer", depth: Int = 0) throws -> PreTokenizer? {
        if TokenizerJSON.isNull(value) { return nil }
        guard depth < 8, case .object? = value, let type = TokenizerJSON.string(value?["type"]) else {
            throw json.error("\(field) must be an object with a \"type\"")
        }
        switch type {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try json.bool(value, "add_prefix_space", field, default: true),
                              useRegex: try json.bool(value, "use_regex", field, default: true))
        case "Metaspace":
            let rep = try json.string(value, "replacement", field) ?? "▁"
            guard rep.unicodeScalars.count == 1, let r = rep.unicodeScalars.first else {
                throw json.error("\(field).replacement must be one character")
            }
            var scheme: PrependScheme
            switch try json.string(value, "prepend_scheme", field) {
            case "always"?: scheme = .always
            case "first"?: scheme = .first
            case "never"?: scheme = .never
            case nil: scheme = try json.bool(value, "add_prefix_space", field, default: true) ? .always : .never
            case let s?: throw json.error("\(field).prepend_scheme \"\(s)\" is not always, first or never")
            }
            return .metaspace(replacement: r, scheme: scheme, split: try json.bool(value, "split", field, default: true))
        case "WhitespaceSplit": return .whitespaceSplit
        case "Sequence":
            guard case .array(let list)? = value?["pretokenizers"] else { throw json.error("\(field).pretokenizers must be an array") }
            return .sequence(try list.enumerated().compactMap { i, v in try parse(v, json, field: "\(field).pretokenizers[\(i)]", depth: depth + 1) })
        default:
            throw json.error("\(field) type \"\(type)\" is not supported (ByteLevel, Metaspace, WhitespaceSplit, Sequence are)")
        }
    }

    /// Splits each piece; the result has no empty pieces.
    func apply(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case .sequence(let list): return list.reduce(pieces) { $1.apply($0) }
        case let .byteLevel(addPrefixSpace, useRegex):
            var out: [Piece] = []
            for p in pieces where !p.text.isEmpty {
                let text = addPrefixSpace && !p.text.hasPrefix(" ") ? " " + p.text : p.text
                if !useRegex { out.append((Self.byteMapped(text.utf8[...]), p.atStart)); continue }
                let utf8 = Array(text.utf8)
                for (k, r) in Self.gpt2Split(utf8).enumerated() { out.append((Self.byteMapped(utf8[r]), p.atStart && k == 0)) }
            }
            return out
        case let .metaspace(replacement, scheme, split):
            var out: [Piece] = []
            for p in pieces where !p.text.isEmpty {
                var scalars = String.UnicodeScalarView()
                let head = p.text.unicodeScalars.first
                let prepend = head != " " && head != replacement && (scheme == .always || (scheme == .first && p.atStart))
                if prepend { scalars.append(replacement) }
                for s in p.text.unicodeScalars { scalars.append(s == " " ? replacement : s) }
                guard split else { out.append((String(scalars), p.atStart)); continue }
                var current = String.UnicodeScalarView()
                var first = true
                for s in scalars {
                    if s == replacement && !current.isEmpty {
                        out.append((String(current), p.atStart && first)); first = false
                        current = String.UnicodeScalarView()
                    }
                    current.append(s)
                }
                if !current.isEmpty { out.append((String(current), p.atStart && first)) }
            }
            return out
        case .whitespaceSplit:
            var out: [Piece] = []
            for p in pieces {
                var current = String.UnicodeScalarView()
                var first = true, offset = 0, startOffset = 0
                for s in p.text.unicodeScalars {
                    if s.properties.isWhitespace {
                        if !current.isEmpty { out.append((String(current), p.atStart && first && startOffset == 0)); first = false; current = String.UnicodeScalarView() }
                    } else {
                        if current.isEmpty { startOffset = offset }
                        current.append(s)
                    }
                    offset += 1
                }
                if !current.isEmpty { out.append((String(current), p.atStart && first && startOffset == 0)) }
            }
            return out
        }
    }

    // MARK: ByteLevel

    /// GPT-2's byte → printable-character table (`bytes_to_unicode`): printable Latin-1 bytes
    /// map to themselves, the other 68 to U+0100 onwards in byte order.
    static let byteChars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(next) ?? " "
                next += 1
            }
        }
        return table
    }()

    static func byteMapped(_ bytes: some Collection<UInt8>) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteChars[Int(b)]) }
        return String(s)
    }

    /// Character classes of GPT-2's regex: letter (`\p{L}`), number (`\p{N}`), whitespace
    /// (`\s`), other.
    enum CharClass { case letter, number, space, other }

    static func charClass(_ s: Unicode.Scalar) -> CharClass {
        if s.value < 0x80 {
            let v = s.value
            if (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) { return .letter }
            if (0x30...0x39).contains(v) { return .number }
            if v == 0x20 || (0x09...0x0D).contains(v) { return .space }
            return .other
        }
        if s.properties.isWhitespace { return .space }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// The byte ranges of the matches of
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    /// (leftmost-first alternation, as Oniguruma runs it); they cover the whole input.
    static func gpt2Split(_ utf8: [UInt8]) -> [Range<Int>] {
        // Decode once: scalar starts and classes.
        var starts: [Int] = [], classes: [CharClass] = [], scalars: [Unicode.Scalar] = []
        starts.reserveCapacity(utf8.count + 1)
        var i = 0
        var it = utf8.makeIterator()
        var dec = UTF8()
        loop: while true {
            switch dec.decode(&it) {
            case .scalarValue(let s):
                starts.append(i); scalars.append(s); classes.append(charClass(s)); i += s.utf8.count
            case .emptyInput, .error: break loop
            }
        }
        starts.append(i)
        let n = scalars.count
        var out: [Range<Int>] = []
        var p = 0
        func run(_ from: Int, _ c: CharClass) -> Int { var j = from; while j < n && classes[j] == c { j += 1 }; return j }
        while p < n {
            var end = p + 1
            let s = scalars[p]
            if s == "'", p + 1 < n, let c = Self.contraction(scalars, p + 1) {
                end = p + 1 + c
            } else if s == " " && p + 1 < n && classes[p + 1] != .space {
                end = run(p + 1, classes[p + 1])
            } else if classes[p] != .space {
                end = run(p, classes[p])
            } else {
                let j = run(p, .space)
                // \s+(?!\S): the whole run at the end of input, else all but its last character.
                end = j == n ? j : (j - 1 > p ? j - 1 : j)
            }
            out.append(starts[p]..<starts[end])
            p = end
        }
        return out
    }

    /// Length (in scalars, after the apostrophe) of `s|t|re|ve|m|ll|d` at `i`.
    static func contraction(_ s: [Unicode.Scalar], _ i: Int) -> Int? {
        switch s[i] {
        case "s", "t", "m", "d": return 1
        case "r": return i + 1 < s.count && s[i + 1] == "e" ? 2 : nil
        case "v": return i + 1 < s.count && s[i + 1] == "e" ? 2 : nil
        case "l": return i + 1 < s.count && s[i + 1] == "l" ? 2 : nil
        default: return nil
        }
    }
}
