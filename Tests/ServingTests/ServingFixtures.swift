import AsyncHTTPClient
import Encoder
import Foundation
import Formats
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Serving
import Store
import Tensors
import XCTest

/// Test material made from the tiny BERT of Tests/EncoderTests/Fixtures/tiny (hidden 32, vocab
/// 1000): a WordPiece tokenizer over a small vocabulary, LoRA experts with heads (copies of
/// StoreTests' peft_cls with scaled factors), a sparse delta with a head and a task vector.
enum ServingFixture {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let repo = here.deletingLastPathComponent().deletingLastPathComponent().path
    static func tiny(_ rel: String = "") -> String { here.appendingPathComponent("../EncoderTests/Fixtures/tiny").appendingPathComponent(rel).standardized.path }
    static let peftCls = here.appendingPathComponent("../StoreTests/Fixtures/peft_cls").standardized.path

    static let words = ["the", "a", "movie", "was", "great", "terrible", "good", "bad", "news", "sport", "market", "stock", "win", "lose",
                        "free", "call", "now", "prize", "what", "who", "where", "when", "is", "are", "this", "that", "and", "or", "of", "to"]

    /// A temporary folder, removed by the caller.
    static func tempDir(_ name: String) throws -> String {
        let d = NSTemporaryDirectory() + "alloy-serve-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// The tiny model with tokenizer.json and modules.json (mean pooling, Normalize) in `dir/base`.
    static func base(in dir: String) throws -> String {
        let b = dir + "/base"
        try FileManager.default.createDirectory(atPath: b, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] { try FileManager.default.copyItem(atPath: tiny(f), toPath: b + "/" + f) }
        var vocab: [String] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        let letters = "abcdefghijklmnopqrstuvwxyz0123456789".map(String.init)
        vocab += letters + letters.map { "##" + $0 } + [".", ",", "!", "?", "'", "-"] + words.filter { !letters.contains($0) }
        let entries = vocab.enumerated().map { "\(JSONValue.string($1).serialized()):\($0)" }.joined(separator: ",")
        let tok = ###"{"normalizer":{"type":"BertNormalizer","lowercase":true,"strip_accents":null,"clean_text":true,"handle_chinese_chars":true},"pre_tokenizer":{"type":"BertPreTokenizer"},"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{\###(entries)}}}"###
        try tok.write(toFile: b + "/tokenizer.json", atomically: true, encoding: .utf8)
        let modules = #"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#
        try modules.write(toFile: b + "/modules.json", atomically: true, encoding: .utf8)
        return b
    }

    /// A copy of peft_cls with LoRA B factors times `factor` and the classifier rows rotated by
    /// `k`, labelled by a card.json, in `dir/lora-k`.
    static func lora(in dir: String, k: Int, factor: Float) throws -> String {
        let out = dir + "/lora-\(k)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: peftCls + "/adapter_config.json", toPath: out + "/adapter_config.json")
        let f = try SafetensorsFile(path: peftCls + "/adapter_model.safetensors")
        let tensors = try f.names.map { name -> (String, Tensor) in
            let t = try f.tensor(name)
            var v = try t.floats()
            if name.contains("lora_B") { v = v.map { $0 * factor } }
            if name.hasSuffix("classifier.weight") || name.hasSuffix("classifier.bias") {
                let rows = t.shape.dims[0], width = v.count / rows
                var rotated: [Float] = []
                for r in 0..<rows {
                    let src = (r + k) % rows
                    rotated += v[(src * width)..<((src + 1) * width)]
                }
                v = rotated
            }
            return (name, try Tensor(v, shape: t.shape))
        }
        try SafetensorsWriter.write(tensors, to: out + "/adapter_model.safetensors")
        try #"{"task":"t\#(k)","labels":["neg","neu","pos"],"head":{"pooling":"mean","max_length":48}}"#.write(toFile: out + "/card.json", atomically: true, encoding: .utf8)
        return out
    }

    /// A seeded sparse delta (5% of query/value weights, values ±0.05) with a head and labels,
    /// in `dir/sparse-seed` (delta.safetensors, head.safetensors, card.json).
    static func sparse(in dir: String, seed: UInt64) throws -> String {
        let out = dir + "/sparse-\(seed)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var rng = SplitMix(seed: seed)
        var tensors: [(String, Tensor)] = []
        for l in 0..<2 {
            for m in ["query", "value"] {
                let name = "encoder.layer.\(l).attention.self.\(m).weight"
                let idx = (0..<1024).filter { _ in rng.next() % 20 == 0 }.map { Int32($0) }
                let vals = idx.map { _ in Float(Int64(rng.next() % 2001) - 1000) / 20000 }
                let ib = try idx.withUnsafeBytes { try Tensor(dtype: .i32, shape: Shape([idx.count]), bytes: $0) }
                tensors.append((name + ".indices", ib))
                tensors.append((name + ".values", try Tensor(vals, shape: Shape([vals.count]))))
            }
        }
        try SafetensorsWriter.write(tensors, to: out + "/delta.safetensors")
        try head(seed: seed &+ 1, labels: 4, to: out + "/head.safetensors")
        try #"{"task":"s\#(seed)","labels":["w","x","y","z"],"head":{"pooling":"mean","max_length":40}}"#.write(toFile: out + "/card.json", atomically: true, encoding: .utf8)
        return out
    }

    /// A seeded dense task vector over the two output dense layers, as `dir/tv-seed.safetensors`.
    static func taskVector(in dir: String, seed: UInt64) throws -> String {
        var rng = SplitMix(seed: seed)
        let tensors = try (0..<2).map { l -> (String, Tensor) in
            let v = (0..<(32 * 64)).map { _ in Float(Int64(rng.next() % 2001) - 1000) / 50000 }
            return ("encoder.layer.\(l).output.dense.weight", try Tensor(v, shape: Shape([32, 64])))
        }
        let path = dir + "/tv-\(seed).safetensors"
        try SafetensorsWriter.write(tensors, to: path)
        return path
    }

    static func head(seed: UInt64, labels: Int, to path: String) throws {
        var rng = SplitMix(seed: seed)
        let w = (0..<(labels * 32)).map { _ in Float(Int64(rng.next() % 2001) - 1000) / 500 }
        let b = (0..<labels).map { _ in Float(Int64(rng.next() % 2001) - 1000) / 5000 }
        try SafetensorsWriter.write([("classifier.weight", try Tensor(w, shape: Shape([labels, 32]))), ("classifier.bias", try Tensor(b, shape: Shape([labels])))], to: path)
    }

    /// Seeded sentences of 1–`maxWords` words from `words` (some with unknown words).
    static func sentences(_ n: Int, seed: UInt64, maxWords: Int = 12) -> [String] {
        var rng = SplitMix(seed: seed)
        return (0..<n).map { _ in
            let len = 1 + Int(rng.next() % UInt64(maxWords))
            return (0..<len).map { _ in rng.next() % 17 == 0 ? "zyxq" : words[Int(rng.next() % UInt64(words.count))] }.joined(separator: " ")
        }
    }

    /// What `alloy embed --model base --adapter a@s …` prints, computed by the same calls.
    static func embed(_ encoder: SentenceEncoder, _ texts: [String], adapters: [(String, Float)], normalized: Bool? = nil) throws -> [[Float]] {
        var set = AdapterSet()
        for (p, s) in adapters { try set.add(path: p, scale: s, model: encoder.model, labels: ClassificationHead.labels(near: p)) }
        return encoder.encode(texts, adapters: set, normalized: normalized)
    }

    /// What `alloy classify --model base --adapter a --json` computes: the probabilities per text.
    static func classify(_ encoder: SentenceEncoder, _ texts: [String], adapter: String) throws -> (labels: [String], probabilities: [[Float]]) {
        var set = AdapterSet()
        let lora = try set.add(path: adapter, scale: 1, model: encoder.model, labels: ClassificationHead.labels(near: adapter))
        let h = try lora?.head ?? ClassificationHead.load(path: adapter, model: encoder.model)
        let pooled = encoder.encode(texts, adapters: set, normalized: false, maxLength: h.maxLength)
        return (h.labels, pooled.map(h.probabilities))
    }
}

/// An in-process server on an ephemeral loopback port, and an HTTP client for it.
final class RunningServer: Sendable {
    let server: AlloyServer
    let group: ServiceGroup
    let task: Task<Void, any Error>
    let port: Int
    let client: HTTPClient

    /// `logger`: the server's (default: warnings and up only, to the stream handler).
    init(_ options: ServeOptions, logger: Logger? = nil) async throws {
        var o = options
        o.host = "127.0.0.1"
        o.port = 0
        var quiet = Logger(label: "alloy.serve.test")
        quiet.logLevel = .warning
        server = try AlloyServer(options: o, logger: logger ?? quiet)
        try await server.preload()
        let (stream, cont) = AsyncStream<Int>.makeStream()
        group = server.serviceGroup(onRunning: { port in cont.yield(port); cont.finish() })
        let g = group
        task = Task { try await g.run() }
        var it = stream.makeAsyncIterator()
        guard let p = await it.next(), p > 0 else { throw XCTSkip("server did not report a port") }
        port = p
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: .init(connect: .seconds(5), read: .seconds(60))))
    }

    func stop() async throws {
        try await client.shutdown()
        await group.triggerGracefulShutdown()
        try await task.value
    }

    /// Sends `body` (raw bytes) to `path`; the status and the body text.
    func send(_ method: HTTPMethod, _ path: String, raw: String? = nil) async throws -> (status: Int, body: String) {
        var req = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        req.method = method
        if let raw {
            req.headers.add(name: "content-type", value: "application/json")
            req.body = .bytes(ByteBuffer(string: raw))
        }
        let res = try await client.execute(req, timeout: .seconds(60))
        let buf = try await res.body.collect(upTo: 64 << 20)
        return (Int(res.status.code), String(buffer: buf))
    }

    func post(_ path: String, _ object: Any) async throws -> (status: Int, body: String, json: Any?) {
        let data = try JSONSerialization.data(withJSONObject: object)
        let r = try await send(.POST, path, raw: String(decoding: data, as: UTF8.self))
        return (r.status, r.body, try? JSONSerialization.jsonObject(with: Data(r.body.utf8), options: [.fragmentsAllowed]))
    }

    func get(_ path: String) async throws -> (status: Int, body: String, json: Any?) {
        let r = try await send(.GET, path)
        return (r.status, r.body, try? JSONSerialization.jsonObject(with: Data(r.body.utf8), options: [.fragmentsAllowed]))
    }
}

/// `[[Double]]` from a JSON answer, failing the test on another shape.
func vectors(_ json: Any?, file: StaticString = #filePath, line: UInt = #line) -> [[Float]] {
    guard let rows = json as? [[Any]] else { XCTFail("not a list of vectors: \(String(describing: json).prefix(200))", file: file, line: line); return [] }
    return rows.map { $0.map { Float(($0 as? NSNumber)?.doubleValue ?? .nan) } }
}

/// Largest absolute difference between two lists of vectors (∞ when their shapes differ).
func maxDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
    guard a.count == b.count, zip(a, b).allSatisfy({ $0.count == $1.count }) else { return .infinity }
    return zip(a, b).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
}
