import XCTest
import Foundation
@testable import Composition
import Encoder
import Formats
import Tensors

/// Merging transformers classifiers (Scripts/make-fixtures-heads.py: bert-base and two
/// BertForSequenceClassification experts of 2 and 4 labels fine-tuned from it).
final class ClassifierMergeTests: XCTestCase {
    let heads = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../EncoderTests/Fixtures/heads").standardized.path

    struct Expected: Decodable { let ids: [[Int32]]; let logits: [[Float]]; let labels: [String] }

    func merge(_ yaml: String) throws -> String {
        let dir = NSTemporaryDirectory() + "alloy-clsmerge-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try yaml.write(toFile: dir + "/recipe.yaml", atomically: true, encoding: .utf8)
        _ = try ModelLocator(storeRoot: dir + "/no-store").merge(recipe: dir + "/recipe.yaml", out: dir + "/out", intoStore: nil)
        return dir + "/out"
    }

    /// The merged model is an encoder (the base's names, its position_ids buffer, no classifier)
    /// and each expert's head is kept whole beside it, not merged (mergekit #381 merges heads).
    func testAMergeOfClassifiersKeepsEachExpertsOwnHead() throws {
        let out = try merge("""
        merge_method: task_arithmetic
        base_model: \(heads)/bert-base
        models:
          - model: \(heads)/bert-sst
            parameters: {weight: 0.5}
          - model: \(heads)/bert-topic
            parameters: {weight: 0.5}
        """)
        let merged = try SafetensorsFile(path: out + "/model.safetensors")
        let base = try SafetensorsFile(path: "\(heads)/bert-base/model.safetensors")
        XCTAssertEqual(Set(merged.names), Set(base.names))
        XCTAssertEqual(Array(try merged.tensor("embeddings.position_ids").rawBytes), Array(try base.tensor("embeddings.position_ids").rawBytes))
        for expert in ["bert-sst", "bert-topic"] {
            let kept = try SafetensorsFile(path: "\(out)/heads/\(expert)/head.safetensors")
            let original = try SafetensorsFile(path: "\(heads)/\(expert)/model.safetensors")
            XCTAssertEqual(Set(kept.names), ["classifier.weight", "classifier.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"])
            for n in kept.names { XCTAssertEqual(Array(try kept.tensor(n).rawBytes), Array(try original.tensor(n).rawBytes), n) }
        }
        let model = try EncoderModel(directory: out)
        XCTAssertEqual(try ClassificationHead.load(path: out + "/heads/bert-topic", model: model).labels, ["world", "sports", "business", "science"])
    }

    /// Task arithmetic with one expert at weight 1 gives back that expert's encoder; with its
    /// kept head, the logits are transformers' within 1e-4.
    func testAMergedEncoderWithAKeptHeadGivesTheExpertsLogits() throws {
        let out = try merge("""
        merge_method: task_arithmetic
        base_model: \(heads)/bert-base
        models:
          - model: \(heads)/bert-sst
            parameters: {weight: 1.0}
        """)
        let want = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: "\(heads)/bert-sst/expected.json")))
        let model = try EncoderModel(directory: out)
        let head = try ClassificationHead.load(path: out + "/heads/bert-sst", model: model)
        XCTAssertEqual(head.labels, want.labels)
        var worst: Float = 0
        for (ids, logits) in zip(want.ids, want.logits) {
            let got = head.logits(head.pooling.pool(model.hiddenStates([ids]), sequence: 0))
            for (a, b) in zip(got, logits) { worst = max(worst, abs(a - b)) }
        }
        XCTAssertLessThanOrEqual(worst, 1e-4)
    }
}
