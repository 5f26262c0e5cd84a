import Foundation
import Formats

/// A tokenizer read from a Hugging Face `tokenizer.json`: text in, model input ids out, with
/// the post-processor's special tokens around them. Implementations reproduce the `tokenizers`
/// library (0.23) id for id: `WordPieceTokenizer`, `BPETokenizer`, `UnigramTokenizer`.
public protocol TextTokenizer: Sendable {
    /// Ids with the post-processor's special tokens, the text truncated so that the whole
    /// sequence has at most `maxLength` ids (the special tokens always stay; `tokenizers`'
    /// `enable_truncation(max_length)`).
    func encode(_ text: String, maxLength: Int) -> [Int32]
    /// The padding id (`<pad>` / `[PAD]` when the vocabulary has one, else 0).
    var padId: Int32 { get }
    /// Token → id, the model's vocabulary (added tokens included when they are in it).
    var vocab: [String: Int32] { get }
    /// `encode`'s ids, each with the characters of `text` it came from; nil where this
    /// tokenizer does not track them (see `TokenSpan`).
    func encodeWithOffsets(_ text: String, maxLength: Int) -> [TokenSpan]?
}

extension TextTokenizer {
    /// Offsets are tracked by `WordPieceTokenizer` only; BPE and Unigram give none.
    public func encodeWithOffsets(_ text: String, maxLength: Int) -> [TokenSpan]? { nil }
}

/// A token id and where it came from in the input: `range` counts Unicode scalars (Rust
/// `char`s), as the `tokenizers` library's character offsets do (`Encoding.offsets` from Python,
/// TEI's `/tokenize` start and stop); nil for the post-processor's special tokens.
public struct TokenSpan: Sendable, Equatable {
    public let id: Int32
    public let range: Range<Int>?

    public init(id: Int32, range: Range<Int>?) { self.id = id; self.range = range }
}

/// Picks the tokenizer model from `tokenizer.json`'s `model.type`.
public enum TokenizerFile {
    /// The caps on untrusted `tokenizer.json` content.
    public static let maxFileBytes = 512 << 20
    public static let maxVocab = 1 << 22
    public static let maxMerges = 1 << 22
    public static let maxPieceBytes = 1024
    public static let maxAddedTokens = 1 << 16

    /// Loads `path` as WordPiece, BPE or Unigram; an unknown `model.type` (or anything else
    /// this reader does not reproduce exactly) is `EncoderError.unsupportedTokenizer` naming
    /// the file and the field.
    public static func load(path: String) throws -> any TextTokenizer {
        let root = try TokenizerJSON(path: path)
        switch root.modelType {
        case "WordPiece": return try WordPieceTokenizer(path: path, json: root)
        case "BPE": return try BPETokenizer(json: root)
        case "Unigram": return try UnigramTokenizer(json: root)
        case let t: throw root.error("model.type \"\(t)\" is not supported (WordPiece, BPE, Unigram are)")
        }
    }
}

/// A parsed `tokenizer.json` with typed accessors whose errors name the file and field.
struct TokenizerJSON {
    let path: String
    let root: JSONValue
    let model: JSONValue

    init(path: String) throws {
        let missing = EncoderError.missingFile(path: path, hint: "the model directory needs a tokenizer.json (Hugging Face tokenizers format)")
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path) else { throw missing }
        // Checked before reading, and again after (the file may grow in between).
        let size = (attrs[.size] as? NSNumber)?.intValue ?? 0
        let tooLarge = { (n: Int) in EncoderError.unsupportedTokenizer(path: path, reason: "\(n) bytes; more than the \(TokenizerFile.maxFileBytes >> 20) MiB a tokenizer.json may have") }
        guard size <= TokenizerFile.maxFileBytes else { throw tooLarge(size) }
        guard let data = FileManager.default.contents(atPath: path) else { throw missing }
        guard data.count <= TokenizerFile.maxFileBytes else { throw tooLarge(data.count) }
        let root: JSONValue
        do { root = try data.withUnsafeBytes { try JSONValue.parse($0, maxDepth: 32) } } catch {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "not valid JSON (\(error))")
        }
        guard case .object? = root["model"] else {
            throw EncoderError.unsupportedTokenizer(path: path, reason: "not a tokenizers JSON file (no \"model\" object)")
        }
        self.path = path
        self.root = root
        self.model = root["model"] ?? .null
    }

    func error(_ reason: String) -> EncoderError { .unsupportedTokenizer(path: path, reason: reason) }

    var modelType: String {
        if case .string(let s)? = model["type"] { return s }
        // Files written by old `tokenizers` versions omit model.type; tell the families apart.
        if case .array? = model["vocab"] { return "Unigram" }
        if model["merges"] != nil { return "BPE" }
        if model["max_input_chars_per_word"] != nil { return "WordPiece" }
        return "none"
    }

    static func string(_ v: JSONValue?) -> String? { if case .string(let s)? = v { return s }; return nil }
    static func bool(_ v: JSONValue?) -> Bool? { if case .bool(let b)? = v { return b }; return nil }
    static func int(_ v: JSONValue?) -> Int? { if case .integer(let i)? = v { return i }; return nil }
    static func double(_ v: JSONValue?) -> Double? {
        switch v {
        case .number(let d)?: return d
        case .integer(let i)?: return Double(i)
        default: return nil
        }
    }
    static func isNull(_ v: JSONValue?) -> Bool { v == nil || v == .null }

    /// A `Bool` field that may be absent or null (then `default`), else must be a boolean.
    func bool(_ object: JSONValue?, _ key: String, _ field: String, default value: Bool) throws -> Bool {
        let v = object?[key]
        if Self.isNull(v) { return value }
        guard let b = Self.bool(v) else { throw error("\(field).\(key) must be a boolean") }
        return b
    }

    /// An optional string field.
    func string(_ object: JSONValue?, _ key: String, _ field: String) throws -> String? {
        let v = object?[key]
        if Self.isNull(v) { return nil }
        guard let s = Self.string(v) else { throw error("\(field).\(key) must be a string") }
        return s
    }

    /// `padding.pad_id` when the file sets padding, else the id of the first of `names` in
    /// `vocab`, else 0.
    func padId(_ vocab: [String: Int32], _ names: [String]) -> Int32 {
        if let i = Self.int(root["padding"]?["pad_id"]), let id = Int32(exactly: i), id >= 0 { return id }
        for n in names { if let id = vocab[n] { return id } }
        return 0
    }

    /// `model.vocab` as an object of token → id (WordPiece, BPE), in document order.
    func vocabPairs() throws -> [(String, Int32)] {
        guard case .object(let raw)? = model["vocab"] else { throw error("model.vocab must be an object of token → id") }
        guard raw.count <= TokenizerFile.maxVocab else { throw error("model.vocab has \(raw.count) entries; at most \(TokenizerFile.maxVocab) are allowed") }
        var pairs: [(String, Int32)] = []
        pairs.reserveCapacity(raw.count)
        for (k, v) in raw {
            guard let i = Self.int(v), let id = Int32(exactly: i), id >= 0 else {
                throw error("model.vocab entry \(k.debugDescription) has no non-negative integer id")
            }
            guard k.utf8.count <= TokenizerFile.maxPieceBytes else {
                throw error("model.vocab entry of \(k.utf8.count) bytes is longer than \(TokenizerFile.maxPieceBytes)")
            }
            pairs.append((k, id))
        }
        return pairs
    }

    /// `model.vocab` keyed by `String` (canonically equivalent tokens collapse: the later wins).
    func vocabObject() throws -> [String: Int32] {
        let pairs = try vocabPairs()
        var vocab = [String: Int32](minimumCapacity: pairs.count)
        for (k, v) in pairs { vocab[k] = v }
        return vocab
    }

    /// `added_tokens`, checked against the caps.
    func addedTokens(normalize: (String) -> String) throws -> AddedTokens {
        guard let list = root["added_tokens"], list != .null else { return AddedTokens(tokens: [], normalize: normalize) }
        guard case .array(let items) = list else { throw error("added_tokens must be an array") }
        guard items.count <= TokenizerFile.maxAddedTokens else { throw error("added_tokens has \(items.count) entries; at most \(TokenizerFile.maxAddedTokens) are allowed") }
        var tokens: [AddedTokens.Token] = []
        for (i, item) in items.enumerated() {
            let field = "added_tokens[\(i)]"
            guard case .object = item, let content = Self.string(item["content"]), let rawId = Self.int(item["id"]),
                  let id = Int32(exactly: rawId), id >= 0 else {
                throw error("\(field) needs a string \"content\" and a non-negative integer \"id\"")
            }
            guard !content.isEmpty, content.utf8.count <= TokenizerFile.maxPieceBytes else {
                throw error("\(field).content must have 1…\(TokenizerFile.maxPieceBytes) bytes")
            }
            let special = try bool(item, "special", field, default: false)
            tokens.append(AddedTokens.Token(content: content, id: id,
                                            singleWord: try bool(item, "single_word", field, default: false),
                                            lstrip: try bool(item, "lstrip", field, default: false),
                                            rstrip: try bool(item, "rstrip", field, default: false),
                                            normalized: try bool(item, "normalized", field, default: !special)))
        }
        return AddedTokens(tokens: tokens, normalize: normalize)
    }
}

/// What `tokenizers`' `TokenizerImpl::encode` does around a model: split out added tokens,
/// normalize, pre-tokenize, run the model per word, truncate, add the special tokens.
struct TokenizerPipeline: Sendable {
    let normalizer: TextNormalizer?
    let preTokenizer: PreTokenizer?
    let added: AddedTokens
    let special: SpecialTokens

    func encode(_ text: String, maxLength: Int, model: (String, inout [Int32]) -> Void) -> [Int32] {
        let budget = special.budget(maxLength)
        var body: [Int32] = []
        outer: for seg in added.segments(text, normalize: { normalizer?.apply($0) ?? $0 }) {
            switch seg {
            case .token(let id):
                if body.count >= budget { break outer }
                body.append(id)
            case let .text(t, atStart):
                let words = preTokenizer?.apply([(t, atStart)]) ?? (t.isEmpty ? [] : [(t, atStart)])
                for w in words {
                    if body.count >= budget { break outer }
                    model(w.text, &body)
                }
            }
        }
        var ids = special.prefix
        ids.reserveCapacity(ids.count + min(body.count, budget) + special.suffix.count)
        ids.append(contentsOf: body.prefix(budget))
        ids.append(contentsOf: special.suffix)
        return ids
    }
}
