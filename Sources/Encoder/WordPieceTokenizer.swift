import Foundation
import Formats

/// BERT's WordPiece tokenizer, read from a Hugging Face `tokenizer.json`.
///
/// Reproduces the `tokenizers` library's pipeline: added tokens split out of the text
/// (`AddedVocabulary`), `BertNormalizer` (clean text, pad CJK ideographs with spaces, strip
/// accents by NFD + dropping non-spacing marks, lowercase), `BertPreTokenizer` (split on
/// whitespace, isolate punctuation), greedy longest-match-first `WordPiece` with the `##`
/// continuation prefix, and the post-processor's special tokens (`BertProcessing`
/// `[CLS] … [SEP]`, `RobertaProcessing` `<s> … </s>` as all-mpnet-base-v2 has, or a
/// `TemplateProcessing` single template) with truncation that keeps room for them.
public struct WordPieceTokenizer: TextTokenizer {
    public let vocab: [String: Int32]
    public let unkId: Int32
    /// The first special id before the text (`[CLS]`, `<s>`), -1 when there is none.
    public var clsId: Int32 { special.prefix.first ?? -1 }
    /// The last special id after the text (`[SEP]`, `</s>`), -1 when there is none.
    public var sepId: Int32 { special.suffix.last ?? -1 }
    public let padId: Int32
    public let continuingPrefix: String
    public let maxInputCharsPerWord: Int
    public let lowercase: Bool
    public let stripAccents: Bool
    public let cleanText: Bool
    public let handleChineseChars: Bool
    let special: SpecialTokens
    let added: AddedTokens
    /// Per ASCII byte, what the normalizer does with it (derived from the general rules, so
    /// the ASCII fast path cannot disagree with them): `drop`, `space`, or the byte to keep.
    let asciiNormalized: [UInt16]
    static let drop: UInt16 = 0x100, space: UInt16 = 0x101

    /// Loads `tokenizer.json`; errors name the file and what is unsupported.
    public init(path: String) throws {
        let json = try TokenizerJSON(path: path)
        guard json.modelType == "WordPiece" else {
            throw json.error("model type \(json.modelType); only WordPiece is supported here (TokenizerFile.load reads BPE and Unigram too)")
        }
        try self.init(path: path, json: json)
    }

    init(path: String, json: TokenizerJSON) throws {
        let root = json.root, model = json.model
        func string(_ v: JSONValue?) -> String? { TokenizerJSON.string(v) }
        func bool(_ v: JSONValue?) -> Bool? { TokenizerJSON.bool(v) }
        func int(_ v: JSONValue?) -> Int? { TokenizerJSON.int(v) }
        var vocab = try json.vocabObject()
        func id(_ token: String) throws -> Int32 {
            guard let i = vocab[token] else { throw EncoderError.unsupportedTokenizer(path: path, reason: "vocabulary lacks \(token)") }
            return i
        }
        unkId = try id(string(model["unk_token"]) ?? "[UNK]")
        continuingPrefix = string(model["continuing_subword_prefix"]) ?? "##"
        maxInputCharsPerWord = int(model["max_input_chars_per_word"]) ?? 100
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
        if root["post_processor"] == nil {
            // Hand-written files without the key (tokenizers always writes it): BERT's markers.
            special = SpecialTokens(prefix: [try id("[CLS]")], suffix: [try id("[SEP]")])
        } else {
            special = try SpecialTokens.parse(json)
        }
        padId = json.padId(vocab, ["[PAD]", "<pad>"])
        // Added tokens; normalized ones are matched in normalized text.
        let partial = Self.Normalizer(cleanText: cleanText, handleChineseChars: handleChineseChars, stripAccents: stripAccents,
                                      lowercase: lowercase, asciiNormalized: asciiNormalized)
        added = try json.addedTokens { String(partial.normalize($0)) }
        for t in added.raw.tokens + added.normalized.tokens where vocab[t.content] == nil { vocab[t.content] = t.id }
        self.vocab = vocab
    }

    /// Token ids with the post-processor's special tokens, the text truncated so that there
    /// are `maxLength` ids in all (never fewer than the special tokens: a `maxLength` below
    /// their count, however negative, leaves no room for text).
    public func encode(_ text: String, maxLength: Int = 512) -> [Int32] {
        var ids: [Int32] = special.prefix
        let budget = special.budget(maxLength)
        var count = 0
        var fast: String.UnicodeScalarView? = nil
        if !added.raw.occurs(in: text) {
            let n = normalize(text)
            if added.normalized.isEmpty || !added.normalized.occurs(in: String(n)) { fast = n }
        }
        if let fast {
            outer: for word in preTokenize(fast) {
                for (id, _) in wordPiece(word) {
                    if count >= budget { break outer }
                    ids.append(id); count += 1
                }
            }
        } else {
            outer: for seg in added.segments(text, normalize: { String(normalize($0)) }) {
                switch seg {
                case .token(let id):
                    if count >= budget { break outer }
                    ids.append(id); count += 1
                case .text(let t, _):
                    for word in preTokenize(t.unicodeScalars) {
                        for (id, _) in wordPiece(word) {
                            if count >= budget { break outer }
                            ids.append(id); count += 1
                        }
                    }
                }
            }
        }
        ids.append(contentsOf: special.suffix)
        return ids
    }

    /// `encode`'s ids with the characters of `text` each came from: the span from the first to
    /// the last input scalar behind its normalized characters (`tokenizers`' alignments; an
    /// `[UNK]` spans its whole word). The text is normalized scalar by scalar to keep each
    /// output scalar's origin; BertNormalizer is per scalar except NFD's canonical reordering
    /// of combining marks, so the ids are checked against `encode`'s and the offsets dropped
    /// (nil) in the rare text where they differ. A text holding added tokens (their splitting
    /// is not tracked) gets nil too.
    public func encodeWithOffsets(_ text: String, maxLength: Int = 512) -> [TokenSpan]? {
        if added.raw.occurs(in: text) || (!added.normalized.isEmpty && added.normalized.occurs(in: String(normalize(text)))) { return nil }
        let normalizer = Normalizer(cleanText: cleanText, handleChineseChars: handleChineseChars, stripAccents: stripAccents,
                                    lowercase: lowercase, asciiNormalized: asciiNormalized)
        // BertPreTokenizer over (normalized scalar, index of the input scalar it came from),
        // each word through WordPiece as it ends, until the budget is spent.
        var spans = special.prefix.map { TokenSpan(id: $0, range: nil) }
        let budget = special.budget(maxLength)
        var count = 0
        var word: [(scalar: Unicode.Scalar, origin: Int)] = []
        func flush() {
            for (id, piece) in wordPiece(word.map(\.scalar)) where count < budget {
                spans.append(TokenSpan(id: id, range: word[piece.lowerBound].origin..<(word[piece.upperBound - 1].origin + 1)))
                count += 1
            }
            word = []
        }
        outer: for (i, original) in text.unicodeScalars.enumerated() {
            for s in normalizer.normalize(String(original)) {
                if count >= budget { break outer }
                if Self.isWhitespace(s) {
                    if !word.isEmpty { flush() }
                } else if Self.isPunctuation(s) {
                    if !word.isEmpty { flush() }
                    word = [(s, i)]
                    flush()
                } else {
                    word.append((s, i))
                }
            }
        }
        if !word.isEmpty { flush() }
        spans += special.suffix.map { TokenSpan(id: $0, range: nil) }
        return spans.map(\.id) == encode(text, maxLength: maxLength) ? spans : nil
    }

    /// The normalizer's settings alone, to normalize added tokens' patterns during `init`.
    struct Normalizer {
        let cleanText: Bool, handleChineseChars: Bool, stripAccents: Bool, lowercase: Bool
        let asciiNormalized: [UInt16]
    }

    func normalize(_ text: String) -> String.UnicodeScalarView {
        Normalizer(cleanText: cleanText, handleChineseChars: handleChineseChars, stripAccents: stripAccents,
                   lowercase: lowercase, asciiNormalized: asciiNormalized).normalize(text)
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

    /// Greedy longest-match-first pieces of `word`, each with the scalars of the word it covers
    /// (`[UNK]` for the whole word when a part has no piece or the word is too long).
    func wordPiece(_ word: [Unicode.Scalar]) -> [(Int32, Range<Int>)] {
        if word.count > maxInputCharsPerWord { return [(unkId, 0..<word.count)] }
        var ids: [(Int32, Range<Int>)] = []
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
            guard let id = found else { return [(unkId, 0..<word.count)] }
            ids.append((id, start..<end))
            start = end
        }
        return ids
    }
}

extension WordPieceTokenizer.Normalizer {
    /// `BertNormalizer`.
    func normalize(_ text: String) -> String.UnicodeScalarView {
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            // ASCII: no CJK, nothing to decompose; one table lookup per byte.
            var bytes = [UInt8]()
            bytes.reserveCapacity(text.utf8.count)
            for b in text.utf8 {
                let n = asciiNormalized[Int(b)]
                if n != WordPieceTokenizer.drop { bytes.append(n == WordPieceTokenizer.space ? 0x20 : UInt8(n)) }
            }
            return String(decoding: bytes, as: UTF8.self).unicodeScalars
        }
        var out = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if cleanText {
                if s.value == 0 || s.value == 0xFFFD || WordPieceTokenizer.isControl(s) { continue }
                if WordPieceTokenizer.isWhitespace(s) { out.append(" "); continue }
            }
            if handleChineseChars && WordPieceTokenizer.isChinese(s.value) {
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
}
