import Foundation

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

    /// Loads `tokenizer.json`; errors name the file and what is unsupported.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EncoderError.missingFile(path: path, hint: "the model directory needs a tokenizer.json (Hugging Face tokenizers format)")
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let model = root["model"] as? [String: Any] else {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "not a tokenizers JSON file")
        }
        guard (model["type"] as? String) == "WordPiece", let rawVocab = model["vocab"] as? [String: Int] else {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "model type \(model["type"] ?? "none"); only WordPiece is supported")
        }
        var vocab = [String: Int32](minimumCapacity: rawVocab.count)
        for (k, v) in rawVocab { vocab[k] = Int32(v) }
        self.vocab = vocab
        func id(_ token: String) throws -> Int32 {
            guard let i = vocab[token] else { throw EncoderError.unsupportedTokenizer(path: path, reason: "vocabulary lacks \(token)") }
            return i
        }
        unkId = try id(model["unk_token"] as? String ?? "[UNK]")
        continuingPrefix = model["continuing_subword_prefix"] as? String ?? "##"
        maxInputCharsPerWord = model["max_input_chars_per_word"] as? Int ?? 100
        let norm = root["normalizer"] as? [String: Any]
        if let norm, (norm["type"] as? String) != "BertNormalizer" {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "normalizer \(norm["type"] ?? "?"); only BertNormalizer is supported")
        }
        lowercase = norm?["lowercase"] as? Bool ?? true
        stripAccents = norm?["strip_accents"] as? Bool ?? lowercase
        cleanText = norm?["clean_text"] as? Bool ?? true
        handleChineseChars = norm?["handle_chinese_chars"] as? Bool ?? true
        if let pre = root["pre_tokenizer"] as? [String: Any], (pre["type"] as? String) != "BertPreTokenizer" {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "pre-tokenizer \(pre["type"] ?? "?"); only BertPreTokenizer is supported")
        }
        clsId = try id("[CLS]")
        sepId = try id("[SEP]")
        padId = vocab["[PAD]"] ?? 0
    }

    /// Token ids with `[CLS]` and `[SEP]`, truncated to `maxLength` in all.
    public func encode(_ text: String, maxLength: Int = 512) -> [Int32] {
        var ids: [Int32] = [clsId]
        let budget = max(0, maxLength - 2)
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
