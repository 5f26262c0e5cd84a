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
