import XCTest
import Foundation
@testable import Evaluation

final class TaskDataTests: XCTestCase {
    func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "alloy-task-\(UUID().uuidString).jsonl"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testBadTaskFilesFailWithFileAndLine() throws {
        let ok = try write("{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n")
        XCTAssertEqual(try TaskData(path: ok, allowed: ["x", "y"]).texts, ["a", "b"])
        let unknown = try write("{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"z\"}\n")
        XCTAssertThrowsError(try TaskData(path: unknown, allowed: ["x", "y"])) { XCTAssertTrue("\($0)".contains(":2: unknown label \"z\""), "\($0)") }
        let empty = try write("{\"text\": \"a\", \"label\": \"x\"}\n\n{\"text\": \"b\", \"label\": \"y\"}\n")
        XCTAssertThrowsError(try TaskData(path: empty)) { XCTAssertTrue("\($0)".contains(":2: empty line"), "\($0)") }
        let garbage = try write("{\"text\": 3}\n")
        XCTAssertThrowsError(try TaskData(path: garbage)) { XCTAssertTrue("\($0)".contains(":1: expected a JSON object"), "\($0)") }
    }

    func testMetricsAndSeededBootstrap() {
        let gold = ["a", "a", "b", "b", "b", "c"], pred = ["a", "b", "b", "b", "c", "c"]
        let m = Metrics(predicted: pred, gold: gold)
        XCTAssertEqual(m.accuracy, 4.0 / 6.0, accuracy: 1e-12)
        // per-class F1: a 2/3, b 2/3, c 2/3
        XCTAssertEqual(m.macroF1, 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(m.accuracyCI, Metrics(predicted: pred, gold: gold).accuracyCI, "same seed, same interval")
        XCTAssertLessThanOrEqual(m.accuracyCI[0], m.accuracy)
        XCTAssertGreaterThanOrEqual(m.accuracyCI[1], m.accuracy)
    }
}
