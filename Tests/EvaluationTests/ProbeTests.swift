import XCTest
import Foundation
@testable import Evaluation

final class ProbeTests: XCTestCase {
    /// Fixture: scikit-learn 1.9 StandardScaler + LogisticRegression(C=1) (Scripts/make-fixtures-probe.py).
    /// Same objective, different solver: probabilities within 1e-4, coefficients within 1e-3.
    func testLogisticRegressionMatchesScikitLearn() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/logreg.json")
        let fx = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        func matrix(_ k: String) -> [[Float]] { (fx[k] as! [[Double]]).map { $0.map(Float.init) } }
        let train = matrix("train"), test = matrix("test"), labels = fx["labels"] as! [String]
        let scaler = Standardizer(fit: train)
        for (a, b) in zip(scaler.mean, fx["scaler_mean"] as! [Double]) { XCTAssertEqual(Double(a), b, accuracy: 1e-5) }
        for (a, b) in zip(scaler.scale, fx["scaler_scale"] as! [Double]) { XCTAssertEqual(Double(a), b, accuracy: 1e-5) }
        let lr = LogisticRegression(features: train.map(scaler.apply), labels: labels, c: 1)
        XCTAssertEqual(lr.classes, ["a", "b", "c"])
        let coef = (fx["coef"] as! [[Double]]).flatMap { $0 }
        for (a, b) in zip(lr.weights, coef) { XCTAssertEqual(a, b, accuracy: 1e-3) }
        for (a, b) in zip(lr.bias, fx["intercept"] as! [Double]) { XCTAssertEqual(a, b, accuracy: 1e-3) }
        for (x, p) in zip(test, fx["probabilities"] as! [[Double]]) {
            for (a, b) in zip(lr.probabilities(scaler.apply(x)), p) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        }
    }

    func testKShotSamplingIsSeededStratifiedAndNested() throws {
        let path = NSTemporaryDirectory() + "alloy-probe-\(UUID().uuidString).jsonl"
        let lines = (0..<60).map { "{\"text\": \"t\($0)\", \"label\": \"\(["x", "y", "z"][$0 % 3])\"}" }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let task = try TaskData(path: path)
        let s8 = ProbeEvaluation.sample(task, shots: 8, seed: 1), s16 = ProbeEvaluation.sample(task, shots: 16, seed: 1)
        XCTAssertEqual(s8.count, 24)
        XCTAssertEqual(Dictionary(grouping: s8, by: { task.labels[$0] }).mapValues(\.count), ["x": 8, "y": 8, "z": 8])
        XCTAssertTrue(Set(s8).isSubset(of: Set(s16)))
        XCTAssertEqual(s8, ProbeEvaluation.sample(task, shots: 8, seed: 1))
        XCTAssertNotEqual(s8, ProbeEvaluation.sample(task, shots: 8, seed: 2))
    }
}

/// Label descriptions for the zero-shot protocol come from a strict JSON file.
final class ZeroShotDescriptionTests: XCTestCase {
    func testDescriptionsFallBackToLabelNamesAndRejectBadFiles() throws {
        let dir = NSTemporaryDirectory() + "zeroshot-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/zero-shot.json"
        XCTAssertEqual(try ZeroShotEvaluation.descriptions(task: "t", labels: ["a_b"], file: file).map(\.1), ["a b"], "no file: label names")
        try #"{"t": {"a": "the letter a", "b": 7}}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let d = try ZeroShotEvaluation.descriptions(task: "t", labels: ["a", "b", "c_d"], file: file)
        XCTAssertEqual(d.map(\.0), ["a", "b", "c_d"])
        XCTAssertEqual(d.map(\.1), ["the letter a", "b", "c d"], "a description that is not a string falls back to the label")
        try #"{"t": {"a": "x"}, "t": {}}"#.write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ZeroShotEvaluation.descriptions(task: "t", labels: ["a"], file: file), "duplicate keys are refused")
        try "[]".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ZeroShotEvaluation.descriptions(task: "t", labels: ["a"], file: file))
    }
}
