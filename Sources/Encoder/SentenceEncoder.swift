import Foundation
import Formats
import Tensors

/// An encoder with its tokenizer and pooling, as sentence-transformers configures them:
/// `modules.json` (Pooling, Normalize), `1_Pooling/config.json`, and `max_seq_length` from
/// `sentence_bert_config.json` (256 for all-MiniLM-L6-v2, not tokenizer.json's 128).
public final class SentenceEncoder: @unchecked Sendable {
    public let model: EncoderModel
    public let tokenizer: WordPieceTokenizer
    public let maxLength: Int
    public let normalize: Bool
    public let meanPooling: Bool

    public init(directory: String) throws {
        model = try EncoderModel(directory: directory)
        tokenizer = try WordPieceTokenizer(path: (directory as NSString).appendingPathComponent("tokenizer.json"))
        func json(_ rel: String) -> Any? {
            FileManager.default.contents(atPath: (directory as NSString).appendingPathComponent(rel)).flatMap { try? JSONSerialization.jsonObject(with: $0) }
        }
        let modules = (json("modules.json") as? [[String: Any]]) ?? []
        normalize = modules.contains { ($0["type"] as? String)?.hasSuffix("Normalize") == true }
        let pooling = json("1_Pooling/config.json") as? [String: Any]
        meanPooling = (pooling?["pooling_mode_cls_token"] as? Bool) != true
        let st = json("sentence_bert_config.json") as? [String: Any]
        maxLength = min((st?["max_seq_length"] as? Int) ?? model.maxTokens, model.maxTokens)
    }

    public func tokenize(_ texts: [String], maxLength: Int? = nil) -> [[Int32]] {
        let limit = min(maxLength ?? self.maxLength, model.maxTokens)
        var ids = [[Int32]](repeating: [], count: texts.count)
        ids.withUnsafeMutableBufferPointer { out in
            let box = UnsafeSendableBox(out)
            Parallel.forChunks(count: texts.count, minChunk: 32) { range in
                for i in range { box.value[i] = tokenizer.encode(texts[i], maxLength: limit) }
            }
        }
        return ids
    }

    /// Pooled vectors for `texts`, in batches of `batchSize` sequences of similar length.
    /// `normalized` nil follows modules.json; heads use the unnormalised mean. `maxLength`
    /// overrides the configured token limit (a head's training limit).
    public func encode(_ texts: [String], adapters: AdapterSet = AdapterSet(), normalized: Bool? = nil, maxLength: Int? = nil,
                       batchSize: Int = 32, progress: ((Int) -> Void)? = nil) -> [[Float]] {
        let ids = tokenize(texts, maxLength: maxLength)
        let order = ids.indices.sorted { (ids[$0].count, $0) < (ids[$1].count, $1) }
        var out = [[Float]](repeating: [], count: texts.count)
        var done = 0
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let chunk = Array(order[start..<min(order.count, start + batchSize)])
            let h = model.hiddenStates(chunk.map { ids[$0] }, adapters: adapters)
            let pooled = meanPooling ? model.meanPool(h, normalize: normalized ?? normalize) : clsPool(h, normalize: normalized ?? normalize)
            for (k, i) in chunk.enumerated() { out[i] = pooled[k] }
            done += chunk.count
            progress?(done)
        }
        return out
    }

    func clsPool(_ h: HiddenStates, normalize: Bool) -> [[Float]] {
        (0..<h.count).map { s in
            var v = Array(h.values[(h.offsets[s] * h.width)..<((h.offsets[s] + 1) * h.width)])
            if normalize { let n = max(1e-12, v.reduce(0) { $0 + $1 * $1 }.squareRoot()); v = v.map { $0 / n } }
            return v
        }
    }
}
