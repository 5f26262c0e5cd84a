import XCTest
import Foundation
@testable import Composition
import Evaluation
import Formats

/// The application layer's small values: adapter specs, expert cards, scores as JSON.
final class ApplicationLayerTests: XCTestCase {
    func testAdapterSpecParsesPathAndWeight() throws {
        XCTAssertEqual(try AdapterSpec(parsing: "Adapters/x/lora@0.5"), AdapterSpec(path: "Adapters/x/lora", weight: 0.5))
        XCTAssertEqual(try AdapterSpec(parsing: "a@-1e-1"), AdapterSpec(path: "a", weight: -0.1))
        XCTAssertEqual(try AdapterSpec(parsing: "plain"), AdapterSpec(path: "plain", weight: 1))
        // The text after the last @ is a weight only when it is a number: paths may hold @.
        XCTAssertEqual(try AdapterSpec(parsing: "user@host/dir"), AdapterSpec(path: "user@host/dir", weight: 1))
        XCTAssertEqual(try AdapterSpec.list("a@2,b"), [AdapterSpec(path: "a", weight: 2), AdapterSpec(path: "b", weight: 1)])
        XCTAssertThrowsError(try AdapterSpec(parsing: "@2")) { XCTAssertEqual("\($0)", "@2: no path before @") }
        XCTAssertThrowsError(try AdapterSpec(parsing: "a@nan")) { XCTAssertEqual("\($0)", "a@nan: the weight after @ is not a finite number") }
    }

    func testExpertCardReadsTheShippedCardsAndNamesBadFields() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path
        let card = try XCTUnwrap(try ExpertCard.near(repo + "/Adapters/sms_spam/lora"))
        XCTAssertEqual(card.task, "sms_spam")
        XCTAssertEqual(card.labels, ["ham", "spam"])
        XCTAssertNotNil(card.testAccuracy("lora"))
        XCTAssertNil(card.testAccuracy("dense"))

        let dir = NSTemporaryDirectory() + "card-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertNil(try ExpertCard.near(dir + "/lora"))
        // Errors name the file and the field (Formats' ExpertCard checks types, labels, limits).
        for (text, field) in [("{\"task\": 3}", "field \"task\""),
                              ("{\"task\": \"t\", \"labels\": []}", "field \"labels\""),
                              ("{\"task\": \"t\", \"lora\": {\"accuracy\": {\"test\": \"high\"}}}", "field \"lora.accuracy.test\""),
                              ("[1,", "not valid JSON")] {
            try text.write(toFile: dir + "/card.json", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try ExpertCard.near(dir + "/lora"), text) {
                XCTAssertTrue("\($0)".hasPrefix("\(dir)/card.json: ") && "\($0)".contains(field), "\($0)")
            }
        }
        // A card without a task is not an expert of any task: the workshop refuses it by name.
        try "{\"labels\": [\"a\", \"b\"]}".write(toFile: dir + "/card.json", atomically: true, encoding: .utf8)
        XCTAssertNil(try ExpertCard.near(dir + "/lora")?.task)
    }

    /// A non-finite number (a std over no seeds, say) is written as null, not refused.
    func testScoreEncodesNonFiniteNumbersAsNull() throws {
        let s = Score(task: "t", proto: .probe, accuracy: 0.5, macroF1: .nan, ci: [0.25, .infinity], std: .nan, n: 4, note: nil)
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        XCTAssertEqual(String(decoding: try e.encode(s), as: UTF8.self),
                       #"{"accuracy":0.5,"ci":[0.25,null],"macro_f1":null,"n":4,"protocol":"probe","std":null,"task":"t"}"#)
    }

    func testFusionTableSVGDrawsOneBarPerAverage() throws {
        var t = FusionTable(seen: ["a"], heldOut: ["b"], settings: [:])
        t.add("x<y", kind: "base", scores: [Score(task: "a", proto: .head, accuracy: 0.9, macroF1: 0.9, ci: [0.8, 1], std: 0, n: 10, note: nil)])
        let svg = t.svg()
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.contains("x&lt;y"), "row names are escaped")
        XCTAssertEqual(svg.components(separatedBy: "fill=\"#4C72B0\"").count - 1, 2, "the legend swatch and one seen bar (no held-out average)")
    }
}
