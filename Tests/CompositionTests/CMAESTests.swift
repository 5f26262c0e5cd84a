import XCTest
@testable import Composition

final class CMAESTests: XCTestCase {
    /// Seeded: reaches the minimum of a shifted, ill-conditioned quadratic and of Rosenbrock.
    func testMinimisesStandardFunctions() {
        let target = [0.3, -1.2, 0.8, 0.05, -0.4]
        let ellipsoid = CMAES.minimize(start: [Double](repeating: 0, count: 5), sigma: 0.5, budget: 3000, seed: 1) { x in
            x.indices.reduce(0) { $0 + pow(10, Double($1)) * (x[$1] - target[$1]) * (x[$1] - target[$1]) }
        }
        XCTAssertLessThan(ellipsoid.value, 1e-8)
        for (a, b) in zip(ellipsoid.x, target) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        let rosen = CMAES.minimize(start: [-1, 1], sigma: 0.5, budget: 4000, seed: 2) { x in
            100 * pow(x[1] - x[0] * x[0], 2) + pow(1 - x[0], 2)
        }
        XCTAssertEqual(rosen.x[0], 1, accuracy: 1e-3)
        XCTAssertEqual(rosen.x[1], 1, accuracy: 2e-3)
        let again = CMAES.minimize(start: [-1, 1], sigma: 0.5, budget: 4000, seed: 2) { x in 100 * pow(x[1] - x[0] * x[0], 2) + pow(1 - x[0], 2) }
        XCTAssertEqual(again.x, rosen.x, "same seed, same search")
    }

    func testEigenDecompositionReconstructs() {
        let m: [[Double]] = [[4, 1, 0.5], [1, 3, 0.2], [0.5, 0.2, 2]]
        let (d, v) = CMAES.eigen(m)
        for i in 0..<3 { for j in 0..<3 {
            let r = (0..<3).reduce(0.0) { $0 + v[i][$1] * d[$1] * v[j][$1] }
            XCTAssertEqual(r, m[i][j], accuracy: 1e-10)
        } }
    }
}
