import XCTest
import Foundation
@testable import Tensors

final class ShapeTests: XCTestCase {
    func testElementCountAndBytes() throws {
        let s = try Shape([2, 3, 4])
        XCTAssertEqual(s.elementCount, 24)
        XCTAssertEqual(try s.byteCount(of: .bf16), 48)
        XCTAssertEqual(try Shape([]).elementCount, 1)
        XCTAssertEqual(try Shape([5, 0]).elementCount, 0)
    }

    func testOverflowAndNegativeAreRejected() {
        XCTAssertThrowsError(try Shape([1 << 32, 1 << 32])) { XCTAssertEqual($0 as? TensorError, .elementCountOverflow(dims: [1 << 32, 1 << 32])) }
        XCTAssertThrowsError(try Shape([-1, 2])) { XCTAssertEqual($0 as? TensorError, .negativeDimension(dims: [-1, 2])) }
        XCTAssertThrowsError(try Shape([1 << 62]).byteCount(of: .f32))
    }
}

final class KernelTests: XCTestCase {
    /// Deterministic values from a seeded linear congruential generator.
    func values(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000 - 1000) / 250
        }
    }

    func testElementwiseMatchScalarLoops() {
        for n in [0, 1, 7, 8, 9, 100_003, 300_001] {
            let x = values(n, seed: 1), y0 = values(n, seed: 2)
            var y = y0
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                if n > 0 { Kernels.axpy(0.5, xp.baseAddress!, yp.baseAddress!, count: n) }
            } }
            for i in 0..<n { XCTAssertEqual(y[i], y0[i] + 0.5 * x[i], accuracy: 1e-5) }
            var d = [Float](repeating: 0, count: n)
            if n > 0 {
                Kernels.subtract(x, y0, into: &d, count: n)
                for i in 0..<n { XCTAssertEqual(d[i], x[i] - y0[i]) }
                Kernels.scale(&d, by: -2, count: n)
                for i in 0..<n { XCTAssertEqual(d[i], -2 * (x[i] - y0[i])) }
                let dot = Kernels.dot(x, y0, count: n)
                let ref = zip(x, y0).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                XCTAssertEqual(Double(dot), ref, accuracy: 1e-3 * max(1, abs(ref)))
            }
        }
    }

    func testGEMMMatchesNaiveProductInAllTransposes() {
        let (m, n, k) = (13, 17, 29)
        let a = values(m * k, seed: 3), b = values(k * n, seed: 4)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            // Lay out A (m×k) and B (k×n) transposed when asked.
            let aa = ta ? (0..<(k * m)).map { a[($0 % m) * k + $0 / m] } : a
            let bb = tb ? (0..<(n * k)).map { b[($0 % k) * n + $0 / k] } : b
            var c = [Float](repeating: 1, count: m * n)
            GEMM.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 2, a: aa, lda: ta ? m : k, b: bb, ldb: tb ? k : n, beta: 0.5, c: &c, ldc: n)
            for i in 0..<m { for j in 0..<n {
                var s: Double = 0
                for p in 0..<k { s += Double(a[i * k + p]) * Double(b[p * n + j]) }
                XCTAssertEqual(Double(c[i * n + j]), 2 * s + 0.5, accuracy: 1e-3, "(\(ta),\(tb)) at \(i),\(j)")
            } }
        }
    }

    func testParallelChunksCoverEachIndexOnce() {
        let n = 1_000_003
        var hits = [UInt8](repeating: 0, count: n)
        hits.withUnsafeMutableBufferPointer { h in
            let p = UnsafeSendableBox(h.baseAddress!)
            Parallel.forChunks(count: n, minChunk: 1000) { r in for i in r { p.value[i] += 1 } }
        }
        XCTAssertTrue(hits.allSatisfy { $0 == 1 })
    }

    /// The spinning pool under fire: thousands of short loops back to back, loops started from
    /// several threads at once (one gets the pool, the others `concurrentPerform`) and loops
    /// nested in tasks: every index of every loop runs exactly once.
    func testParallelLoopsFromManyThreadsRunEachIndexOnce() {
        let callers = 4, loops = 5000, width = 7
        var hits = [Int32](repeating: 0, count: callers * loops * width * 3)
        hits.withUnsafeMutableBufferPointer { h in
            let p = UnsafeSendableBox(h.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: callers) { c in
                for l in 0..<loops {
                    let base = ((c * loops) + l) * width * 3
                    Parallel.forEach(count: width) { i in
                        p.value[base + i] += 1
                        if i == 0 && l % 100 == 0 {
                            Parallel.forEach(count: 2 * width) { j in p.value[base + width + j] += 1 }
                        }
                    }
                    if l % 100 != 0 { for j in 0..<(2 * width) { p.value[base + width + j] += 1 } }
                }
            }
        }
        XCTAssertTrue(hits.allSatisfy { $0 == 1 }, "\(hits.enumerated().filter { $0.1 != 1 }.prefix(5))")
    }

    /// A loop whose last task outlasts the caller's polling (the caller then sleeps until the
    /// worker finishes it) still runs every index once and returns.
    func testLoopsWithALongTaskWakeTheSleepingCaller() {
        for _ in 0..<50 {
            // The caller claims task 0 first; the worker, polling since the previous loop, task 1.
            var hits = [Int32](repeating: 0, count: 2)
            hits.withUnsafeMutableBufferPointer { h in
                let p = UnsafeSendableBox(h.baseAddress!)
                Parallel.forEach(count: 2) { i in
                    if i == 1 { usleep(2_000) }
                    p.value[i] += 1
                }
            }
            XCTAssertEqual(hits, [1, 1])
        }
    }

    /// Whole strips of a packed weight's columns, computed apart, equal the whole product
    /// to the bit, in every precision and on every path this CPU has.
    func testColumnRangesOfAProductEqualTheWholeProduct() throws {
        var rng = SplitMix(seed: 7)
        let (m, n, k) = (13, 80, 37)
        let w = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let x = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let bias = (0..<n).map { _ in Float.random(in: 0...1, using: &rng) }
        for precision in Precision.allCases {
            let packed = w.withUnsafeBufferPointer { PackedLinear($0.baseAddress!, n: n, k: k, precision: precision) }
            var whole = [Float](repeating: 0, count: m * n), pieces = whole
            x.withUnsafeBufferPointer { xb in bias.withUnsafeBufferPointer { bb in
                packed.linear(x: xb.baseAddress!, ldx: k, bias: bb.baseAddress!, y: &whole, ldy: n, m: m)
                for c in [0..<16, 16..<48, 48..<64, 64..<80] {
                    pieces.withUnsafeMutableBufferPointer { pb in
                        packed.linear(x: xb.baseAddress!, ldx: k, bias: bb.baseAddress!, y: pb.baseAddress!, ldy: n, m: m, columns: c)
                    }
                }
            } }
            XCTAssertEqual(whole, pieces, "\(precision)")
        }
    }
}

final class TensorTests: XCTestCase {
    func testOwnedTensorAndConversionRoundTrip() throws {
        let t = try Tensor([1, -2.5, 3e-3, 65504], shape: Shape([2, 2]))
        XCTAssertFalse(t.isMapped)
        XCTAssertEqual(try t.converted(to: .f16).floats(), [1, -2.5, Float(Float16(3e-3)), 65504])
        XCTAssertEqual(try t.converted(to: .bf16).converted(to: .f32).floats()[1], -2.5)
        XCTAssertThrowsError(try t.reshaped(Shape([3])))
        XCTAssertThrowsError(try Tensor([1, 2], shape: Shape([3])))
    }

    func testMappedFileIsNotCopied() throws {
        // 64 MiB file; mapping it and taking a tensor view must not grow resident memory by that much.
        let path = NSTemporaryDirectory() + "/alloy-map-\(getpid()).bin"
        let size = 64 << 20
        FileManager.default.createFile(atPath: path, contents: Data(count: size))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let before = residentBytes()
        let file = try MappedFile(path: path)
        let t = try Tensor(dtype: .f32, shape: Shape([size / 4]), buffer: TensorBuffer(mapping: file, range: 0..<size))
        XCTAssertTrue(t.isMapped)
        XCTAssertEqual(t.byteCount, size)
        XCTAssertLessThan(residentBytes() - before, 8 << 20, "mapping a file must not read it into memory")
    }

    func residentBytes() -> Int {
        let s = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "0 0"
        return (Int(s.split(separator: " ")[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
