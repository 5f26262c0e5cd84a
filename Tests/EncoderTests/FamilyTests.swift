import XCTest
import Foundation
@testable import Encoder
import Formats
import Tensors

/// MPNet, ELECTRA, ModernBERT and XLM-RoBERTa against transformers and PEFT (fixtures from
/// Scripts/make-fixtures-families.py: seeded random tiny models, hidden 32, 2–3 layers), their
/// task checkpoints (head tensors, buffers, prefixes) and loading errors; all-mpnet-base-v2's
/// sentence embeddings when `.assets/mpnet` is there.
final class FamilyTests: XCTestCase {
    static let families = ["mpnet", "electra", "modernbert", "xlm-roberta"]
    static func dir(_ family: String) -> String { Fixture.path("families/" + family) }
    static let mpnetAssets = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.assets/mpnet").standardized.path

    /// The id sequences (lengths 1, 7, 23, 40) and transformers' / PEFT's hidden states.
    func expected(_ family: String) throws -> (ids: [[Int32]], base: [[Float]], lora: [[Float]]) {
        let f = try SafetensorsFile(path: Self.dir(family) + "/expected.safetensors")
        var ids: [[Int32]] = [], base: [[Float]] = [], lora: [[Float]] = []
        var i = 0
        while f.info("ids.\(i)") != nil {
            ids.append(try f.tensor("ids.\(i)").rawBytes.bindMemory(to: Int64.self).map { Int32($0) })
            base.append(try f.tensor("base.\(i)").floats())
            lora.append(try f.tensor("lora.\(i)").floats())
            i += 1
        }
        return (ids, base, lora)
    }

    func maxDiff(_ h: HiddenStates, _ ref: [[Float]], sequences: [Int]? = nil) -> Float {
        var worst: Float = 0
        for s in sequences ?? Array(0..<h.count) {
            let rows = Array(h.values[(h.offsets[s] * h.width)..<(h.offsets[s + 1] * h.width)])
            XCTAssertEqual(rows.count, ref[s].count)
            for (a, b) in zip(rows, ref[s]) { worst = max(worst, abs(a - b)) }
        }
        return worst
    }

    /// Last hidden states of every family, the four sequences packed in one batch, within 1e-4
    /// absolute of transformers (eager attention, fp32) — MPNet's relative bias per sequence,
    /// ELECTRA's embedding projection, ModernBERT's RoPE / sliding window / GeGLU all matter here.
    func testHiddenStatesMatchTransformers() throws {
        for family in Self.families {
            let model = try EncoderModel(directory: Self.dir(family))
            let e = try expected(family)
            let d = maxDiff(model.hiddenStates(e.ids), e.base)
            print("\(family): max |ours − transformers| = \(d)")
            XCTAssertLessThan(d, 1e-4, family)
        }
    }

    /// PEFT LoRA (r 4, α 8, B random) on each family's attention projections, within 1e-4 of
    /// PEFT; also per sequence in a mixed batch (LoRA on sequences 0 and 2 only).
    func testLoRAMatchesPEFT() throws {
        for family in Self.families {
            let model = try EncoderModel(directory: Self.dir(family))
            let lora = try LoRAAdapter(peft: Self.dir(family) + "/lora", for: model)
            XCTAssertEqual(lora.layers.count, family == "modernbert" ? 3 : 4, family)
            let e = try expected(family)
            var set = AdapterSet(); set.loras = [(lora, 1)]
            let d = maxDiff(model.hiddenStates(e.ids, adapters: set), e.lora)
            print("\(family) + LoRA: max |ours − PEFT| = \(d)")
            XCTAssertLessThan(d, 1e-4, family)
            XCTAssertGreaterThan(maxDiff(model.hiddenStates(e.ids, adapters: set), e.base), 1e-2, "\(family): the LoRA must matter")
            let mixed = model.hiddenStates(e.ids, perSequence: [(lora, 1), nil, (lora, 1), nil])
            XCTAssertLessThan(maxDiff(mixed, e.lora, sequences: [0, 2]), 1e-4, family)
            XCTAssertLessThan(maxDiff(mixed, e.base, sequences: [1, 3]), 1e-4, family)
        }
    }

    /// MPNet's relative-position buckets equal transformers' for relative positions −600…600.
    func testMPNetBucketsMatchTransformers() throws {
        let f = try SafetensorsFile(path: Fixture.path("families/mpnet_bucket.safetensors"))
        let rel = try f.tensor("relative_position").rawBytes.bindMemory(to: Int64.self).map { Int($0) }
        let bucket = try f.tensor("bucket").rawBytes.bindMemory(to: Int64.self).map { Int($0) }
        XCTAssertEqual(rel.count, 1201)
        for (r, b) in zip(rel, bucket) { XCTAssertEqual(EncoderModel.mpnetBucket(relative: r), b, "relative position \(r)") }
    }

    /// Trainer-style `*ForSequenceClassification` checkpoints (task prefixes, head tensors,
    /// with and without the position_ids / token_type_ids buffers) load; the head's tensors are
    /// in `headTensors` under canonical names with their shapes, the encoder runs.
    func testSequenceClassificationCheckpointsExposeHeadTensors() throws {
        let heads: [(String, [String: [Int]])] = [
            ("mpnet/seqcls", ["classifier.dense.weight": [16, 16], "classifier.dense.bias": [16], "classifier.out_proj.weight": [3, 16], "classifier.out_proj.bias": [3]]),
            ("electra/seqcls", ["classifier.dense.weight": [16, 16], "classifier.dense.bias": [16], "classifier.out_proj.weight": [3, 16], "classifier.out_proj.bias": [3]]),
            ("xlm-roberta/seqcls", ["classifier.dense.weight": [16, 16], "classifier.dense.bias": [16], "classifier.out_proj.weight": [3, 16], "classifier.out_proj.bias": [3]]),
            ("modernbert/seqcls", ["head.dense.weight": [16, 16], "head.norm.weight": [16], "classifier.weight": [3, 16], "classifier.bias": [3]]),
            ("bert-seqcls", ["classifier.weight": [3, 16], "classifier.bias": [3], "pooler.dense.weight": [16, 16], "pooler.dense.bias": [16]]),
            ("distilbert-seqcls", ["pre_classifier.weight": [16, 16], "pre_classifier.bias": [16], "classifier.weight": [3, 16], "classifier.bias": [3]]),
        ]
        for (dir, want) in heads {
            let model = try EncoderModel(directory: Self.dir(dir))
            XCTAssertEqual(Set(model.headTensors.keys), Set(want.keys), dir)
            for (name, shape) in want {
                XCTAssertEqual(model.headTensors[name]?.shape.dims, shape, "\(dir) \(name)")
                XCTAssertEqual(model.headTensors[name]?.dtype, .f32, "\(dir) \(name)")
            }
            XCTAssertFalse(model.weights.keys.contains { $0.hasPrefix("classifier") || $0.hasPrefix("head.") }, dir)
            let h = model.hiddenStates([[3, 4, 5, 6, 7]])
            XCTAssertEqual(h.values.count, 5 * model.hidden)
            XCTAssertTrue(h.values.allSatisfy(\.isFinite), dir)
        }
        // A bare encoder has no head tensors.
        XCTAssertTrue(try EncoderModel(directory: Self.dir("mpnet")).headTensors.isEmpty)
    }

    /// A copy of a family's fixture with `edit` applied to its tensors (and config text).
    func withCopy(_ family: String, tensors edit: ([(String, Tensor)]) throws -> [(String, Tensor)],
                  config: (String) -> String = { $0 }, _ body: (String) throws -> Void) throws {
        let dir = NSTemporaryDirectory() + "alloy-fam-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = try SafetensorsFile(path: Self.dir(family) + "/model.safetensors")
        try SafetensorsWriter.write(try edit(src.names.map { ($0, try src.tensor($0)) }), to: dir + "/model.safetensors")
        try config(String(contentsOfFile: Self.dir(family) + "/config.json", encoding: .utf8))
            .write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        try body(dir)
    }

    /// Errors name what is wrong: an unknown model type names config.json and the type; a
    /// missing tensor is named; an unknown tensor still fails; masked-LM leftovers are skipped.
    func testLoadingErrorsNameTheProblem() throws {
        try withCopy("mpnet", tensors: { $0 }, config: { $0.replacingOccurrences(of: "\"mpnet\"", with: "\"funnel\"") }) { dir in
            XCTAssertThrowsError(try EncoderModel(directory: dir)) { e in
                XCTAssertTrue("\(e)".contains("config.json") && "\(e)".contains("funnel"), "\(e)")
            }
        }
        for family in Self.families {
            let gone = family == "modernbert" ? "layers.1.attn_norm.weight" : family == "mpnet" ? "encoder.relative_attention_bias.weight" : "encoder.layer.1.output.dense.bias"
            try withCopy(family, tensors: { $0.filter { $0.0 != gone } }) { dir in
                XCTAssertThrowsError(try EncoderModel(directory: dir)) { e in XCTAssertTrue("\(e)".contains("missing tensor \"\(gone)\""), "\(family): \(e)") }
            }
            let extra = try Tensor([Float](repeating: 0, count: 4), shape: Shape([4]))
            try withCopy(family, tensors: { $0 + [("encoder.mystery.weight", extra)] }) { dir in
                XCTAssertThrowsError(try EncoderModel(directory: dir)) { e in XCTAssertTrue("\(e)".contains("unexpected tensor \"encoder.mystery.weight\""), "\(family): \(e)") }
            }
        }
        let leftover = try Tensor([Float](repeating: 0, count: 4), shape: Shape([4]))
        try withCopy("mpnet", tensors: { $0 + [("lm_head.bias", leftover)] }) { dir in
            XCTAssertNoThrow(try EncoderModel(directory: dir))
        }
        // ModernBERT's layer 0 has no attention norm: one there is unexpected.
        let norm = try Tensor([Float](repeating: 1, count: 32), shape: Shape([32]))
        try withCopy("modernbert", tensors: { $0 + [("layers.0.attn_norm.weight", norm)] }) { dir in
            XCTAssertThrowsError(try EncoderModel(directory: dir)) { e in XCTAssertTrue("\(e)".contains("layers.0.attn_norm.weight"), "\(e)") }
        }
    }

    /// Out-of-range family fields are refused with the field's name (no crash, no hang).
    func testFamilyConfigFieldsAreRangeChecked() throws {
        let bad: [(String, String, String)] = [
            ("electra", "\"embedding_size\": 24", "\"embedding_size\": 0"),
            ("electra", "\"embedding_size\": 24", "\"embedding_size\": 99999999"),
            ("modernbert", "\"local_attention\": 8", "\"local_attention\": -2"),
            ("modernbert", "\"global_attn_every_n_layers\": 2", "\"global_attn_every_n_layers\": 0"),
            ("modernbert", "\"rope_theta\": 160000.0", "\"rope_theta\": -1.0"),
            ("modernbert", "\"rope_type\": \"default\"", "\"rope_type\": \"yarn\""),
            ("modernbert", "\"norm_eps\": 1e-05", "\"norm_eps\": 5.0"),
            ("modernbert", "\"sliding_attention\",", "\"chunked_attention\","),
        ]
        for (family, from, to) in bad {
            try withCopy(family, tensors: { $0 }, config: { text in
                XCTAssertTrue(text.contains(from), "\(family) config lacks \(from)")
                return text.replacingOccurrences(of: from, with: to)
            }) { dir in
                let field = String(to.split(separator: "\"")[0])
                XCTAssertThrowsError(try EncoderModel(directory: dir)) { e in XCTAssertTrue("\(e)".contains(field), "\(to): \(e)") }
            }
        }
        // The older ModernBERT config form (global_rope_theta, no layer_types / rope_parameters) reads the same.
        try withCopy("modernbert", tensors: { $0 }, config: { text in
            var obj = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            obj["layer_types"] = nil; obj["rope_parameters"] = nil
            obj["global_rope_theta"] = 160000.0; obj["local_rope_theta"] = 1000.0
            return String(decoding: (try? JSONSerialization.data(withJSONObject: obj)) ?? Data(), as: UTF8.self)
        }) { dir in
            let model = try EncoderModel(directory: dir)
            XCTAssertEqual(model.config.ropeTheta(global: false), 1000)
            XCTAssertEqual((0..<3).map(model.config.isGlobalAttentionLayer), [true, false, true])
            let e = try expected("modernbert")
            XCTAssertLessThan(maxDiff(model.hiddenStates(e.ids), e.base), 1e-4)
        }
    }

    /// Seeded config fuzzing (seed 13): 150 mutants per family, each with one to three fields
    /// (the family's own among them) set to edge values (negative, zero, huge, wrong type, null);
    /// each must be refused with an error or load and run a short sequence to finite outputs.
    func testMutatedFamilyConfigsNeverCrash() throws {
        var rng = SplitMix(seed: 13)
        let values: [Any] = [-1, 0, 1, 2, 3, 7, 31, 32, 33, 1_000_000_000, Int64(1) << 40, 1e300, -0.5, 0.5, "gelu", "x", NSNull(), true, [1, 2], ["a": 1]]
        var loaded = 0, refused = 0
        for family in Self.families {
            let text = try String(contentsOfFile: Self.dir(family) + "/config.json", encoding: .utf8)
            let base = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            let keys = base.keys.sorted()
            for _ in 0..<150 {
                var obj = base
                for _ in 0...Int(rng.next() % 3) {
                    obj[keys[Int(rng.next() % UInt64(keys.count))]] = values[Int(rng.next() % UInt64(values.count))]
                }
                let mutated = String(decoding: try JSONSerialization.data(withJSONObject: obj), as: UTF8.self)
                try withCopy(family, tensors: { $0 }, config: { _ in mutated }) { dir in
                    do {
                        let model = try EncoderModel(directory: dir)
                        let h = model.hiddenStates([[3, 4, 5]])
                        XCTAssertTrue(h.values.allSatisfy(\.isFinite) || model.eps == 0, "\(family): \(mutated)")
                        loaded += 1
                    } catch { refused += 1 }
                }
            }
        }
        print("mutated family configs: \(loaded) loaded and ran, \(refused) refused")
    }

    /// all-mpnet-base-v2 sentence embeddings (mean pooling, L2 normalise; ids from the
    /// `tokenizers` library) against transformers on 16 sentences (3–166 tokens, beyond MPNet's
    /// 128-token bucket saturation): min cosine ≥ 0.9999.
    func testAllMPNetBaseV2MatchesTransformers() throws {
        guard FileManager.default.fileExists(atPath: Self.mpnetAssets + "/model.safetensors") else {
            print("testAllMPNetBaseV2MatchesTransformers skipped: .assets/mpnet missing (Scripts/fetch-assets fetches all-mpnet-base-v2)")
            throw XCTSkip(".assets/mpnet missing: run Scripts/fetch-assets to check all-mpnet-base-v2 against transformers")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("families/mpnet_real.json")))
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let ids = try XCTUnwrap(obj["ids"] as? [[Int]]).map { $0.map(Int32.init) }
        let want = try XCTUnwrap(obj["embeddings"] as? [[Double]])
        let model = try EncoderModel(directory: Self.mpnetAssets)
        XCTAssertEqual(model.architecture.name, "mpnet")
        let h = model.hiddenStates(ids)
        let got = (0..<ids.count).map { Pooling.normalized(Pooling.mean.pool(h, sequence: $0)) }
        var worst = 1.0
        for (g, w) in zip(got, want) { worst = min(worst, zip(g, w).reduce(0.0) { $0 + Double($1.0) * $1.1 }) }
        print("all-mpnet-base-v2: min cosine to transformers over \(ids.count) sentences = \(worst)")
        XCTAssertGreaterThanOrEqual(worst, 0.9999)
        // End to end from text: the sentence-transformers folder (tokenizer.json with RoBERTa's
        // post-processor, modules.json, 384-token limit) gives the same ids and embeddings.
        let sentences = try XCTUnwrap(obj["sentences"] as? [String])
        let encoder = try SentenceEncoder(directory: Self.mpnetAssets)
        XCTAssertEqual(encoder.maxLength, 384)
        XCTAssertEqual(encoder.tokenize(sentences), ids)
        var worstText = 1.0
        for (g, w) in zip(encoder.encode(sentences), want) { worstText = min(worstText, zip(g, w).reduce(0.0) { $0 + Double($1.0) * $1.1 }) }
        XCTAssertGreaterThanOrEqual(worstText, 0.9999)
    }
}
