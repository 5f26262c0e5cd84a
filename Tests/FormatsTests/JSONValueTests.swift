import XCTest
@testable import Formats

final class JSONValueTests: XCTestCase {
    func testParsesValuesInOrder() throws {
        let v = try JSONValue.parse(#"{"b": [1, -2, 3.5, 1e2], "a": {"x": null, "y": true}, "s": "é\n\u00e9\ud83d\ude00"}"#)
        guard case .object(let m) = v else { return XCTFail() }
        XCTAssertEqual(m.map(\.0), ["b", "a", "s"])
        XCTAssertEqual(v["b"], .array([.integer(1), .integer(-2), .number(3.5), .number(100)]))
        XCTAssertEqual(v["s"], .string("é\né😀"))
        // Integers beyond 64 bits are numbers, as serde_json reads them (transformers writes
        // model_max_length = 1000000000000000019884624838656); exact-integer readers refuse them.
        XCTAssertEqual(try JSONValue.parse("99999999999999999999"), .number(1e20))
        XCTAssertEqual(try JSONValue.parse(#"{"model_max_length": 1000000000000000019884624838656}"#)["model_max_length"], .number(1e30))
    }

    func testTypedAccessors() throws {
        let v = try JSONValue.parse(#"{"i": 3, "f": 3.0, "h": 3.5, "big": 1e30, "s": "x", "b": false, "a": [1], "o": {"k": null}}"#)
        XCTAssertEqual(v["i"]?.int, 3)
        XCTAssertEqual(v["f"]?.int, 3)
        XCTAssertNil(v["h"]?.int)
        XCTAssertNil(v["big"]?.int)
        XCTAssertEqual(v["i"]?.double, 3)
        XCTAssertEqual(v["h"]?.double, 3.5)
        XCTAssertNil(v["s"]?.double)
        XCTAssertEqual(v["s"]?.string, "x")
        XCTAssertNil(v["i"]?.string)
        XCTAssertEqual(v["b"]?.bool, false)
        XCTAssertNil(v["i"]?.bool)
        XCTAssertEqual(v["a"]?.array, [.integer(1)])
        XCTAssertEqual(v["o"]?.members?.map(\.0), ["k"])
        XCTAssertNil(v["a"]?.members)
    }

    func testRejectsDuplicatesDepthAndGarbage() {
        let bad = [#"{"a":1,"a":2}"#, "[1,]", "{", #"{"a" 1}"#, "01", "1 2", #""\x""#, "\"a\u{01}\"", "-", "1e", #""\ud800""#,
                   String(repeating: "[", count: 100) + String(repeating: "]", count: 100)]
        for text in bad {
            XCTAssertThrowsError(try JSONValue.parse(text), text)
        }
        // Canonically equivalent but different bytes: two keys (serde_json's rule, and two tokens).
        guard case .object(let m)? = try? JSONValue.parse("{\"\u{00E0}\": 1, \"a\u{0300}\": 2}") else { return XCTFail("canonically equivalent keys are distinct") }
        XCTAssertEqual(m.count, 2)
        XCTAssertThrowsError(try JSONValue.parse(#"{"k":1,"k":1}"#)) { e in
            XCTAssertEqual((e as? JSONParseError)?.reason, "duplicate key \"k\"")
        }
    }

    func testSerializesLikeSerdeJSON() throws {
        let v = JSONValue.object([("k", .string("a\"b\n\u{01}é")), ("n", .array([.integer(1), .bool(false), .null]))])
        XCTAssertEqual(v.serialized(), #"{"k":"a\"b\n\u0001é","n":[1,false,null]}"#)
        XCTAssertEqual(try JSONValue.parse(v.serialized()), v)
    }
}
