import Foundation
import Formats

/// A SentencePiece unigram tokenizer (XLM-RoBERTa, T5, mBART…) read from a Hugging Face
/// `tokenizer.json`, reproducing the `tokenizers` library's `Unigram` model
/// (`encode_optimized`): Viterbi over the word's UTF-8 bytes keeping, for each end position,
/// the best-scoring path (sum of piece log-probabilities; ties keep the first found); a
/// character no piece covers becomes the unk token with score `min score − 10`
/// (`K_UNK_PENALTY`); consecutive unk pieces are fused; with `byte_fallback`, an unknown
/// piece becomes its `<0xNN>` byte pieces when they all exist.
public struct UnigramTokenizer: TextTokenizer {
    public let vocab: [String: Int32]
    public let padId: Int32
    let scores: [Double]
    let unkId: Int32
    let unkScore: Double
    let byteFallback: Bool
    let trie: ByteTrie
    let pipeline: TokenizerPipeline

    /// Loads `tokenizer.json` at `path` (which must hold a Unigram model).
    public init(path: String) throws { try self.init(json: TokenizerJSON(path: path)) }

    init(json: TokenizerJSON) throws {
        guard json.modelType == "Unigram" else { throw json.error("model.type \"\(json.modelType)\" is not Unigram") }
        let model = json.model
        guard case .array(let raw)? = model["vocab"] else { throw json.error("model.vocab must be an array of [piece, score]") }
        guard raw.count <= TokenizerFile.maxVocab, raw.count < Int(Int32.max) else {
            throw json.error("model.vocab has \(raw.count) entries; at most \(TokenizerFile.maxVocab) are allowed")
        }
        var scores: [Double] = [], ids = [String: Int32](minimumCapacity: raw.count)
        var pieces: [String] = []
        scores.reserveCapacity(raw.count)
        for (i, entry) in raw.enumerated() {
            guard case .array(let pair) = entry, pair.count == 2, let piece = TokenizerJSON.string(pair[0]),
                  let score = TokenizerJSON.double(pair[1]), score.isFinite else {
                throw json.error("model.vocab[\(i)] is not [piece, finite score]")
            }
            guard piece.utf8.count <= TokenizerFile.maxPieceBytes else {
                throw json.error("model.vocab[\(i)] has \(piece.utf8.count) bytes; pieces may have at most \(TokenizerFile.maxPieceBytes)")
            }
            scores.append(score)
            pieces.append(piece)
            ids[piece] = Int32(i)  // a later duplicate wins, as `token_to_ids` does
        }
        guard let u = TokenizerJSON.int(model["unk_id"]), u >= 0, u < raw.count else {
            throw json.error("model.unk_id must be the index of a vocabulary entry")
        }
        unkId = Int32(u)
        unkScore = (scores.min() ?? 0) - 10
        byteFallback = try json.bool(model, "byte_fallback", "model", default: false)
        self.scores = scores
        // Byte-exact (Swift's String equality is canonical equivalence; the library's is not):
        // a later piece with the same bytes replaces an earlier one.
        trie = ByteTrie(pieces.enumerated().compactMap { i, p in p.isEmpty ? nil : (Array(p.utf8), Int32(i)) })
        let normalizer = try TextNormalizer.parse(json.root["normalizer"], json)
        let added = try json.addedTokens { normalizer?.apply($0) ?? $0 }
        var vocab = ids
        for t in added.raw.tokens + added.normalized.tokens where vocab[t.content] == nil { vocab[t.content] = t.id }
        self.vocab = vocab
        padId = json.padId(vocab, ["<pad>", "[PAD]"])
        pipeline = TokenizerPipeline(normalizer: normalizer, preTokenizer: try PreTokenizer.parse(json.root["pre_tokenizer"], json),
                                     added: added, special: try SpecialTokens.parse(json))
    }

    public func encode(_ text: String, maxLength: Int) -> [Int32] {
        pipeline.encode(text, maxLength: maxLength) { tokenize($0, into: &$1) }
    }

    /// Viterbi segmentation of one pre-tokenized word.
    func tokenize(_ word: String, into out: inout [Int32]) {
        let bytes = Array(word.utf8)
        let n = bytes.count
        guard n > 0 else { return }
        var best = [Double](repeating: 0, count: n + 1)
        var from = [Int32](repeating: -1, count: n + 1)   // start of the best piece ending here
        var piece = [Int32](repeating: -1, count: n + 1)
        bytes.withUnsafeBufferPointer { buf in
            var start = 0
            while start < n {
                let here = best[start]
                let lead = buf[start]
                let charLen = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
                var single = false
                trie.prefixes(buf, from: start) { end, id in
                    let candidate = here + scores[Int(id)]
                    if from[end] < 0 || candidate > best[end] { best[end] = candidate; from[end] = Int32(start); piece[end] = id }
                    if end - start == charLen { single = true }
                }
                let end = min(n, start + charLen)
                if !single {
                    let candidate = here + unkScore
                    if from[end] < 0 || candidate > best[end] { best[end] = candidate; from[end] = Int32(start); piece[end] = unkId }
                }
                start = end
            }
        }
        // Back from the end; runs of unk are fused into one string first.
        var reversed: [Int32] = []
        var end = n
        var unkRunStart = -1, unkRunEnd = -1
        func flushUnk(_ into: inout [Int32]) {
            guard unkRunStart >= 0 else { return }
            if let id = trie.exact(bytes[unkRunStart..<unkRunEnd]) { into.append(id) }
            else if byteFallback, let fb = byteIds(bytes[unkRunStart..<unkRunEnd]) { into.append(contentsOf: fb.reversed()) }
            else { into.append(unkId) }
            unkRunStart = -1
        }
        while end > 0 {
            let start = Int(from[end])
            guard start >= 0, start < end else { break }
            if piece[end] == unkId {
                if unkRunStart < 0 { unkRunEnd = end }
                unkRunStart = start
            } else {
                flushUnk(&reversed)
                reversed.append(piece[end])
            }
            end = start
        }
        flushUnk(&reversed)
        out.append(contentsOf: reversed.reversed())
    }

    func byteIds(_ bytes: ArraySlice<UInt8>) -> [Int32]? {
        var out: [Int32] = []
        for b in bytes {
            guard let id = trie.exact(Array(String(format: "<0x%02X>", b).utf8)[...]) else { return nil }
            out.append(id)
        }
        return out
    }
}

/// A byte trie over vocabulary pieces for common-prefix search (what `tokenizers` builds for
/// Unigram). Nodes are numbered; edges live in one hash table keyed by (node, byte).
struct ByteTrie: Sendable {
    let edges: [UInt64: Int32]
    let values: [Int32]

    init(_ keys: [([UInt8], Int32)]) {
        var edges = [UInt64: Int32](minimumCapacity: keys.count * 4)
        var values: [Int32] = [-1]
        for (key, id) in keys {
            var node: Int32 = 0
            for b in key {
                let k = UInt64(UInt32(node)) << 8 | UInt64(b)
                if let next = edges[k] { node = next } else {
                    values.append(-1)
                    let next = Int32(values.count - 1)
                    edges[k] = next
                    node = next
                }
            }
            values[Int(node)] = id
        }
        self.edges = edges
        self.values = values
    }

    /// The id of exactly `key`, if it is a piece.
    func exact(_ key: ArraySlice<UInt8>) -> Int32? {
        var node: Int32 = 0
        for b in key {
            guard let next = edges[UInt64(UInt32(node)) << 8 | UInt64(b)] else { return nil }
            node = next
        }
        let v = values[Int(node)]
        return v >= 0 ? v : nil
    }

    /// Calls `hit(end, id)` for each piece that is a prefix of `buf[from...]`, shortest first.
    func prefixes(_ buf: UnsafeBufferPointer<UInt8>, from: Int, _ hit: (Int, Int32) -> Void) {
        var node: Int32 = 0
        var i = from
        while i < buf.count, let next = edges[UInt64(UInt32(node)) << 8 | UInt64(buf[i])] {
            node = next
            i += 1
            let v = values[Int(node)]
            if v >= 0 { hit(i, v) }
        }
    }
}
