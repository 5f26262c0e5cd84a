import Foundation
import Formats

/// A byte-pair-encoding tokenizer (RoBERTa, GPT-2, ModernBERT, SentencePiece-BPE) read from a
/// Hugging Face `tokenizer.json`, reproducing the `tokenizers` library's `BPE` model:
/// each pre-tokenized word starts as its characters (with `continuing_subword_prefix` /
/// `end_of_word_suffix`, unknown characters as `byte_fallback` `<0xNN>` pieces or the
/// (optionally fused) unk token), then the lowest-ranked merge applies first, leftmost among
/// equals (`Word::merge_all`'s heap) — O(n log n) in a word's length, so a pathological long
/// word cannot hang it. `ignore_merges` takes a word that is itself in the vocabulary whole.
/// `dropout` must be null: its randomness has no reproducible ids.
public struct BPETokenizer: TextTokenizer {
    /// The model's vocabulary with the added tokens.
    public let vocab: [String: Int32]
    public let padId: Int32
    /// `model.vocab` alone, keyed by UTF-8 bytes (what the BPE model looks pieces up in;
    /// byte-exact as in `tokenizers`, where Swift `String` keys would merge canonically
    /// equivalent tokens).
    let modelVocab: [[UInt8]: Int32]
    let merges: [UInt64: Merge]
    let unkId: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let prefix: String?
    let suffix: String?
    let pipeline: TokenizerPipeline
    /// Ids of single-scalar vocabulary entries without prefix/suffix (the common case).
    let scalarIds: [UInt32: Int32]
    let byteFallbackIds: [Int32]?

    struct Merge: Sendable { var rank: Int32; var id: Int32 }

    /// Loads `tokenizer.json` at `path` (which must hold a BPE model).
    public init(path: String) throws { try self.init(json: TokenizerJSON(path: path)) }

    init(json: TokenizerJSON) throws {
        guard json.modelType == "BPE" else { throw json.error("model.type \"\(json.modelType)\" is not BPE") }
        let model = json.model
        if !TokenizerJSON.isNull(model["dropout"]) {
            throw json.error("model.dropout is set; BPE dropout is random and has no reproducible ids (it must be null)")
        }
        let pairs = try json.vocabPairs()
        var modelVocab = [[UInt8]: Int32](minimumCapacity: pairs.count)
        var vocab = [String: Int32](minimumCapacity: pairs.count)
        for (k, v) in pairs { modelVocab[Array(k.utf8)] = v; vocab[k] = v }
        self.modelVocab = modelVocab
        let normalizer = try TextNormalizer.parse(json.root["normalizer"], json)
        let added = try json.addedTokens { normalizer?.apply($0) ?? $0 }
        let special = try SpecialTokens.parse(json)
        for t in added.raw.tokens + added.normalized.tokens where vocab[t.content] == nil { vocab[t.content] = t.id }
        self.vocab = vocab
        pipeline = TokenizerPipeline(normalizer: normalizer, preTokenizer: try PreTokenizer.parse(json.root["pre_tokenizer"], json),
                                     added: added, special: special)
        fuseUnk = try json.bool(model, "fuse_unk", "model", default: false)
        byteFallback = try json.bool(model, "byte_fallback", "model", default: false)
        ignoreMerges = try json.bool(model, "ignore_merges", "model", default: false)
        prefix = try json.string(model, "continuing_subword_prefix", "model").flatMap { $0.isEmpty ? nil : $0 }
        suffix = try json.string(model, "end_of_word_suffix", "model").flatMap { $0.isEmpty ? nil : $0 }
        if let unk = try json.string(model, "unk_token", "model") {
            guard let id = modelVocab[Array(unk.utf8)] else { throw json.error("model.unk_token \(unk.debugDescription) is not in model.vocab") }
            unkId = id
        } else {
            unkId = nil
        }
        padId = json.padId(vocab, ["<pad>", "[PAD]", "<|padding|>"])

        // Merges: "a b" strings or [a, b] pairs; rank = position; a later duplicate wins.
        let rawMerges: [JSONValue]
        switch model["merges"] {
        case .array(let m)?: rawMerges = m
        case nil, .null?: rawMerges = []
        default: throw json.error("model.merges must be an array")
        }
        guard rawMerges.count <= TokenizerFile.maxMerges else {
            throw json.error("model.merges has \(rawMerges.count) entries; at most \(TokenizerFile.maxMerges) are allowed")
        }
        var merges = [UInt64: Merge](minimumCapacity: rawMerges.count)
        let prefixBytes = Array((prefix ?? "").utf8)
        for (rank, m) in rawMerges.enumerated() {
            let a: String, b: String
            switch m {
            case .string(let s):
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw json.error("model.merges[\(rank)] \(s.debugDescription) is not two tokens separated by one space") }
                a = String(parts[0]); b = String(parts[1])
            case .array(let pair):
                guard pair.count == 2, let x = TokenizerJSON.string(pair[0]), let y = TokenizerJSON.string(pair[1]) else {
                    throw json.error("model.merges[\(rank)] is not a pair of strings")
                }
                a = x; b = y
            default: throw json.error("model.merges[\(rank)] is neither \"a b\" nor [a, b]")
            }
            let ab = Array(a.utf8), bb = Array(b.utf8)
            guard let ia = modelVocab[ab], let ib = modelVocab[bb] else { throw json.error("model.merges[\(rank)] uses a token missing from model.vocab") }
            let merged = ab + (!prefixBytes.isEmpty && bb.starts(with: prefixBytes) ? bb.dropFirst(prefixBytes.count) : bb[...])
            guard let id = modelVocab[merged] else {
                throw json.error("model.merges[\(rank)] makes \(String(decoding: merged, as: UTF8.self).debugDescription), missing from model.vocab")
            }
            merges[UInt64(UInt32(bitPattern: ia)) << 32 | UInt64(UInt32(bitPattern: ib))] = Merge(rank: Int32(rank), id: id)
        }
        self.merges = merges
        var scalarIds = [UInt32: Int32]()
        for (k, v) in pairs where k.unicodeScalars.count == 1 {
            if let s = k.unicodeScalars.first { scalarIds[s.value] = v }
        }
        self.scalarIds = scalarIds
        if byteFallback {
            let ids = (0..<256).map { modelVocab[Array(String(format: "<0x%02X>", $0).utf8)] ?? -1 }
            byteFallbackIds = ids
        } else {
            byteFallbackIds = nil
        }
    }

    public func encode(_ text: String, maxLength: Int) -> [Int32] {
        pipeline.encode(text, maxLength: maxLength) { tokenize($0, into: &$1) }
    }

    /// The `BPE` model on one pre-tokenized word.
    func tokenize(_ word: String, into out: inout [Int32]) {
        if ignoreMerges, let id = modelVocab[Array(word.utf8)] { out.append(id); return }
        let scalars = Array(word.unicodeScalars)
        var symbols: [Int32] = []
        symbols.reserveCapacity(scalars.count)
        var unk: Int32? = nil
        for (i, s) in scalars.enumerated() {
            let first = i == 0, last = i == scalars.count - 1
            var id: Int32?
            var piece: String? = nil
            if (first || prefix == nil) && (!last || suffix == nil) {
                id = scalarIds[s.value]
            } else {
                var p = String(s)
                if !first, let prefix { p = prefix + p }
                if last, let suffix { p += suffix }
                id = modelVocab[Array(p.utf8)]
                piece = p
            }
            if let id {
                if let u = unk { symbols.append(u); unk = nil }
                symbols.append(id)
                continue
            }
            if let fallback = byteFallbackIds {
                let bytes = Array((piece ?? String(s)).utf8)
                if bytes.allSatisfy({ fallback[Int($0)] >= 0 }) {
                    if let u = unk { symbols.append(u); unk = nil }
                    for b in bytes { symbols.append(fallback[Int(b)]) }
                    continue
                }
            }
            if let unkId {
                if let u = unk, !fuseUnk { symbols.append(u) }
                unk = unkId
            }
        }
        if let u = unk { symbols.append(u) }
        mergeAll(&symbols)
        out.append(contentsOf: symbols)
    }

    /// `Word::merge_all`: a min-heap of (rank, position) over a linked list of symbols.
    func mergeAll(_ symbols: inout [Int32]) {
        let n = symbols.count
        guard n > 1 else { return }
        var prev = [Int32](repeating: -1, count: n), next = [Int32](repeating: -1, count: n)
        var alive = [Bool](repeating: true, count: n)
        for i in 0..<n { prev[i] = Int32(i - 1); next[i] = i + 1 < n ? Int32(i + 1) : -1 }
        var heap = MergeHeap()
        func pair(_ a: Int32, _ b: Int32) -> Merge? { merges[UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))] }
        for i in 0..<(n - 1) {
            if let m = pair(symbols[i], symbols[i + 1]) { heap.push(.init(rank: m.rank, pos: Int32(i), id: m.id)) }
        }
        while let top = heap.pop() {
            let p = Int(top.pos)
            guard alive[p], next[p] >= 0 else { continue }
            let q = Int(next[p])
            guard let m = pair(symbols[p], symbols[q]), m.id == top.id else { continue }
            symbols[p] = m.id
            alive[q] = false
            next[p] = next[q]
            if next[q] >= 0 { prev[Int(next[q])] = Int32(p) }
            if prev[p] >= 0, let m2 = pair(symbols[Int(prev[p])], symbols[p]) {
                heap.push(.init(rank: m2.rank, pos: prev[p], id: m2.id))
            }
            if next[p] >= 0, let m3 = pair(symbols[p], symbols[Int(next[p])]) {
                heap.push(.init(rank: m3.rank, pos: Int32(p), id: m3.id))
            }
        }
        var k = 0
        for i in 0..<n where alive[i] { symbols[k] = symbols[i]; k += 1 }
        symbols.removeLast(n - k)
    }
}

/// A binary min-heap ordered by (rank, position).
struct MergeHeap {
    struct Entry { var rank: Int32; var pos: Int32; var id: Int32 }
    var items: [Entry] = []

    static func less(_ a: Entry, _ b: Entry) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Self.less(items[l], items[m]) { m = l }
                if r < items.count && Self.less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
