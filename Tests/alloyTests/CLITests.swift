import Foundation
import XCTest
@testable import AlloyCLI

/// The store commands on the tiny BERT fixtures: import, ls, inspect, export, rm, verify, gc,
/// and `merge --into-store`, each with a golden transcript and at least one failure.
final class StoreCommandTests: CLITestCase {
    var store: String { tmp + "/store" }

    func testStoreLifecycle() throws {
        let s = ["--store", store]
        golden("import-base", ["import", Self.tiny, "--name", "tiny"] + s)
        golden("import-task-vector-json", ["import", Self.fixture("StoreTests/Fixtures/finetuned"), "--name", "ft", "--base", "tiny", "--json"] + s)
        golden("import-lora", ["import", Self.tiny + "/lora", "--name", "lora-a", "--base", "tiny"] + s)
        ok(["import", Self.tiny + "/rslora", "--name", "lora-b", "--base", "tiny"] + s)
        golden("import-again", ["import", Self.tiny + "/lora", "--name", "lora-a2", "--base", "tiny"] + s)
        golden("ls", ["ls"] + s)
        golden("ls-json", ["ls", "--kind", "lora", "--json"] + s)
        golden("inspect-entry", ["inspect", "lora-a"] + s)
        golden("inspect-entry-json", ["inspect", "ft", "--json"] + s)
        golden("inspect-compare", ["inspect", "lora-a", "--compare", "lora-b"] + s)
        golden("inspect-compare-json", ["inspect", "lora-a", "--compare", "lora-b", "--json"] + s)
        golden("export-peft", ["export", "lora-a", "--format", "peft", "--out", tmp + "/peft"] + s)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/peft/adapter_config.json"))
        golden("export-json", ["export", "ft", "--format", "safetensors", "--out", tmp + "/ft.safetensors", "--json"] + s)
        try """
            merge_method: task_arithmetic
            base_model: tiny
            parameters:
              lambda: 1.0
            models:
              - model: lora-b
                parameters:
                  weight: 0.5
              - model: lora-a
                parameters:
                  weight: 0.5
            """.write(toFile: tmp + "/recipe.yaml", atomically: true, encoding: .utf8)
        golden("merge-into-store", ["merge", tmp + "/recipe.yaml", "--into-store", "merged"] + s)
        golden("inspect-merged", ["inspect", "merged"] + s)
        golden("verify", ["verify"] + s)
        golden("verify-json", ["verify", "--json"] + s)
        golden("rm", ["rm", "lora-b", "lora-a2"] + s)
        golden("rm-json", ["rm", "merged", "--json"] + s)
        golden("gc", ["gc"] + s)
        golden("gc-json", ["gc", "--json"] + s)

        golden("import-error-missing", ["import", tmp + "/nope", "--name", "x"] + s, fails: true)
        golden("import-error-density", ["import", Self.tiny, "--name", "x", "--sparsify", "magnitude", "--density", "0"] + s, fails: true)
        golden("import-error-kind", ["import", Self.tiny, "--name", "x", "--kind", "weights"] + s, fails: true)
        golden("ls-error-kind", ["ls", "--kind", "bogus"] + s, fails: true)
        golden("inspect-error-unknown", ["inspect", "no-such-entry"] + s, fails: true)
        golden("export-error-format", ["export", "ft", "--format", "onnx", "--out", tmp + "/x"] + s, fails: true)
        golden("export-error-unknown", ["export", "ghost", "--out", tmp + "/x"] + s, fails: true)
        golden("rm-error-unknown", ["rm", "ghost"] + s, fails: true)
        golden("rm-error-none", ["rm"] + s, fails: true)
        golden("merge-error-base-not-stored", ["merge", Self.merging + "/task_arithmetic.yaml", "--into-store", "m2", "--store", tmp + "/empty"], fails: true)
        golden("gc-error-no-store", ["gc", "--store", tmp + "/none"], fails: true)
    }

    /// A damaged blob: `verify` names it and exits with status 1.
    func testVerifyFindsDamage() throws {
        ok(["import", Self.tiny, "--name", "tiny", "--store", store])
        let fm = FileManager.default
        let files = try XCTUnwrap(fm.subpathsOfDirectory(atPath: store))
            .map { store + "/" + $0 }
            .filter { !$0.contains("catalog.sqlite") && !$0.hasSuffix(".lock") && ((try? fm.attributesOfItem(atPath: $0)[.type] as? FileAttributeType) == .typeRegular) }
        let blob = try XCTUnwrap(files.max { (try? fm.attributesOfItem(atPath: $0)[.size] as? Int ?? 0) ?? 0 < (try? fm.attributesOfItem(atPath: $1)[.size] as? Int ?? 0) ?? 0 })
        var bytes = try XCTUnwrap(fm.contents(atPath: blob))
        bytes[bytes.count / 2] ^= 0xFF
        try fm.removeItem(atPath: blob)   // blobs are read-only
        try bytes.write(to: URL(fileURLWithPath: blob))
        let r = alloy(["verify", "--json", "--store", store])
        XCTAssertEqual(r.exitCode, 1)
        XCTAssertTrue(r.stdout.contains("\"ok\" : false"), r.stdout)
    }
}

/// inspect, pack and unpack on the tiny model.
final class FileCommandTests: CLITestCase {
    func testInspectPackUnpack() throws {
        golden("inspect-model", ["inspect", Self.tiny])
        golden("inspect-model-json", ["inspect", Self.tiny + "/model.safetensors", "--json"])
        golden("pack", ["pack", Self.tiny + "/model.safetensors", "--out", tmp + "/t.alloy"])
        golden("pack-f16-json", ["pack", Self.tiny + "/model.safetensors", "--out", tmp + "/h.alloy", "--codec", "f16", "--json"])
        golden("inspect-alloy", ["inspect", tmp + "/t.alloy"])
        golden("inspect-alloy-json", ["inspect", tmp + "/h.alloy", "--json"])
        golden("unpack", ["unpack", tmp + "/t.alloy", "--out", tmp + "/t.safetensors", "--verify"])
        golden("unpack-json", ["unpack", tmp + "/h.alloy", "--out", tmp + "/h.safetensors", "--json"])
        // Lossless: the unpacked tensors are the original's, byte for byte.
        golden("inspect-unpacked", ["inspect", tmp + "/t.safetensors"])

        golden("pack-error-codec", ["pack", Self.tiny + "/model.safetensors", "--out", tmp + "/x.alloy", "--codec", "zstd"], fails: true)
        golden("pack-error-kind", ["pack", Self.tiny + "/model.safetensors", "--out", tmp + "/x.alloy", "--kind", "weights"], fails: true)
        golden("unpack-error-missing", ["unpack", tmp + "/missing.alloy", "--out", tmp + "/x.safetensors"], fails: true)
        golden("inspect-error-missing", ["inspect", tmp + "/missing.safetensors", "--store", tmp + "/none"], fails: true)
    }
}

/// merge, merge-lora, extract-lora and sparsify on the merging fixtures.
final class MergeCommandTests: CLITestCase {
    func testMerge() throws {
        golden("merge", ["merge", Self.merging + "/task_arithmetic.yaml", "--out", tmp + "/m"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/m/model.safetensors"))
        golden("merge-json", ["merge", Self.merging + "/ties.yaml", "--out", tmp + "/t", "--json"])
        golden("merge-error-no-output", ["merge", Self.merging + "/ties.yaml"], fails: true)
        golden("merge-error-recipe", ["merge", tmp + "/missing.yaml", "--out", tmp + "/x"], fails: true)
    }

    func testMergeLoRA() throws {
        let a = Self.merging + "/lora/adapters"
        golden("merge-lora", ["merge-lora", "--adapter", a + "/a0@0.5", "--adapter", a + "/a1", "--method", "ties", "--out", tmp + "/ties"])
        golden("merge-lora-json", ["merge-lora", "--adapter", a + "/a0", "--adapter", a + "/a2@-0.5", "--method", "svd", "--rank", "2", "--out", tmp + "/svd", "--json"])
        golden("merge-lora-error-method", ["merge-lora", "--adapter", a + "/a0", "--method", "magic", "--out", tmp + "/x"], fails: true)
        golden("merge-lora-error-density", ["merge-lora", "--adapter", a + "/a0", "--density", "0", "--out", tmp + "/x"], fails: true)
        golden("merge-lora-error-rank", ["merge-lora", "--adapter", a + "/a0", "--method", "svd", "--rank", "0", "--out", tmp + "/x"], fails: true)
    }

    func testExtractLoRAAndSparsify() throws {
        let ft = Self.merging + "/expert0", base = Self.merging + "/base"
        golden("extract-lora", ["extract-lora", ft, "--base", base, "--rank", "2", "--out", tmp + "/lora"])
        golden("extract-lora-json", ["extract-lora", ft, "--base", base, "--rank", "1", "--out", tmp + "/lora1", "--json"])
        golden("extract-lora-error-rank", ["extract-lora", ft, "--base", base, "--rank", "0", "--out", tmp + "/x"], fails: true)
        golden("sparsify", ["sparsify", ft, "--base", base, "--density", "0.1", "--out", tmp + "/s.alloy"])
        golden("sparsify-json", ["sparsify", ft, "--base", base, "--method", "breadcrumbs", "--density", "0.2", "--gamma", "0.05", "--out", tmp + "/b.alloy", "--json"])
        golden("inspect-sparse", ["inspect", tmp + "/s.alloy"])
        golden("sparsify-error-density", ["sparsify", ft, "--base", base, "--density", "1.5", "--out", tmp + "/x.alloy"], fails: true)
        golden("sparsify-error-method", ["sparsify", ft, "--base", base, "--method", "largest", "--density", "0.1", "--out", tmp + "/x.alloy"], fails: true)
    }
}
