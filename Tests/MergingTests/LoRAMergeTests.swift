import XCTest
import Foundation
@testable import Merging
import Formats
import Tensors

/// LoRA-space merges against PEFT's add_weighted_adapter (Scripts/make-fixtures-lora-merge.py):
/// weights [1, 0.5, −0.7], three r=4 adapters with α 8, 4, 16; tolerance 1e-5.
final class LoRAMergeTests: XCTestCase {
    let dir = "\(fixtures)/lora"

    func adapters() throws -> [PEFTAdapter] {
        try (0..<3).map { i in
            let sub = "\(dir)/adapters/a\(i)"
            return try PEFTAdapter(directory: FileManager.default.fileExists(atPath: sub) ? sub : "\(dir)/adapters")
        }
    }

    func compare(_ method: LoRAMerge.Method, _ fixture: String, product: Bool = false) throws {
        let merged = try LoRAMerge.merge(adapters(), weights: [1.0, 0.5, -0.7], method: method)
        let ref = try SafetensorsFile(path: "\(dir)/\(fixture).safetensors")
        XCTAssertEqual(merged.count * 2, ref.names.count)
        for (path, f) in merged {
            let ra = try ref.tensor(path + ".lora_A").floats(), rb = try ref.tensor(path + ".lora_B").floats()
            XCTAssertEqual(f.scale, 1)
            if product {
                // Singular vectors are defined up to sign: compare ΔW = B·A.
                let r = ref.info(path + ".lora_A")!.shape.dims[0]
                for o in 0..<f.outFeatures { for j in 0..<f.inFeatures {
                    var ours: Float = 0, theirs: Float = 0
                    for k in 0..<f.rank { ours += f.b[o * f.rank + k] * f.a[k * f.inFeatures + j] }
                    for k in 0..<r { theirs += rb[o * r + k] * ra[k * f.inFeatures + j] }
                    XCTAssertEqual(ours, theirs, accuracy: 1e-5, "\(fixture) \(path) [\(o),\(j)]")
                } }
            } else {
                XCTAssertEqual(f.a.count, ra.count)
                XCTAssertEqual(f.b.count, rb.count)
                for (x, y) in zip(f.a, ra) { XCTAssertEqual(x, y, accuracy: 1e-5, "\(fixture) \(path) A") }
                for (x, y) in zip(f.b, rb) { XCTAssertEqual(x, y, accuracy: 1e-5, "\(fixture) \(path) B") }
            }
        }
    }

    func testLinear() throws { try compare(.linear, "linear") }
    func testTIES() throws { try compare(.ties(density: 0.5), "ties") }
    func testCat() throws { try compare(.cat, "cat") }
    func testSVD() throws { try compare(.svd(rank: 4), "svd", product: true) }

    func testDAREIsSeededAndKeepsTheExpectedFraction() throws {
        let a = try LoRAMerge.merge(adapters(), weights: [1, 1, 1], method: .dareLinear(density: 0.4, seed: 3))
        let b = try LoRAMerge.merge(adapters(), weights: [1, 1, 1], method: .dareLinear(density: 0.4, seed: 3))
        for (p, f) in a { XCTAssertEqual(f.a, b[p]!.a) }
        // One adapter alone: kept fraction ≈ density, survivors scaled by 1/density.
        let one = try LoRAMerge.merge([adapters()[0]], weights: [1], method: .dareLinear(density: 0.4, seed: 3))
        let ad = try adapters()[0]
        var kept = 0, total = 0
        for m in ad.modules {
            let orig = try m.b.floats(), merged = one[m.path]!.b, s = m.scale.squareRoot()
            for (x, y) in zip(orig, merged) {
                total += 1
                if y != 0 { kept += 1; XCTAssertEqual(y, x * s / 0.4, accuracy: 1e-5) }
            }
        }
        XCTAssertEqual(Double(kept) / Double(total), 0.4, accuracy: 0.03)
    }
}
