import XCTest
import Foundation
@testable import Encoder
import Formats
import Tensors

enum Fixture {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func path(_ rel: String) -> String { root.appendingPathComponent(rel).path }
    static let minilm = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.assets/minilm").standardized.path
}

final class TokenizerTests: XCTestCase {
    /// Token ids equal the `tokenizers` library's on ≥ 200 varied lines (truncation at 256).
    func testMatchesTokenizersLibrary() throws {
        let tok = try WordPieceTokenizer(path: Fixture.path("minilm_tokenizer.json"))
        let lines = try String(contentsOfFile: Fixture.path("tokenizer_corpus.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThanOrEqual(lines.count, 200)
        var mismatches = 0
        for line in lines {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let text = obj["text"] as! String, ids = (obj["ids"] as! [Int]).map(Int32.init)
            let ours = tok.encode(text, maxLength: 256)
            if ours != ids {
                mismatches += 1
                XCTFail("\(text.debugDescription):\n ours \(ours)\n ref  \(ids)")
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    func testMissingOrUnsupportedTokenizerIsAClearError() throws {
        XCTAssertThrowsError(try WordPieceTokenizer(path: "/nonexistent/tokenizer.json")) {
            XCTAssertTrue("\($0)".contains("tokenizer.json"), "\($0)")
        }
        let dir = NSTemporaryDirectory() + "alloy-tok-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #"{"model":{"type":"BPE","vocab":{}}}"#.write(toFile: dir + "/tokenizer.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try WordPieceTokenizer(path: dir + "/tokenizer.json")) { XCTAssertTrue("\($0)".contains("only WordPiece"), "\($0)") }
    }
}

final class ForwardTests: XCTestCase {
    var model: EncoderModel!
    var outputs: SafetensorsFile!
    var batch: [[Int32]] = []

    override func setUpWithError() throws {
        model = try EncoderModel(directory: Fixture.path("tiny"))
        outputs = try SafetensorsFile(path: Fixture.path("tiny/outputs.safetensors"))
        let ids = try outputs.tensor("input_ids"), mask = try outputs.tensor("attention_mask")
        let (b, l) = (ids.shape.dims[0], ids.shape.dims[1])
        let idv = Array(ids.rawBytes.bindMemory(to: Int64.self)), mv = Array(mask.rawBytes.bindMemory(to: Int64.self))
        batch = (0..<b).map { s in (0..<l).filter { mv[s * l + $0] == 1 }.map { Int32(idv[s * l + $0]) } }
    }

    /// Max |ours − reference| over the real (unpadded) tokens.
    func maxError(_ h: HiddenStates, reference name: String) throws -> Float {
        let ref = try outputs.tensor(name)
        let (l, w) = (ref.shape.dims[1], ref.shape.dims[2])
        let rv = try ref.floats()
        var err: Float = 0
        for s in 0..<h.count {
            for j in 0..<(h.offsets[s + 1] - h.offsets[s]) {
                for c in 0..<w { err = max(err, abs(h.values[(h.offsets[s] + j) * w + c] - rv[(s * l + j) * w + c])) }
            }
        }
        return err
    }

    /// tolerance 1e-5 absolute on hidden states of magnitude ~1 (fp32 reference, seed 0).
    func testBaseMatchesTransformers() throws {
        XCTAssertLessThan(try maxError(model.hiddenStates(batch), reference: "base"), 1e-5)
    }

    func testLoRAMatchesPEFTUnmerged() throws {
        let lora = try LoRAAdapter(peft: Fixture.path("tiny/lora"), for: model)
        let rs = try LoRAAdapter(peft: Fixture.path("tiny/rslora"), for: model)
        XCTAssertEqual(lora.layers["encoder.layer.0.attention.self.query"]?.scale, 8.0 / 4.0)
        XCTAssertEqual(Double(rs.layers["encoder.layer.1.output.dense"]!.scale), 12.0 / 6.0.squareRoot(), accuracy: 1e-6)
        var set = AdapterSet(); set.loras = [(lora, 1)]
        XCTAssertLessThan(try maxError(model.hiddenStates(batch, adapters: set), reference: "lora"), 1e-5)
        set.loras = [(rs, 1)]
        XCTAssertLessThan(try maxError(model.hiddenStates(batch, adapters: set), reference: "rslora"), 1e-5)
        set.loras = [(lora, 1), (rs, 1)]
        XCTAssertLessThan(try maxError(model.hiddenStates(batch, adapters: set), reference: "lora_plus_rslora"), 1e-5)
    }

    /// A PEFT folder with adapter_model.bin (PEFT < 0.7) gives the same adapter as with
    /// adapter_model.safetensors: the same factors (fixture: Scripts/make-fixtures-torch.py),
    /// the same states to the bit.
    func testLoRAFromAdapterModelBinEqualsSafetensors() throws {
        var fromBin = AdapterSet(), fromSafetensors = AdapterSet()
        fromBin.loras = [(try LoRAAdapter(peft: Fixture.path("tiny/lora-bin"), for: model), 1)]
        fromSafetensors.loras = [(try LoRAAdapter(peft: Fixture.path("tiny/lora"), for: model), 1)]
        XCTAssertEqual(model.hiddenStates(batch, adapters: fromBin).values, model.hiddenStates(batch, adapters: fromSafetensors).values)
        XCTAssertNotEqual(model.hiddenStates(batch, adapters: fromBin).values, model.hiddenStates(batch).values)
    }

    /// A damaged adapter_model.bin (truncated, or not a torch.save archive at all) is an error
    /// that names the file, from the loader and from the store's import; never a trap.
    func testDamagedAdapterModelBinIsAnErrorNamingTheFile() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("tiny/lora-bin/adapter_model.bin")))
        for (label, damaged) in [("truncated", bytes.prefix(bytes.count / 2)), ("cut to its head", bytes.prefix(40)),
                                 ("not an archive", Data("not a checkpoint".utf8)), ("empty", Data())] {
            let dir = NSTemporaryDirectory() + "alloy-bad-bin-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try FileManager.default.copyItem(atPath: Fixture.path("tiny/lora-bin/adapter_config.json"), toPath: dir + "/adapter_config.json")
            try Data(damaged).write(to: URL(fileURLWithPath: dir + "/adapter_model.bin"))
            XCTAssertThrowsError(try LoRAAdapter(peft: dir, for: model), label) { XCTAssertTrue("\($0)".contains("adapter_model.bin"), "\(label): \($0)") }
        }
    }

    /// Each sequence with its own adapter, in one pass, equals running each alone.
    func testMixedAdapterBatchEqualsSeparateRuns() throws {
        let lora = try LoRAAdapter(peft: Fixture.path("tiny/lora"), for: model)
        let rs = try LoRAAdapter(peft: Fixture.path("tiny/rslora"), for: model)
        let per: [(adapter: LoRAAdapter, scale: Float)?] = [(rs, 1), nil, (lora, 0.5)]
        let mixed = model.hiddenStates(batch, perSequence: per)
        for (s, p) in per.enumerated() {
            var set = AdapterSet()
            if let p { set.loras = [p] }
            let alone = model.hiddenStates([batch[s]], adapters: set)
            let lo = mixed.offsets[s]
            for i in 0..<alone.values.count { XCTAssertEqual(mixed.values[lo * mixed.width + i], alone.values[i], accuracy: 1e-5) }
        }
    }

    /// A sequence's states do not depend on how a linear layer's work is split: alone (few rows:
    /// column blocks, heads split over the cores) and in a batch of hundreds of rows (row
    /// blocks), equal to the bit, with a LoRA group and without, in every precision.
    func testColumnAndRowBlocksComputeTheSameStates() throws {
        guard Parallel.threadCount > 1 else { throw XCTSkip("one core: every layer runs as one row block, there is no split to compare") }
        let rows = batch[0].count
        XCTAssertNotNil(EncoderModel.columnBlocks(rows: rows, n: model.hidden), "a lone sequence takes the column blocks")
        let crowd = Array(repeating: batch, count: 100 / batch.count + 1).flatMap { $0 }
        XCTAssertNil(EncoderModel.columnBlocks(rows: crowd.reduce(0) { $0 + $1.count }, n: model.hidden), "a crowd takes the row blocks")
        for precision in Precision.allCases {
            let m = try EncoderModel(directory: Fixture.path("tiny"), precision: precision)
            let lora = try LoRAAdapter(peft: Fixture.path("tiny/lora"), for: m)
            for per in [nil, (lora, Float(0.5))] as [(adapter: LoRAAdapter, scale: Float)?] {
                let alone = m.hiddenStates([batch[0]], perSequence: [per])
                let crowded = m.hiddenStates(crowd, perSequence: crowd.indices.map { $0 % 2 == 0 ? per : nil })
                XCTAssertEqual(Array(crowded.values[0..<(rows * m.hidden)]), alone.values, "\(precision), LoRA: \(per != nil)")
            }
        }
    }

    func testAdapterForAnotherShapeOrArchitectureIsAClearError() throws {
        let dir = NSTemporaryDirectory() + "alloy-enc-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // An adapter whose A has the wrong input width.
        try FileManager.default.copyItem(atPath: Fixture.path("tiny/lora/adapter_config.json"), toPath: dir + "/adapter_config.json")
        let a = try Tensor([Float](repeating: 0.1, count: 4 * 48), shape: Shape([4, 48]))
        let b = try Tensor([Float](repeating: 0.1, count: 32 * 4), shape: Shape([32, 4]))
        try SafetensorsWriter.write([("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight", a),
                                     ("base_model.model.encoder.layer.0.attention.self.query.lora_B.weight", b)], to: dir + "/adapter_model.safetensors")
        XCTAssertThrowsError(try LoRAAdapter(peft: dir, for: model)) { XCTAssertTrue("\($0)".contains("another base"), "\($0)") }
        try SafetensorsWriter.write([("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", a),
                                     ("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight", b)], to: dir + "/adapter_model.safetensors")
        XCTAssertThrowsError(try LoRAAdapter(peft: dir, for: model)) { XCTAssertTrue("\($0)".contains("another architecture"), "\($0)") }
        // A model directory with an unknown architecture.
        try FileManager.default.copyItem(atPath: Fixture.path("tiny/model.safetensors"), toPath: dir + "/model.safetensors")
        let cfg = try String(contentsOfFile: Fixture.path("tiny/config.json"), encoding: .utf8).replacingOccurrences(of: "\"bert\"", with: "\"gpt2\"")
            .replacingOccurrences(of: "\"BertModel\"", with: "\"GPT2Model\"")
        try cfg.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try EncoderModel(directory: dir)) { XCTAssertTrue("\($0)".contains("unknown architecture"), "\($0)") }
    }
}

final class MiniLMTests: XCTestCase {
    /// all-MiniLM-L6-v2 embeddings equal transformers' (mean pooling, normalise, truncation at
    /// 256): min cosine ≥ 0.9999 over 24 sentences. Needs the base model fetched by
    /// Scripts/fetch-assets (Scripts/test does that first).
    func testEmbeddingsMatchTransformers() throws {
        guard FileManager.default.fileExists(atPath: Fixture.minilm + "/model.safetensors") else {
            throw XCTSkip("MiniLM not fetched: run Scripts/fetch-assets (Scripts/test does) to check embeddings against transformers")
        }
        let model = try EncoderModel(directory: Fixture.minilm)
        let tok = try WordPieceTokenizer(path: Fixture.minilm + "/tokenizer.json")
        let fx = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixture.path("minilm_embeddings.json")))) as! [String: Any]
        let sentences = fx["sentences"] as! [String], ref = (fx["embeddings"] as! [[NSNumber]]).map { $0.map(\.floatValue) }
        let h = model.hiddenStates(sentences.map { tok.encode($0, maxLength: 256) })
        let emb = (0..<sentences.count).map { Pooling.normalized(Pooling.mean.pool(h, sequence: $0)) }
        var minCos: Float = 1
        for (e, r) in zip(emb, ref) { minCos = min(minCos, zip(e, r).reduce(0) { $0 + $1.0 * $1.1 }) }
        XCTAssertGreaterThanOrEqual(minCos, 0.9999)
        print("MiniLM embeddings vs transformers: min cosine \(minCos) over \(sentences.count) sentences")
    }
}

final class AlloyDeltaTests: XCTestCase {
    /// A diff-pruned delta packed into .alloy patches the same weights as its indices/values
    /// form, and is refused on a base with another content hash.
    func testPackedSparseDeltaLoadsIdenticallyAndChecksItsBase() throws {
        let model = try EncoderModel(directory: Fixture.path("tiny"))
        let dir = NSTemporaryDirectory() + "alloy-delta-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let idx = try [Int32(3), 40, 41, 1000].withUnsafeBytes { try Tensor(dtype: .i32, shape: Shape([4]), bytes: $0) }
        let vals = try Tensor([0.5, -0.25, 0.125, 2], shape: Shape([4])).converted(to: .f16)
        try SafetensorsWriter.write([("encoder.layer.0.attention.self.query.weight.indices", idx),
                                     ("encoder.layer.0.attention.self.query.weight.values", vals)], to: dir + "/delta.safetensors")
        try AlloyFile.packSparseDelta(SafetensorsFile(path: dir + "/delta.safetensors"), base: WeightSource(path: Fixture.path("tiny")))
            .write(to: dir + "/delta.alloy")
        var a = AdapterSet(), b = AdapterSet()
        try a.add(path: dir + "/delta.safetensors", scale: 0.5, model: model)
        try b.add(path: dir + "/delta.alloy", scale: 0.5, model: model)
        let name = "encoder.layer.0.attention.self.query.weight"
        XCTAssertTrue(try XCTUnwrap(a.patched[name]).bitwiseEquals(try XCTUnwrap(b.patched[name])))
        XCTAssertEqual(try b.patched[name]!.floats()[1000] - model.weights[name]!.floats()[1000], 1, accuracy: 1e-6)
        // Another base: same architecture, different weights → refused, naming the problem.
        let other = dir + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixture.path("tiny/config.json"), toPath: other + "/config.json")
        let src = try WeightSource(path: Fixture.path("tiny"))
        var tensors = try src.names.map { ($0, try src.tensor($0)) }
        tensors[0].1 = try Tensor(try tensors[0].1.floats().map { $0 + 1 }, shape: tensors[0].1.shape)
        try SafetensorsWriter.write(tensors, to: other + "/model.safetensors")
        let otherModel = try EncoderModel(directory: other)
        var c = AdapterSet()
        XCTAssertThrowsError(try c.add(path: dir + "/delta.alloy", scale: 1, model: otherModel)) {
            XCTAssertTrue("\($0)".contains("made for a base"), "\($0)")
        }
    }

    /// Adding a delta to a copy of an adapter set leaves the original alone, and a set changed
    /// after a forward pass (its packed weights cached) gives what a fresh set gives.
    func testAdapterSetCopiesAreIndependentAndRepackAfterChanges() throws {
        let model = try EncoderModel(directory: Fixture.path("tiny"))
        let dir = NSTemporaryDirectory() + "alloy-set-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let name = "encoder.layer.0.attention.self.query.weight"
        let idx = try [Int32(3), 40, 1000].withUnsafeBytes { try Tensor(dtype: .i32, shape: Shape([3]), bytes: $0) }
        try SafetensorsWriter.write([(name + ".indices", idx), (name + ".values", try Tensor([0.5, -0.25, 2], shape: Shape([3])))],
                                    to: dir + "/delta.safetensors")
        let batch: [[Int32]] = [[101, 2023, 2003, 102], [101, 7592, 102]]
        var a = AdapterSet()
        try a.add(path: dir + "/delta.safetensors", scale: 1, model: model)
        let before = try a.patched[name]!.floats()
        let first = model.hiddenStates(batch, adapters: a).values  // fills a's packed cache
        var b = a
        try b.add(path: dir + "/delta.safetensors", scale: 1, model: model)
        XCTAssertEqual(try a.patched[name]!.floats(), before, "the copy's change reached the original")
        XCTAssertEqual(model.hiddenStates(batch, adapters: a).values, first)
        var fresh = AdapterSet()
        try fresh.add(path: dir + "/delta.safetensors", scale: 2, model: model)
        XCTAssertEqual(model.hiddenStates(batch, adapters: b).values, model.hiddenStates(batch, adapters: fresh).values)
        XCTAssertNotEqual(model.hiddenStates(batch, adapters: b).values, first)
    }
}

final class HostileInputTests: XCTestCase {
    /// Issue 14, cause 6: a RoBERTa-family model (positions start after the padding index)
    /// with an input longer than its position table used to fail the forward pass's
    /// precondition; the tokenizer now truncates to `max_position_embeddings − offset`.
    func testRobertaLongInputIsTruncatedToItsPositions() throws {
        let dir = NSTemporaryDirectory() + "alloy-roberta-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = try String(contentsOfFile: Fixture.path("tiny/config.json"), encoding: .utf8)
        config = config.replacingOccurrences(of: "\"model_type\": \"bert\"", with: "\"model_type\": \"roberta\"")
        try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: Fixture.path("tiny/model.safetensors"), toPath: dir + "/model.safetensors")
        try FileManager.default.copyItem(atPath: Fixture.path("minilm_tokenizer.json"), toPath: dir + "/tokenizer.json")
        let encoder = try SentenceEncoder(directory: dir)
        XCTAssertEqual(encoder.model.maxTokens, 62, "64 positions minus RoBERTa's offset of 2")
        let long = String(repeating: "word ", count: 500)
        XCTAssertEqual(encoder.tokenize([long])[0].count, 62)
        let v = encoder.encode([long, "short"])
        XCTAssertEqual(v.count, 2)
        XCTAssertTrue(v.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isFinite) })
    }

    /// A config whose position table cannot hold a sentence, or whose heads do not divide the
    /// hidden size, is refused when the model is opened, naming config.json.
    func testImpossibleConfigsAreRefused() throws {
        for (field, value) in [("\"max_position_embeddings\": 64", "\"max_position_embeddings\": 2"), ("\"num_attention_heads\": 4", "\"num_attention_heads\": 5")] {
            let dir = NSTemporaryDirectory() + "alloy-cfg-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let config = try String(contentsOfFile: Fixture.path("tiny/config.json"), encoding: .utf8).replacingOccurrences(of: field, with: value)
            try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
            try FileManager.default.copyItem(atPath: Fixture.path("tiny/model.safetensors"), toPath: dir + "/model.safetensors")
            XCTAssertThrowsError(try EncoderModel(directory: dir)) { XCTAssertTrue("\($0)".contains("config.json"), "\($0)") }
        }
    }
}
