import XCTest
import Foundation
@testable import Encoder
import Formats
import Tensors

/// transformers' sequence-classification heads and sentence-transformers' modules against the
/// reference libraries (Scripts/make-fixtures-heads.py).
final class TransformersHeadTests: XCTestCase {
    struct Expected: Decodable { let ids: [[Int32]]; let logits: [[Float]]; let labels: [String]; let problem_type: String? }

    func expected(_ dir: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/expected.json")))
    }

    /// Every family's `*ForSequenceClassification` checkpoint: the encoder loads despite the
    /// head tensors, the head comes from the same folder, and the logits equal transformers'
    /// within 1e-4; labels from id2label, sigmoid for multi-label.
    func testLogitsMatchTransformersForEveryFamily() throws {
        let families = ["bert", "roberta", "roberta-multilabel", "xlm-roberta", "distilbert", "electra", "mpnet", "modernbert"]
        for family in families {
            let dir = Fixture.path("heads/\(family)")
            let want = try expected(dir)
            let model = try EncoderModel(directory: dir)
            let head = try ClassificationHead.load(path: dir, model: model)
            XCTAssertEqual(head.labels, want.labels, family)
            XCTAssertEqual(head.pooling, .cls, family)
            XCTAssertEqual(head.layout, family == "roberta-multilabel" ? "roberta" : family, family)
            XCTAssertEqual(head.problem, family == "roberta-multilabel" ? .multiLabel : .singleLabel, family)
            var worst: Float = 0
            for (ids, logits) in zip(want.ids, want.logits) {
                let h = model.hiddenStates([ids])
                let got = head.logits(head.pooling.pool(h, sequence: 0))
                XCTAssertEqual(got.count, logits.count, family)
                for (a, b) in zip(got, logits) { worst = max(worst, abs(a - b)) }
                if head.problem == .multiLabel {
                    let p = head.probabilities(head.pooling.pool(h, sequence: 0))
                    for (a, b) in zip(p, logits) { XCTAssertEqual(a, 1 / (1 + exp(-b)), accuracy: 1e-5, family) }
                }
            }
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(family): max |logit diff| \(worst)")
        }
    }

    /// PEFT LoRA classifiers (SEQ_CLS) over transformers classifiers: LoRA on the encoder, the
    /// head from modules_to_save (BERT's pooler from the base), labels from the base's
    /// id2label; logits equal PEFT's within 1e-4.
    func testPEFTSequenceClassifiersMatchPEFT() throws {
        for family in ["bert", "roberta"] {
            let model = try EncoderModel(directory: Fixture.path("heads/\(family)"))
            let want = try expected(Fixture.path("heads/peft-\(family)"))
            var set = AdapterSet()
            let lora = try XCTUnwrap(try set.add(path: Fixture.path("heads/peft-\(family)"), scale: 1, model: model))
            let head = try XCTUnwrap(lora.head, family)
            XCTAssertEqual(head.labels, want.labels)
            XCTAssertEqual(head.pooling, .cls)
            var worst: Float = 0
            for (ids, logits) in zip(want.ids, want.logits) {
                let got = head.logits(head.pooling.pool(model.hiddenStates([ids], adapters: set), sequence: 0))
                for (a, b) in zip(got, logits) { worst = max(worst, abs(a - b)) }
            }
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(family): max |logit diff| \(worst)")
        }
    }

    /// tokenizer_config.json's `model_max_length` bounds the head's inputs.
    func testTruncationFollowsTheTokenizersModelMaxLength() throws {
        let dir = Fixture.path("heads/bert")
        let head = try ClassificationHead.load(path: dir, model: try EncoderModel(directory: dir))
        XCTAssertEqual(head.maxLength, 24)
        let roberta = Fixture.path("heads/roberta")
        XCTAssertNil(try ClassificationHead.load(path: roberta, model: try EncoderModel(directory: roberta)).maxLength,
                     "transformers' 1e30 sentinel means no limit")
    }

    /// A copy of the bert fixture with `edit` applied to its config and tensors.
    func variant(_ edit: (inout [String: Any], inout [(String, Tensor)]) throws -> Void) throws -> String {
        let src = Fixture.path("heads/bert")
        let dir = NSTemporaryDirectory() + "alloy-head-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: src + "/config.json"))) as? [String: Any])
        let f = try SafetensorsFile(path: src + "/model.safetensors")
        var tensors = try f.names.map { ($0, try f.tensor($0)) }
        try edit(&config, &tensors)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/config.json"))
        try SafetensorsWriter.write(tensors, to: dir + "/model.safetensors")
        return dir
    }

    func assertError(_ dir: String, mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ClassificationHead.transformers(directory: dir), file: file, line: line) { e in
            for w in words { XCTAssertTrue("\(e)".contains(w), "\"\(e)\" should mention \(w)", file: file, line: line) }
        }
    }

    func testBadHeadsAreErrorsNamingFileAndField() throws {
        assertError(try variant { c, _ in c["num_labels"] = 5 }, mentions: ["config.json", "num_labels", "id2label"])
        assertError(try variant { c, _ in c["id2label"] = ["0": "a", "1": "b"] }, mentions: ["id2label", "classifier.weight", "3 outputs"])
        assertError(try variant { _, t in t.removeAll { $0.0 == "classifier.bias" } }, mentions: ["classifier.bias"])
        assertError(try variant { _, t in t.removeAll { $0.0.hasPrefix("bert.pooler") } }, mentions: ["missing tensor", "pooler.dense"])
        assertError(try variant { c, _ in c["problem_type"] = "ranking" }, mentions: ["config.json", "problem_type"])
        assertError(try variant { c, _ in c["model_type"] = "gpt2" }, mentions: ["model_type", "gpt2"])
        assertError(try variant { c, _ in c["id2label"] = ["0": "a", "7": "b", "2": "c"] }, mentions: ["id2label", "\"7\""])
    }
}

final class SentenceTransformersModuleTests: XCTestCase {
    struct Expected: Decodable { let sentences: [String]; let embeddings: [[Float]] }

    /// Max pooling + Dense(tanh) + Normalize, and CLS+mean pooling concatenated + Dense
    /// (identity): embeddings equal sentence-transformers' within 1e-4.
    func testPoolingModesAndDenseModulesMatchSentenceTransformers() throws {
        for (name, pooling, normalize) in [("max-dense", "max", true), ("cls-mean", "cls+mean", false)] {
            let dir = Fixture.path("heads/st/\(name)")
            let want = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/expected.json")))
            let encoder = try SentenceEncoder(directory: dir)
            XCTAssertEqual(encoder.pooling.description, pooling)
            XCTAssertEqual(encoder.normalize, normalize)
            XCTAssertEqual(encoder.dense.count, 1)
            XCTAssertEqual(encoder.dimension, want.embeddings[0].count)
            XCTAssertEqual(encoder.maxLength, 20)
            let got = encoder.encode(want.sentences, batchSize: 3)
            var worst: Float = 0
            for (a, b) in zip(got, want.embeddings) {
                XCTAssertEqual(a.count, b.count)
                for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)) }
            }
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(name): max |diff| \(worst)")
        }
    }

    /// Every pooling mode on hand-made states, against the definitions.
    func testPoolingModesOnKnownStates() throws {
        let h = HiddenStates(values: [1, -2, 3, 4, -5, 6, 0, 0], offsets: [0, 3, 4], width: 2)
        XCTAssertEqual(Pooling([.cls]).pool(h, sequence: 0), [1, -2])
        XCTAssertEqual(Pooling([.lastToken]).pool(h, sequence: 0), [-5, 6])
        XCTAssertEqual(Pooling([.max]).pool(h, sequence: 0), [3, 6])
        XCTAssertEqual(Pooling([.mean]).pool(h, sequence: 0), [-1.0 / 3, 8.0 / 3])
        XCTAssertEqual(Pooling([.meanSqrtLen]).pool(h, sequence: 0)[0], -1 / Float(3).squareRoot(), accuracy: 1e-6)
        let weighted: Float = (1 * 1 + 2 * 3 + 3 * -5) / 6
        XCTAssertEqual(Pooling([.weightedMean]).pool(h, sequence: 0)[0], weighted, accuracy: 1e-6)
        XCTAssertEqual(Pooling([.mean, .cls]).pool(h, sequence: 1), [0, 0, 0, 0])
        XCTAssertEqual(Pooling([.mean, .cls]).description, "mean+cls")
    }

    func testUnsupportedModulesAreErrorsNamingTheFile() throws {
        let dir = NSTemporaryDirectory() + "alloy-st-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/1_Pooling", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.LayerNorm"}]"#
            .write(toFile: dir + "/modules.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SentenceEncoder.Settings(directory: dir, maxTokens: 128)) { e in
            XCTAssertTrue("\(e)".contains("modules.json") && "\(e)".contains("LayerNorm"), "\(e)")
        }
        try #"[{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#
            .write(toFile: dir + "/modules.json", atomically: true, encoding: .utf8)
        try #"{"pooling_mode": ["mean", "median"]}"#.write(toFile: dir + "/1_Pooling/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SentenceEncoder.Settings(directory: dir, maxTokens: 128)) { e in
            XCTAssertTrue("\(e)".contains("1_Pooling/config.json") && "\(e)".contains("median"), "\(e)")
        }
        try #"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": true}"#
            .write(toFile: dir + "/1_Pooling/config.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try SentenceEncoder.Settings(directory: dir, maxTokens: 128).pooling, Pooling([.cls, .max]))
    }
}
