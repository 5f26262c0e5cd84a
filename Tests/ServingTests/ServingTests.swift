import AsyncHTTPClient
import Encoder
import Foundation
import Formats
import NIOCore
import NIOHTTP1
import Logging
import Serving
import Store
import Synchronization
import XCTest

/// `alloy serve` over real HTTP on an ephemeral loopback port: answers equal `alloy embed` /
/// `alloy classify` (the same library calls) for the base and LoRA, sparse and task-vector
/// experts; mixed concurrent requests; every class of bad request; the admin routes.
final class ServingTests: XCTestCase {
    var dir = ""
    var base = ""
    var encoder: SentenceEncoder!

    override func setUpWithError() throws {
        dir = try ServingFixture.tempDir(name)
        base = try ServingFixture.base(in: dir)
        encoder = try SentenceEncoder(directory: base)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func start(logger: Logger? = nil, _ configure: (inout ServeOptions) -> Void = { _ in }) async throws -> RunningServer {
        var o = ServeOptions(model: base)
        configure(&o)
        return try await RunningServer(o, logger: logger)
    }

    /// A JSON log line: escaped strings, numbers and booleans as such, nested metadata, a
    /// metadata key that would shadow a field renamed, keys in order.
    func testJSONLogLine() throws {
        let line = JSONLogHandler.line(timestamp: Date(timeIntervalSince1970: 1_796_000_000.25), level: .warning, label: "alloy.serve",
                                       message: "a \"quoted\"\nline", metadata: [
                                           "level": "shadow", "n": .stringConvertible(3), "x": .stringConvertible(2.5), "ok": .stringConvertible(true),
                                           "list": ["a", .stringConvertible(1)], "map": ["k": "v"], "nan": .stringConvertible(Double.nan),
                                       ])
        XCTAssertEqual(line, #"{"timestamp":"2026-11-30T00:53:20.250Z","level":"warning","label":"alloy.serve","message":"a \"quoted\"\nline","#
                       + #""metadata.level":"shadow","list":["a",1],"map":{"k":"v"},"n":3,"nan":"nan","ok":true,"x":2.5}"# + "\n")
    }

    /// `--log-format json`: one JSON object per request line, with the request's method, path,
    /// route, status and duration as keys.
    func testJSONLogsOneObjectPerRequest() async throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "alloy.serve") { label in JSONLogHandler(label: label) { line in lines.withLock { $0.append(line) } } }
        logger.logLevel = .info
        let s = try await start(logger: logger) { $0.logFormat = .json }
        do {
            let ok = try await s.get("/health").status
            XCTAssertEqual(ok, 200)
            let bad = try await s.send(.POST, "/embed", raw: "{not json").status
            XCTAssertEqual(bad, 400)
            let embed = try await s.post("/embed", ["inputs": "the movie"]).status
            XCTAssertEqual(embed, 200)
        } catch { try await s.stop(); throw error }
        try await s.stop()
        let objects = lines.withLock { $0 }.map { line -> [String: Any] in
            XCTAssertTrue(line.hasSuffix("}\n") && line.dropLast().firstIndex(of: "\n") == nil, line)
            return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
        }
        let requests = objects.filter { $0["message"] as? String == "request" }
        XCTAssertEqual(requests.map { $0["path"] as? String }, ["/health", "/embed", "/embed"])
        XCTAssertEqual(requests.map { $0["route"] as? String }, ["health", "embed", "embed"])
        XCTAssertEqual(requests.map { $0["method"] as? String }, ["GET", "POST", "POST"])
        XCTAssertEqual(requests.map { $0["status"] as? Int }, [200, 400, 200])
        for r in requests {
            XCTAssertNotNil(r["duration_ms"] as? Double, "\(r)")
            XCTAssertEqual(r["level"] as? String, "info")
            XCTAssertEqual(r["label"] as? String, "alloy.serve")
            let ts = r["timestamp"] as? String ?? ""
            XCTAssertNotNil(ts.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#, options: .regularExpression), ts)
        }
    }

    /// Tolerance: the server pools with the same code as the CLI; a LoRA in a mixed batch takes
    /// the per-sequence path of the same kernels, so answers agree to float rounding.
    let tolerance: Float = 2e-6

    func testEmbedEqualsAlloyEmbedForBaseAndEachAdapterKind() async throws {
        let lora = try ServingFixture.lora(in: dir, k: 0, factor: 3)
        let sparse = try ServingFixture.sparse(in: dir, seed: 11)
        let tv = try ServingFixture.taskVector(in: dir, seed: 12)
        let texts = ServingFixture.sentences(20, seed: 1)
        let s = try await start()
        do {
            for adapter: String? in [nil, lora, sparse, tv] {
                let want = try ServingFixture.embed(encoder, texts, adapters: adapter.map { [($0, Float(1))] } ?? [])
                var body: [String: Any] = ["inputs": texts]
                if let adapter { body["adapter_id"] = adapter }
                let r = try await s.post("/embed", body)
                XCTAssertEqual(r.status, 200, r.body)
                let got = vectors(r.json)
                XCTAssertLessThanOrEqual(maxDifference(got, want), tolerance, "adapter \(adapter ?? "base")")
                // The expert changes the answer (the comparison is not vacuous).
                if adapter != nil { XCTAssertGreaterThan(maxDifference(got, try ServingFixture.embed(encoder, texts, adapters: [])), 1e-3) }
            }
            // A single string, normalize false: the unnormalised mean, as `encode(normalized: false)`.
            let r = try await s.post("/embed", ["inputs": texts[0], "normalize": false, "adapter_id": sparse])
            XCTAssertEqual(r.status, 200, r.body)
            XCTAssertLessThanOrEqual(maxDifference(vectors(r.json), try ServingFixture.embed(encoder, [texts[0]], adapters: [(sparse, 1)], normalized: false)), tolerance)
        } catch { try await s.stop(); throw error }
        try await s.stop()
    }

    func testCompositionEqualsSummedAdapters() async throws {
        let lora = try ServingFixture.lora(in: dir, k: 1, factor: 2)
        let sparse = try ServingFixture.sparse(in: dir, seed: 21)
        let tv = try ServingFixture.taskVector(in: dir, seed: 22)
        let texts = ServingFixture.sentences(9, seed: 2)
        let s = try await start()
        do {
            let parts: [(String, Float)] = [(lora, 0.5), (sparse, 1), (tv, -0.75)]
            let want = try ServingFixture.embed(encoder, texts, adapters: parts.sorted { $0.0 < $1.0 })
            for _ in 0..<2 {
                let r = try await s.post("/embed", ["inputs": texts, "adapters": parts.map { ["id": $0.0, "weight": Double($0.1)] }])
                XCTAssertEqual(r.status, 200, r.body)
                XCTAssertLessThanOrEqual(maxDifference(vectors(r.json), want), tolerance)
            }
            // Built once: one composition among the loaded entries.
            let list = try await s.get("/adapters").json as? [[String: Any]] ?? []
            XCTAssertEqual(list.filter { $0["kind"] as? String == "composition" }.count, 1, "\(list)")
        } catch { try await s.stop(); throw error }
        try await s.stop()
    }

    func testPredictEqualsAlloyClassify() async throws {
        let lora = try ServingFixture.lora(in: dir, k: 2, factor: 2)
        let sparse = try ServingFixture.sparse(in: dir, seed: 31)
        let texts = ServingFixture.sentences(7, seed: 3, maxWords: 30)
        let s = try await start()
        do {
            for adapter in [lora, sparse] {
                let (labels, probs) = try ServingFixture.classify(encoder, texts, adapter: adapter)
                let r = try await s.post("/predict", ["inputs": texts, "adapter_id": adapter])
                XCTAssertEqual(r.status, 200, r.body)
                guard let answers = r.json as? [[[String: Any]]], answers.count == texts.count else { XCTFail(r.body); continue }
                for (a, p) in zip(answers, probs) {
                    XCTAssertEqual(a.count, labels.count)
                    let scores = a.compactMap { ($0["score"] as? NSNumber)?.floatValue }
                    XCTAssertEqual(scores, scores.sorted(by: >), "sorted by score")
                    for e in a {
                        guard let l = e["label"] as? String, let i = labels.firstIndex(of: l), let sc = (e["score"] as? NSNumber)?.floatValue else { XCTFail("\(e)"); continue }
                        XCTAssertEqual(sc, p[i], accuracy: tolerance, "\(adapter) \(l)")
                    }
                }
            }
            // One string: one list; raw_scores: logits, whose softmax is the probabilities.
            let one = try await s.post("/predict", ["inputs": texts[0], "adapter_id": lora, "raw_scores": true])
            XCTAssertEqual(one.status, 200, one.body)
            let (labels, probs) = try ServingFixture.classify(encoder, [texts[0]], adapter: lora)
            guard let a = one.json as? [[String: Any]] else { return XCTFail(one.body) }
            let logits = Dictionary(uniqueKeysWithValues: a.compactMap { e in (e["label"] as? String).map { ($0, (e["score"] as? NSNumber)?.doubleValue ?? .nan) } })
            let z = logits.values.map { exp($0) }.reduce(0, +)
            for (l, p) in zip(labels, probs[0]) { XCTAssertEqual(exp(logits[l] ?? .nan) / z, Double(p), accuracy: 1e-5) }
        } catch { try await s.stop(); throw error }
        try await s.stop()
    }

    func testOpenAIRoutesAndTokenize() async throws {
        let lora = try ServingFixture.lora(in: dir, k: 0, factor: 1.5)
        let texts = ServingFixture.sentences(3, seed: 4)
        let s = try await start()
        do {
            let want = try ServingFixture.embed(encoder, texts, adapters: [(lora, 1)])
            let r = try await s.post("/v1/embeddings", ["input": texts, "model": lora])
            XCTAssertEqual(r.status, 200, r.body)
            guard let o = r.json as? [String: Any], let data = o["data"] as? [[String: Any]] else { return XCTFail(r.body) }
            XCTAssertEqual(o["object"] as? String, "list")
            XCTAssertEqual(o["model"] as? String, lora)
            XCTAssertEqual(data.map { $0["index"] as? Int }, [0, 1, 2])
            XCTAssertEqual(data.map { $0["object"] as? String }, ["embedding", "embedding", "embedding"])
            XCTAssertLessThanOrEqual(maxDifference(vectors(data.map { $0["embedding"] ?? [] }), want), tolerance)
            let tokens = encoder.tokenize(texts).reduce(0) { $0 + $1.count }
            XCTAssertEqual((o["usage"] as? [String: Any])?["prompt_tokens"] as? Int, tokens)
            // base64: little-endian F32 of the same vector; the base by its name.
            let b = try await s.post("/v1/embeddings", ["input": texts[1], "model": base, "encoding_format": "base64"])
            guard let d = ((b.json as? [String: Any])?["data"] as? [[String: Any]])?.first?["embedding"] as? String, let raw = Data(base64Encoded: d) else { return XCTFail(b.body) }
            let decoded = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            XCTAssertEqual(decoded, try ServingFixture.embed(encoder, [texts[1]], adapters: [])[0])
            // /v1/models lists the base and the loaded expert.
            let m = try await s.get("/v1/models")
            let ids = ((m.json as? [String: Any])?["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } ?? []
            XCTAssertEqual(ids, [base, lora])
            // /tokenize: the tokenizer's ids with [CLS]/[SEP] marked special, text tokens with
            // the input's characters and their offsets (as TEI).
            let t = try await s.post("/tokenize", ["inputs": "The  movie"])
            guard let toks = (t.json as? [[[String: Any]]])?.first else { return XCTFail(t.body) }
            XCTAssertEqual(toks.compactMap { $0["id"] as? Int }, encoder.tokenize(["The  movie"])[0].map(Int.init))
            XCTAssertEqual(toks.compactMap { $0["text"] as? String }, ["[CLS]", "The", "movie", "[SEP]"])
            XCTAssertEqual(toks.compactMap { $0["special"] as? Bool }, [true, false, false, true])
            XCTAssertEqual(toks.map { $0["start"] as? Int }, [nil, 0, 5, nil])
            XCTAssertEqual(toks.map { $0["stop"] as? Int }, [nil, 3, 10, nil])
            XCTAssertTrue(toks[0]["start"] is NSNull, "a special token's offsets are null")
            let plain = try await s.post("/tokenize", ["inputs": ["The  movie"], "add_special_tokens": false])
            XCTAssertEqual(((plain.json as? [[[String: Any]]])?.first ?? []).compactMap { $0["text"] as? String }, ["The", "movie"])
            // /info and /health.
            let info = try await s.get("/info")
            XCTAssertEqual((info.json as? [String: Any])?["model_id"] as? String, base)
            XCTAssertEqual((info.json as? [String: Any])?["version"] as? String, AlloyServer.version)
            let status1 = try await s.get("/health").status
            XCTAssertEqual(status1, 200)
        } catch { try await s.stop(); throw error }
        try await s.stop()
    }

    func testStoreRefsLoadListUnloadAndEviction() async throws {
        let storeRoot = dir + "/store"
        let store = try Store(root: storeRoot)
        _ = try store.importSource(base, options: ImportOptions(name: "tiny"))
        var names: [String] = []
        for k in 0..<3 {
            var o = ImportOptions(name: "expert-\(k)"); o.base = "tiny"
            _ = try store.importSource(try ServingFixture.lora(in: dir, k: k, factor: Float(k + 1)), options: o)
            names.append("expert-\(k)")
        }
        var o = ImportOptions(name: "tv-expert"); o.base = "tiny"; o.kind = .taskVector
        let tv = try ServingFixture.taskVector(in: dir, seed: 41)
        _ = try store.importSource(tv, options: o)
        let texts = ServingFixture.sentences(4, seed: 5)
        let s = try await start { $0.model = "tiny"; $0.storeRoot = storeRoot; $0.maxAdapters = 2; $0.preload = ["expert-0"] }
        do {
            var list = try await s.get("/adapters").json as? [[String: Any]] ?? []
            XCTAssertEqual(list.compactMap { $0["id"] as? String }, ["expert-0"], "preloaded")
            // A store ref answers as the checked-out folder does under `alloy embed`.
            let r = try await s.post("/embed", ["inputs": texts, "adapter_id": "expert-1"])
            XCTAssertEqual(r.status, 200, r.body)
            let path = try store.checkout(try store.resolve("expert-1"))
            XCTAssertLessThanOrEqual(maxDifference(vectors(r.json), try ServingFixture.embed(encoder, texts, adapters: [(path, 1)])), tolerance)
            let sp = try await s.post("/embed", ["inputs": texts, "adapter_id": "tv-expert"])
            XCTAssertEqual(sp.status, 200, sp.body)
            XCTAssertLessThanOrEqual(maxDifference(vectors(sp.json), try ServingFixture.embed(encoder, texts, adapters: [(tv, 1)])), tolerance)
            // POST /adapters loads; with --max-adapters 2 the least recently used go.
            let load = try await s.post("/adapters", ["id": "expert-2"])
            XCTAssertEqual(load.status, 200, load.body)
            XCTAssertEqual((load.json as? [String: Any])?["kind"] as? String, "lora")
            list = try await s.get("/adapters").json as? [[String: Any]] ?? []
            XCTAssertEqual(list.compactMap { $0["id"] as? String }, ["expert-2", "tv-expert"])
            // DELETE unloads; a second DELETE is 404; an unknown ref is 404.
            let status2 = try await s.send(.DELETE, "/adapters/expert-2").status
            XCTAssertEqual(status2, 200)
            let status3 = try await s.send(.DELETE, "/adapters/expert-2").status
            XCTAssertEqual(status3, 404)
            let status4 = try await s.post("/adapters", ["id": "no-such-expert"]).status
            XCTAssertEqual(status4, 404)
            let metrics = try await s.get("/metrics").body
            XCTAssertTrue(metrics.contains("alloy_adapters_evicted_total 2"), metrics)
            XCTAssertTrue(metrics.contains("alloy_adapters_loaded_total 4"), metrics)
            XCTAssertTrue(metrics.contains("alloy_batch_sequences_count"), metrics)
            XCTAssertTrue(metrics.contains(#"alloy_requests_total{route="embed",status="200"} 2"#), metrics)
        } catch { try await s.stop(); throw error }
        try await s.stop()
    }

    /// Store adapters load from the store's blobs in memory: a LoRA with its head, a delta with
    /// a head blob and a composition of both answer /embed and /predict as their checked-out
    /// folders do under `alloy embed` / `alloy classify`, and no checkout folder is written.
    func testStoreAdaptersLoadFromBlobsWithoutACheckout() async throws {
        let storeRoot = dir + "/store"
        let store = try Store(root: storeRoot)
        _ = try store.importSource(base, options: ImportOptions(name: "tiny"))
        var o = ImportOptions(name: "lora-expert"); o.base = "tiny"
        _ = try store.importSource(try ServingFixture.lora(in: dir, k: 1, factor: 2), options: o)
        o = ImportOptions(name: "tv"); o.base = "tiny"; o.kind = .taskVector
        let tv = try store.importSource(try ServingFixture.taskVector(in: dir, seed: 43), options: o).item
        // A delta with a head: the task vector's blob as delta.alloy beside head.safetensors.
        let withHead = dir + "/tv-head"
        try FileManager.default.createDirectory(atPath: withHead, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: store.blobPath(try XCTUnwrap(tv.blobs["weights"]).sha256), toPath: withHead + "/delta.alloy")
        try ServingFixture.head(seed: 47, labels: 4, to: withHead + "/head.safetensors")
        try #"{"task":"h","labels":["w","x","y","z"],"head":{"pooling":"mean","max_length":40}}"#.write(toFile: withHead + "/card.json", atomically: true, encoding: .utf8)
        o = ImportOptions(name: "delta-expert"); o.base = "tiny"
        _ = try store.importSource(withHead, options: o)
        let items = try ["lora-expert", "delta-expert"].map { try store.resolve($0) }
        let texts = ServingFixture.sentences(5, seed: 9, maxWords: 20)
        let s = try await start { $0.model = "tiny"; $0.storeRoot = storeRoot }
        var answers: [String: (embed: [[Float]], predict: [[[String: Any]]])] = [:]
        var composed: [[Float]] = []
        do {
            for item in items {
                let e = try await s.post("/embed", ["inputs": texts, "adapter_id": item.ref])
                XCTAssertEqual(e.status, 200, e.body)
                let p = try await s.post("/predict", ["inputs": texts, "adapter_id": item.ref])
                XCTAssertEqual(p.status, 200, p.body)
                answers[item.ref] = (vectors(e.json), p.json as? [[[String: Any]]] ?? [])
            }
            let c = try await s.post("/embed", ["inputs": texts, "adapters": [["id": "lora-expert", "weight": 0.5], ["id": "delta-expert", "weight": 2]]])
            XCTAssertEqual(c.status, 200, c.body)
            composed = vectors(c.json)
            let list = try await s.get("/adapters").json as? [[String: Any]] ?? []
            XCTAssertEqual(Set(list.compactMap { $0["kind"] as? String }), ["lora", "delta", "composition"])
        } catch { try await s.stop(); throw error }
        try await s.stop()
        for item in items {
            XCTAssertFalse(FileManager.default.fileExists(atPath: storeRoot + "/cache/" + item.entry.digest), "\(item.ref) was checked out")
        }
        // The answers of the checked-out folders, as `alloy embed` and `alloy classify` compute them.
        var paths: [String: String] = [:]
        for item in items { paths[item.ref] = try store.checkout(item) }
        for item in items {
            let path = try XCTUnwrap(paths[item.ref])
            let got = try XCTUnwrap(answers[item.ref])
            XCTAssertLessThanOrEqual(maxDifference(got.embed, try ServingFixture.embed(encoder, texts, adapters: [(path, 1)])), tolerance, item.ref)
            let (labels, probs) = try ServingFixture.classify(encoder, texts, adapter: path)
            XCTAssertEqual(got.predict.count, texts.count, item.ref)
            for (a, p) in zip(got.predict, probs) {
                XCTAssertEqual(Set(a.compactMap { $0["label"] as? String }), Set(labels), item.ref)
                for e in a {
                    guard let l = e["label"] as? String, let i = labels.firstIndex(of: l), let sc = (e["score"] as? NSNumber)?.floatValue else { XCTFail("\(e)"); continue }
                    XCTAssertEqual(sc, p[i], accuracy: tolerance, "\(item.ref) \(l)")
                }
            }
        }
        let want = try ServingFixture.embed(encoder, texts, adapters: [(try XCTUnwrap(paths["delta-expert"]), 2), (try XCTUnwrap(paths["lora-expert"]), 0.5)])
        XCTAssertLessThanOrEqual(maxDifference(composed, want), tolerance)
    }

    /// 64 concurrent requests over 8 adapters (6 LoRAs mixed in shared batches, 1 sparse, the
    /// base), each equal to that adapter's answer to the same request alone.
    func testConcurrentRequestsOverEightAdaptersEqualSingleAnswers() async throws {
        var adapters: [String?] = [nil, try ServingFixture.sparse(in: dir, seed: 51)]
        for k in 0..<6 { adapters.append(try ServingFixture.lora(in: dir, k: k, factor: 1 + Float(k) * 0.5)) }
        let s = try await start { $0.maxBatchTokens = 256 }
        do {
            let requests = (0..<64).map { i in (adapter: adapters[i % 8], texts: ServingFixture.sentences(1 + i % 5, seed: 100 + UInt64(i))) }
            func body(_ r: (adapter: String?, texts: [String])) -> [String: Any] {
                var b: [String: Any] = ["inputs": r.texts]
                if let a = r.adapter { b["adapter_id"] = a }
                return b
            }
            var alone: [[[Float]]] = []
            for r in requests {
                let a = try await s.post("/embed", body(r))
                XCTAssertEqual(a.status, 200, a.body)
                alone.append(vectors(a.json))
            }
            let together = try await withThrowingTaskGroup(of: (Int, Int, [[Float]]).self) { g in
                for (i, r) in requests.enumerated() {
                    let b = body(r)
                    g.addTask { let a = try await s.post("/embed", b); return (i, a.status, vectors(a.json)) }
                }
                var out = [(Int, [[Float]])](repeating: (0, []), count: requests.count)
                for try await (i, status, v) in g { out[i] = (status, v) }
                return out
            }
            for (i, (status, v)) in together.enumerated() {
                XCTAssertEqual(status, 200)
                XCTAssertLessThanOrEqual(maxDifference(v, alone[i]), tolerance, "request \(i), adapter \(requests[i].adapter ?? "base")")
            }
            // Requests shared batches: the concurrent phase ran fewer batches than its 64
            // requests (the sequential phase ran exactly one per request).
            let m = try await s.get("/metrics").body
            let count = m.split(separator: "\n").first { $0.hasPrefix("alloy_batch_sequences_count") }.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
            XCTAssertNotNil(count, m)
            XCTAssertLessThan((count ?? 1000) - 64, 64, "batches in the concurrent phase")
        } catch { try await s.stop(); throw error }
        try await s.stop()
    }

    func testBadRequestsGetTheirStatusAndTheServerAnswersAfterwards() async throws {
        let s = try await start { $0.maxClientBatchSize = 4; $0.maxBodyBytes = 4096 }
        do {
            let cases: [(String, String?, Int, String)] = [
                ("/embed", "{not json", 400, "Validation"),
                ("/embed", "[1,2]", 400, "Validation"),
                ("/embed", "", 400, "Validation"),
                ("/embed", #"{"inputs": 3}"#, 422, "Validation"),
                ("/embed", #"{"inputs": ["a", 3]}"#, 422, "Validation"),
                ("/embed", #"{"inputs": "a", "normalize": "yes"}"#, 422, "Validation"),
                ("/embed", #"{"inputs": []}"#, 422, "Empty"),
                ("/embed", #"{}"#, 422, "Validation"),
                ("/embed", #"{"inputs": ["a","b","c","d","e"]}"#, 413, "Validation"),
                ("/embed", #"{"inputs": "\#(String(repeating: "the ", count: 100))", "truncate": false}"#, 413, "Validation"),
                ("/embed", #"{"inputs": "\#(String(repeating: "x", count: 5000))"}"#, 413, "Validation"),
                ("/embed", #"{"inputs": "a", "adapter_id": "/no/such/adapter"}"#, 404, "NotFound"),
                ("/embed", #"{"inputs": "a", "adapters": [{"id": "/no/such", "weight": 1}]}"#, 404, "NotFound"),
                ("/embed", #"{"inputs": "a", "adapters": [{"weight": 1}]}"#, 422, "Validation"),
                ("/embed", #"{"inputs": "a", "adapter_id": "\#(ServingFixture.tiny("config.json"))"}"#, 422, "Backend"),
                ("/predict", #"{"inputs": "a"}"#, 422, "Validation"),
                ("/v1/embeddings", #"{"input": "a", "encoding_format": "int8"}"#, 422, "Validation"),
                ("/v1/embeddings", #"{"input": [[1, 2]]}"#, 422, "Validation"),
                ("/v1/embeddings", #"{"input": "a", "model": "nope"}"#, 404, "NotFound"),
                ("/adapters", #"{"id": 5}"#, 422, "Validation"),
            ]
            for (path, body, status, type) in cases {
                let r = try await s.send(.POST, path, raw: body)
                let what = "\(path) \((body ?? "nil").prefix(80)): \(r.body.prefix(300))"
                XCTAssertEqual(r.status, status, what)
                let o = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any]
                XCTAssertNotNil(o?["error"] as? String, what)
                XCTAssertEqual(o?["error_type"] as? String, type, what)
            }
            // No route: 404 in the same shape.
            let none = try await s.send(.POST, "/no/such/route", raw: "{}")
            XCTAssertEqual(none.status, 404, none.body)
            XCTAssertTrue(none.body.contains(#""error_type":"NotFound""#), none.body)
            let status5 = try await s.get("/health").status
            XCTAssertEqual(status5, 200)
            let ok = try await s.post("/embed", ["inputs": ["the movie was great"]])
            XCTAssertEqual(ok.status, 200, ok.body)
            XCTAssertEqual(vectors(ok.json), try ServingFixture.embed(encoder, ["the movie was great"], adapters: []))
        } catch { try await s.stop(); throw error }
        try await s.stop()
    }

    /// Overload: no admission left answers 429 (never queues without bound); other routes answer.
    func testOverloadAnswers429() async throws {
        let s = try await start { $0.maxConcurrentRequests = 0 }
        do {
            let r = try await s.post("/embed", ["inputs": "a"])
            XCTAssertEqual(r.status, 429, r.body)
            XCTAssertTrue(r.body.contains("Overloaded"), r.body)
            let status6 = try await s.get("/health").status
            XCTAssertEqual(status6, 200)
        } catch { try await s.stop(); throw error }
        try await s.stop()
        // Under a limit of 2, 24 concurrent requests are each answered 200 or 429, nothing else,
        // and the 200s are right.
        let t = try await start { $0.maxConcurrentRequests = 2 }
        do {
            let texts = ServingFixture.sentences(8, seed: 6, maxWords: 40)
            let want = try ServingFixture.embed(encoder, texts, adapters: [])
            let results = try await withThrowingTaskGroup(of: (Int, [[Float]]).self) { g in
                for _ in 0..<24 { g.addTask { let r = try await t.post("/embed", ["inputs": texts]); return (r.status, r.status == 200 ? vectors(r.json) : []) } }
                return try await g.reduce(into: []) { $0.append($1) }
            }
            XCTAssertTrue(results.allSatisfy { $0.0 == 200 || $0.0 == 429 }, "\(results.map(\.0))")
            XCTAssertGreaterThan(results.filter { $0.0 == 200 }.count, 0)
            for (_, v) in results where !v.isEmpty { XCTAssertLessThanOrEqual(maxDifference(v, want), tolerance) }
        } catch { try await t.stop(); throw error }
        try await t.stop()
    }
}

/// The real MiniLM base and two shipped experts (a LoRA and a diff-pruned delta, each with its
/// head): `/embed` and `/predict` equal `alloy embed` / `alloy classify`, also mixed in one
/// concurrent burst.
final class ServingMiniLMTests: XCTestCase {
    func testShippedExpertsOverHTTPEqualTheCLI() async throws {
        let minilm = ServingFixture.repo + "/.assets/minilm"
        guard FileManager.default.fileExists(atPath: minilm + "/tokenizer.json") else {
            throw XCTSkip("needs the MiniLM base in .assets/minilm (Scripts/fetch-assets)")
        }
        let lora = ServingFixture.repo + "/Adapters/sms_spam/lora", sparse = ServingFixture.repo + "/Adapters/bbc_topic/sparse"
        let encoder = try SentenceEncoder(directory: minilm)
        let texts = ["WINNER!! You have won a free prize, call now", "are we still meeting for lunch tomorrow?",
                     "The central bank raised interest rates again as markets fell", "A dazzling film with a terrible ending"]
        var o = ServeOptions(model: minilm)
        o.maxBatchTokens = 512
        let s = try await RunningServer(o)
        do {
            // Concurrently: base, LoRA and sparse expert, embed and predict.
            async let base = s.post("/embed", ["inputs": texts])
            async let withLoRA = s.post("/embed", ["inputs": texts, "adapter_id": lora])
            async let withSparse = s.post("/embed", ["inputs": texts, "adapter_id": sparse])
            async let spam = s.post("/predict", ["inputs": texts, "adapter_id": lora])
            async let topic = s.post("/predict", ["inputs": texts, "adapter_id": sparse])
            let (b, l, sp, p1, p2) = try await (base, withLoRA, withSparse, spam, topic)
            for (r, adapters) in [(b, [(String, Float)]()), (l, [(lora, 1)]), (sp, [(sparse, 1)])] {
                XCTAssertEqual(r.status, 200, r.body)
                XCTAssertLessThanOrEqual(maxDifference(vectors(r.json), try ServingFixture.embed(encoder, texts, adapters: adapters)), 2e-6)
            }
            for (r, adapter) in [(p1, lora), (p2, sparse)] {
                XCTAssertEqual(r.status, 200, r.body)
                let (labels, probs) = try ServingFixture.classify(encoder, texts, adapter: adapter)
                let answers = r.json as? [[[String: Any]]] ?? []
                XCTAssertEqual(answers.count, texts.count, r.body)
                for (a, p) in zip(answers, probs) {
                    // The top label is the CLI's, and every score equals its probability.
                    XCTAssertEqual(a.first?["label"] as? String, labels[p.indices.max { p[$0] < p[$1] } ?? 0])
                    for e in a {
                        guard let label = e["label"] as? String, let i = labels.firstIndex(of: label), let sc = (e["score"] as? NSNumber)?.floatValue else { XCTFail("\(e)"); continue }
                        XCTAssertEqual(sc, p[i], accuracy: 2e-6)
                    }
                }
            }
        } catch { try await s.stop(); throw error }
        try await s.stop()
    }
}
