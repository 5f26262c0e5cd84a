import Foundation
import Formats

/// The `tokenizers` library's normalizers used by BPE and Unigram models: `NFC`, `NFD`,
/// `NFKC`, `NFKD`, `Lowercase` (per scalar, as Rust's `char::to_lowercase`), `StripAccents`
/// (drops every General_Category=Mark scalar, as `unicode_normalization`'s
/// `is_combining_mark`; meaningful after NFD/NFKD), `Strip`,
/// `Replace` (a string pattern, or a regex of the form *one character or `\s`, optionally
/// quantified by `+`, `{m}`, `{m,}` or `{m,n}`* — what SentencePiece conversions write, e.g.
/// `" {2,}"`; general regexes are refused, so a hostile file cannot make encoding backtrack
/// for ever), `Prepend`, `Precompiled` (SentencePiece charsmap)
/// and `Sequence` of them. Anything else is refused by name.
indirect enum TextNormalizer: Sendable {
    case nfc, nfd, nfkc, nfkd, lowercase, stripAccents
    case strip(left: Bool, right: Bool)
    case replace(Replacement)
    case prepend(String)
    case precompiled(PrecompiledCharsmap)
    case sequence([TextNormalizer])

    /// `Replace`'s pattern: a literal (replaced left to right, non-overlapping) or a run of
    /// one character class repeated `min…max` times (greedy, leftmost, non-overlapping).
    struct Replacement: Sendable {
        let literal: [UInt8]?
        let run: Run?
        let content: String
    }

    struct Run: Sendable, Equatable {
        /// nil: `\s` (White_Space).
        var scalar: Unicode.Scalar?
        var min: Int
        var max: Int?

        func matches(_ s: Unicode.Scalar) -> Bool { scalar.map { $0 == s } ?? s.properties.isWhitespace }

        /// Parses the supported subset; nil for anything else.
        init?(pattern: String) {
            var scalars = Array(pattern.unicodeScalars)[...]
            guard let first = scalars.popFirst() else { return nil }
            if first == "\\" {
                guard let e = scalars.popFirst() else { return nil }
                switch e {
                case "s": scalar = nil
                case "t": scalar = "\t"
                case "n": scalar = "\n"
                case "r": scalar = "\r"
                default:
                    guard !e.properties.isAlphabetic && !("0"..."9").contains(e) else { return nil }
                    scalar = e
                }
            } else {
                guard !"()[]{}|.^$*+?".unicodeScalars.contains(first) else { return nil }
                scalar = first
            }
            let rest = String(String.UnicodeScalarView(scalars))
            switch rest {
            case "": min = 1; max = 1
            case "+": min = 1; max = nil
            default:
                guard rest.hasPrefix("{"), rest.hasSuffix("}") else { return nil }
                let parts = rest.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
                guard let lo = parts.first.flatMap({ Int($0) }), lo >= 1, lo <= 1 << 16 else { return nil }
                min = lo
                if parts.count == 1 { max = lo }
                else if parts.count == 2 && parts[1].isEmpty { max = nil }
                else if parts.count == 2, let hi = Int(parts[1]), hi >= lo, hi <= 1 << 16 { max = hi }
                else { return nil }
            }
        }
    }

    /// Reads `value` (the JSON at `field`); nil or null is no normalizer.
    static func parse(_ value: JSONValue?, _ json: TokenizerJSON, field: String = "normalizer", depth: Int = 0) throws -> TextNormalizer? {
        if TokenizerJSON.isNull(value) { return nil }
        guard depth < 8, case .object? = value, let type = TokenizerJSON.string(value?["type"]) else {
            throw json.error("\(field) must be an object with a \"type\"")
        }
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "StripAccents": return .stripAccents
        case "Strip":
            return .strip(left: try json.bool(value, "strip_left", field, default: true), right: try json.bool(value, "strip_right", field, default: true))
        case "Prepend":
            guard let p = try json.string(value, "prepend", field) else { throw json.error("\(field).prepend must be a string") }
            return .prepend(p)
        case "Replace":
            guard let content = try json.string(value, "content", field) else { throw json.error("\(field).content must be a string") }
            let pattern = value?["pattern"]
            if let s = TokenizerJSON.string(pattern?["String"]) {
                guard !s.isEmpty else { throw json.error("\(field).pattern.String is empty") }
                return .replace(Replacement(literal: Array(s.utf8), run: nil, content: content))
            }
            if let r = TokenizerJSON.string(pattern?["Regex"]) {
                guard let run = Run(pattern: r) else {
                    throw json.error("\(field).pattern.Regex \(r.debugDescription) is outside the supported subset (one character or \\s, optionally with +, {m}, {m,} or {m,n})")
                }
                return .replace(Replacement(literal: nil, run: run, content: content))
            }
            throw json.error("\(field).pattern must be {\"String\": …} or {\"Regex\": …}")
        case "Precompiled":
            guard let blob = try json.string(value, "precompiled_charsmap", field) else {
                throw json.error("\(field).precompiled_charsmap must be a base64 string")
            }
            do { return .precompiled(try PrecompiledCharsmap(base64: blob)) } catch {
                throw json.error("\(field).precompiled_charsmap \(error)")
            }
        case "Sequence":
            guard case .array(let list)? = value?["normalizers"] else { throw json.error("\(field).normalizers must be an array") }
            return .sequence(try list.enumerated().compactMap { i, v in try parse(v, json, field: "\(field).normalizers[\(i)]", depth: depth + 1) })
        default:
            throw json.error("\(field) type \"\(type)\" is not supported (NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, Replace, Prepend, Precompiled, Sequence are)")
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase:
            if text.utf8.allSatisfy({ $0 < 0x80 }) { return text.lowercased() }
            var out = String.UnicodeScalarView()
            for s in text.unicodeScalars { out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars) }
            return String(out)
        case .stripAccents:
            var out = String.UnicodeScalarView()
            for s in text.unicodeScalars {
                switch s.properties.generalCategory {
                case .nonspacingMark, .spacingMark, .enclosingMark: continue
                default: out.append(s)
                }
            }
            return String(out)
        case let .strip(left, right):
            var scalars = Substring(text).unicodeScalars[...]
            if left { while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() } }
            return String(String.UnicodeScalarView(scalars))
        case .replace(let r): return r.apply(text)
        case .prepend(let p): return text.isEmpty ? text : p + text
        case .precompiled(let c): return c.apply(text)
        case .sequence(let list): return list.reduce(text) { $1.apply($0) }
        }
    }
}

extension TextNormalizer.Replacement {
    func apply(_ text: String) -> String {
        if let run {
            let scalars = Array(text.unicodeScalars)
            var out = String.UnicodeScalarView()
            var i = 0
            while i < scalars.count {
                guard run.matches(scalars[i]) else { out.append(scalars[i]); i += 1; continue }
                var j = i
                while j < scalars.count && run.matches(scalars[j]) { j += 1 }
                // The run i..<j: greedy chunks of at most `max`, each at least `min` long.
                while j - i >= run.min {
                    let take = run.max.map { Swift.min($0, j - i) } ?? (j - i)
                    out.append(contentsOf: content.unicodeScalars)
                    i += take
                }
                while i < j { out.append(scalars[i]); i += 1 }
            }
            return String(out)
        }
        guard let pat = literal else { return text }
        let bytes = Array(text.utf8)
        guard bytes.count >= pat.count else { return text }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = 0
        let rep = Array(content.utf8)
        while i < bytes.count {
            if bytes[i] == pat[0], i + pat.count <= bytes.count, bytes[i..<(i + pat.count)].elementsEqual(pat) {
                out.append(contentsOf: rep)
                i += pat.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
