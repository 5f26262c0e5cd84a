import Foundation
import Tensors
import XCTest
@testable import Formats

/// adapter_config.json as PEFT writes it, read without Foundation's JSONSerialization.
final class PEFTConfigTests: XCTestCase {
    private let a = try! Tensor([Float](repeating: 0.5, count: 2 * 3), shape: Shape([2, 3]))
    private let b = try! Tensor([Float](repeating: 0.25, count: 4 * 2), shape: Shape([4, 2]))

    private func adapter(_ config: String, names: [String]? = nil) throws -> PEFTAdapter {
        let names = names ?? ["base_model.model.encoder.layer.0.attention.self.query.lora_A.weight",
                              "base_model.model.encoder.layer.0.attention.self.query.lora_B.weight"]
        return try PEFTAdapter(source: "test", config: Data(config.utf8)) {
            (names, { $0.contains("lora_A") ? self.a : self.b })
        }
    }

    func testReadsPEFTsFields() throws {
        let p = try adapter("""
            {"peft_type": "LORA", "r": 2, "lora_alpha": 8, "use_rslora": false, "target_modules": ["query", "value"],
             "modules_to_save": null, "bias": "none", "base_model_name_or_path": "m", "task_type": "FEATURE_EXTRACTION",
             "auto_mapping": {"base_model_class": "BertModel", "parent_library": "transformers"},
             "rank_pattern": {}, "alpha_pattern": {"query": 2.5}, "lora_dropout": 0.1, "fan_in_fan_out": false}
            """)
        XCTAssertEqual(p.rank, 2)
        XCTAssertEqual(p.alpha, 8)
        XCTAssertEqual(p.targetModules, ["query", "value"])
        XCTAssertEqual(p.baseModelName, "m")
        XCTAssertEqual(p.taskType, "FEATURE_EXTRACTION")
        XCTAssertEqual(p.baseModelClass, "BertModel")
        XCTAssertEqual(p.modules.map(\.path), ["encoder.layer.0.attention.self.query"])
        // alpha_pattern's "query" matches the module's last component: 2.5 / r.
        XCTAssertEqual(p.modules[0].scale, 1.25)
        // A single target module may be a string (a regex in PEFT); an integral float r is r.
        let q = try adapter(#"{"peft_type": "lora", "r": 2.0, "target_modules": "query", "use_rslora": true}"#)
        XCTAssertEqual(q.targetModules, ["query"])
        XCTAssertEqual(q.modules[0].scale, Float(2 / 2.0.squareRoot()), accuracy: 1e-6)
    }

    func testFieldsOfTheWrongTypeAreErrorsNamingThem() {
        let cases = [
            (#"{"peft_type": "LORA", "r": 2, "lora_alpha": "16"}"#, "lora_alpha"),
            (#"{"peft_type": "LORA", "r": 2, "use_rslora": "yes"}"#, "use_rslora"),
            (#"{"peft_type": "LORA", "r": 2, "target_modules": ["query", 3]}"#, "target_modules"),
            (#"{"peft_type": "LORA", "r": 2, "rank_pattern": {"query": "4"}}"#, "rank_pattern.query"),
            (#"{"peft_type": "LORA", "r": 2.5}"#, "r"),
            (#"{"peft_type": 7, "r": 2}"#, "peft_type"),
            (#"{"peft_type": "IA3", "r": 2}"#, "only LORA"),
            (#"{"peft_type": "LORA", "r": 0}"#, "positive r"),
            (#"{"peft_type": "LORA", "r": 2, "use_dora": true}"#, "DoRA"),
            (#"[1, 2]"#, "not a JSON object"),
            (#"{"peft_type": "LORA", "r": 2"#, "not valid JSON"),
        ]
        for (config, expected) in cases {
            XCTAssertThrowsError(try adapter(config), config) { XCTAssertTrue("\($0)".contains(expected), "\(config): \($0)") }
        }
    }

    func testLoRAFactorNames() {
        XCTAssertTrue(PEFTAdapter.loraFactor("encoder.layer.0.attention.self.query.lora_A.default.weight")! == ("encoder.layer.0.attention.self.query", true))
        XCTAssertTrue(PEFTAdapter.loraFactor("q.lora_B.weight")! == ("q", false))
        // The first `.lora_A.` wins over an earlier `.lora_B.`, as before.
        XCTAssertTrue(PEFTAdapter.loraFactor("x.lora_B.y.lora_A.weight")! == ("x.lora_B.y", true))
        XCTAssertTrue(PEFTAdapter.loraFactor("é.lora_A.w")! == ("é", true))
        for name in ["classifier.weight", "lora_A.weight", "x.lora_A", "x.lora_C.weight", ""] {
            XCTAssertNil(PEFTAdapter.loraFactor(name), name)
        }
    }
}
