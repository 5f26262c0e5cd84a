import XCTest
@testable import Merging
import Formats
import Tensors

final class DeltaToolsTests: XCTestCase {
    /// At full rank, B·A reproduces each delta (1e-5) and all its energy.
    func testFullRankExtractionReconstructsTheDelta() throws {
        let ft = try WeightSource(path: "\(fixtures)/expert0"), base = try WeightSource(path: "\(fixtures)/base")
        let (factors, reports) = try DeltaTools.extractLoRA(fineTuned: ft, base: base, rank: 64)
        XCTAssertFalse(factors.isEmpty)
        for r in reports { XCTAssertEqual(r.energyKept, 1, accuracy: 1e-5, r.name) }
        let name = "encoder.layer.1.attention.self.query"
        let f = try XCTUnwrap(factors[name])
        let delta = zip(try ft.tensor(name + ".weight").floats(), try base.tensor(name + ".weight").floats()).map { $0 - $1 }
        for o in 0..<f.outFeatures { for j in 0..<f.inFeatures {
            var x: Float = 0
            for k in 0..<f.rank { x += f.b[o * f.rank + k] * f.a[k * f.inFeatures + j] }
            XCTAssertEqual(x, delta[o * f.inFeatures + j], accuracy: 1e-5)
        } }
        // Lower rank keeps less energy, monotonically.
        let (_, r2) = try DeltaTools.extractLoRA(fineTuned: ft, base: base, rank: 2)
        let (_, r4) = try DeltaTools.extractLoRA(fineTuned: ft, base: base, rank: 4)
        for (a, b) in zip(r2, r4) where a.total > 64 { XCTAssertLessThanOrEqual(a.energyKept, b.energyKept + 1e-9, a.name) }
    }

    /// Magnitude keeps exactly the top k per tensor; breadcrumbs drops the top γ first.
    func testSparsifyKeepsTheRightEntries() throws {
        let ft = try WeightSource(path: "\(fixtures)/expert1"), base = try WeightSource(path: "\(fixtures)/base")
        let (mag, reports) = try DeltaTools.sparsify(fineTuned: ft, base: base, method: .magnitude, density: 0.1)
        let (crumbs, _) = try DeltaTools.sparsify(fineTuned: ft, base: base, method: .breadcrumbs, density: 0.1, gamma: 0.05)
        for ((name, t), r) in zip(mag, reports) where r.total >= 100 {
            let delta = zip(try ft.tensor(name).floats(), try base.tensor(name).floats()).map { abs($0 - $1) }
            let kept = try t.floats()
            XCTAssertEqual(kept.filter { $0 != 0 }.count, Int(0.1 * Double(r.total)), name)
            let threshold = delta.sorted(by: >)[Int(0.1 * Double(r.total)) - 1]
            for (k, d) in zip(kept, delta) where d > threshold { XCTAssertNotEqual(k, 0, name) }
            let c = try crumbs.first { $0.0 == name }!.1.floats()
            let largest = delta.indices.max { delta[$0] < delta[$1] }!
            XCTAssertEqual(c[largest], 0, "breadcrumbs drops the largest entry of \(name)")
        }
    }
}
