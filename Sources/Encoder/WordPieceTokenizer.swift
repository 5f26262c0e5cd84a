import Foundation
import Formats

/// BERT's WordPiece tokenizer, read from a Hugging Face `tokenizer.json`.
///
/// Reproduces the `tokenizers` library's pipeline: `BertNormalizer` (clean text, pad CJK
/// ideographs with spaces, strip accents by NFD + dropping non-spacing marks, lowercase),
/// `BertPreTokenizer` (split on whitespace, isolate punctuation), greedy longest-match-first
/// `WordPiece` with the `##` continuation prefix, and `[CLS] … [SEP]` post-processing with
/// truncation.
public struct WordPieceTokenizer: Sendable {
    public let vocab: [String: Int32]
    public let unkId: Int32
    public let clsId: Int32
    public let sepId: Int32
    public let padId: Int32
    public let continuingPrefix: String
    public let maxInputCharsPerWord: Int
    public let lowercase: Bool
    public let stripAccents: Bool
    public let cleanText: Bool
    public let handleChineseChars: Bool
    /// Per ASCII byte, what the normalizer does with it (derived from the general rules, so
    /// the ASCII fast path cannot disagree with them): `drop`, `space`, or the byte to keep.
    let asciiNormalized: [UInt16]
    static let drop: UInt16 = 0x100, space: UInt16 = 0x101

    /// Loads `tokenizer.json`; errors name the file and what is unsupported.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EncoderError.missingFile(path: path, hint: "the model directory needs a tokenizer.json (Hugging Face tokenizers format)")
        }
        guard let root = try? data.withUnsafeBytes({ try JSONValue.parse($0) }), case .object(let model)? = root["model"] else {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "not a tokenizers JSON file")
        }
        func member(_ object: [(String, JSONValue)], _ key: String) -> JSONValue? { object.first { $0.0 == key }?.1 }
        func string(_ v: JSONValue?) -> String? { if case .string(let s)? = v { return s }; return nil }
        func bool(_ v: JSONValue?) -> Bool? { if case .bool(let b)? = v { return b }; return nil }
        func int(_ v: JSONValue?) -> Int? { if case .integer(let i)? = v { return i }; return nil }
        guard string(member(model, "type")) == "WordPiece", case .object(let rawVocab)? = member(model, "vocab") else {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "model type \(string(member(model, "type")) ?? "none"); only WordPiece is supported")
        }
        var vocab = [String: Int32](minimumCapacity: rawVocab.count)
        for (k, v) in rawVocab {
            guard let i = int(v), let id = Int32(exactly: i), id >= 0 else {
                throw EncoderError.unsupportedTokenizer(path: path, reason: "vocabulary entry \(k) has no non-negative integer id")
            }
            vocab[k] = id
        }
        self.vocab = vocab
        func id(_ token: String) throws -> Int32 {
            guard let i = vocab[token] else { throw EncoderError.unsupportedTokenizer(path: path, reason: "vocabulary lacks \(token)") }
            return i
        }
        unkId = try id(string(member(model, "unk_token")) ?? "[UNK]")
        continuingPrefix = string(member(model, "continuing_subword_prefix")) ?? "##"
        maxInputCharsPerWord = int(member(model, "max_input_chars_per_word")) ?? 100
        // WordPiece is quadratic in a word's length; real tokenizers use 100.
        guard maxInputCharsPerWord >= 0, maxInputCharsPerWord <= 10_000 else {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "max_input_chars_per_word = \(maxInputCharsPerWord) is outside 0…10000")
        }
        if let norm = root["normalizer"], norm != .null, string(norm["type"]) != "BertNormalizer" {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "normalizer \(string(norm["type"]) ?? "?"); only BertNormalizer is supported")
        }
        let norm = root["normalizer"]
        lowercase = bool(norm?["lowercase"]) ?? true
        stripAccents = bool(norm?["strip_accents"]) ?? lowercase
        cleanText = bool(norm?["clean_text"]) ?? true
        handleChineseChars = bool(norm?["handle_chinese_chars"]) ?? true
        if let pre = root["pre_tokenizer"], pre != .null, string(pre["type"]) != "BertPreTokenizer" {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "pre-tokenizer \(string(pre["type"]) ?? "?"); only BertPreTokenizer is supported")
        }
        asciiNormalized = (0..<128).map { [cleanText, lowercase] (b: Int) -> UInt16 in
            let s = Unicode.Scalar(UInt8(b))
            if cleanText {
                if b == 0 || Self.isControl(s) { return Self.drop }
                if Self.isWhitespace(s) { return Self.space }
            }
            guard lowercase, let lower = s.properties.lowercaseMapping.unicodeScalars.first else { return UInt16(b) }
            return UInt16(truncatingIfNeeded: lower.value)
        }
        clsId = try id("[CLS]")
        sepId = try id("[SEP]")
        padId = vocab["[PAD]"] ?? 0
    }

    /// Token ids with `[CLS]` and `[SEP]`, truncated to `maxLength` in all (never fewer than
    /// the two markers: a `maxLength` under 3, however negative, leaves no room for text).
    public func encode(_ text: String, maxLength: Int = 512) -> [Int32] {
        var ids: [Int32] = [clsId]
        let budget = maxLength > 2 ? maxLength - 2 : 0
        outer: for word in preTokenize(normalize(text)) {
            for id in wordPiece(word) {
                if ids.count - 1 >= budget { break outer }
                ids.append(id)
            }
        }
        ids.append(sepId)
        return ids
    }

    // MARK: normalizer

    static func isChinese(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B820...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    func normalize(_ text: String) -> String.UnicodeScalarView {
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            // ASCII: no CJK, nothing to decompose; one table lookup per byte.
            var bytes = [UInt8]()
            bytes.reserveCapacity(text.utf8.count)
            for b in text.utf8 {
                let n = asciiNormalized[Int(b)]
                if n != Self.drop { bytes.append(n == Self.space ? 0x20 : UInt8(n)) }
            }
            return String(decoding: bytes, as: UTF8.self).unicodeScalars
        }
        var out = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if cleanText {
                if s.value == 0 || s.value == 0xFFFD || Self.isControl(s) { continue }
                if Self.isWhitespace(s) { out.append(" "); continue }
            }
            if handleChineseChars && Self.isChinese(s.value) {
                out.append(" "); out.append(s); out.append(" ")
            } else {
                out.append(s)
            }
        }
        var text = String(out)
        if stripAccents {
            var kept = String.UnicodeScalarView()
            for s in text.decomposedStringWithCanonicalMapping.unicodeScalars where s.properties.generalCategory != .nonspacingMark {
                kept.append(s)
            }
            text = String(kept)
        }
        if lowercase {
            // Per scalar, as Rust's char::to_lowercase (no context-sensitive final sigma).
            var lowered = String.UnicodeScalarView()
            for s in text.unicodeScalars { lowered.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars) }
            return lowered
        }
        return text.unicodeScalars
    }

    // MARK: pre-tokenizer and WordPiece

    func preTokenize(_ scalars: String.UnicodeScalarView) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for s in scalars {
            if Self.isWhitespace(s) {
                if !current.isEmpty { words.append(current); current = [] }
            } else if Self.isPunctuation(s) {
                if !current.isEmpty { words.append(current); current = [] }
                words.append([s])
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    func wordPiece(_ word: [Unicode.Scalar]) -> [Int32] {
        if word.count > maxInputCharsPerWord { return [unkId] }
        var ids: [Int32] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int32? = nil
            while start < end {
                var piece = String(String.UnicodeScalarView(word[start..<end]))
                if start > 0 { piece = continuingPrefix + piece }
                if let id = vocab[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unkId] }
            ids.append(id)
            start = end
        }
        return ids
    }
}
