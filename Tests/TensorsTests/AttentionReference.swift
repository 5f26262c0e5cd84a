import XCTest
import Foundation
@testable import Tensors

/// One attention head's inputs for the kernel tests: Q, K, V rows of width `d` at offset `off`
/// inside rows of `stride` floats, and the double-precision reference softmax(QKᵀ·scale + B)·V.
struct AttentionCase {
    let q: [Float], k: [Float], v: [Float]
    let L: Int, d: Int, stride: Int, off: Int
    let scale: Float

    /// softmax(QKᵀ·scale + bias(i, j))·V in doubles, L×d.
    func reference(bias: (Int, Int) -> Double = { _, _ in 0 }) -> [Double] {
        var want = [Double](repeating: 0, count: L * d)
        for i in 0..<L {
            let s = (0..<L).map { j in
                (0..<d).reduce(0.0) { $0 + Double(q[i * stride + off + $1]) * Double(k[j * stride + off + $1]) } * Double(scale) + bias(i, j)
            }
            let m = s.max() ?? 0
            let e = s.map { Foundation.exp($0 - m) }
            let sum = e.reduce(0, +)
            for c in 0..<d { want[i * d + c] = (0..<L).reduce(0.0) { $0 + e[$1] * Double(v[$1 * stride + off + c]) } / sum }
        }
        return want
    }

    /// Runs `kernel` (given q, k, v and the context, each at its row offset) into a NaN-filled
    /// context and returns the largest |context − want|; asserts that the kernel wrote nothing
    /// beside its d columns.
    func maxError(_ want: [Double], _ label: String,
                  kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Double {
        var ctx = [Float](repeating: .nan, count: L * stride)
        q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
            ctx.withUnsafeMutableBufferPointer { cp in
                kernel(qp.baseAddress! + off, kp.baseAddress! + off, vp.baseAddress! + off, cp.baseAddress! + off)
            }
        } } }
        var w: Double = 0
        for i in 0..<L {
            for c in 0..<d { w = max(w, abs(want[i * d + c] - Double(ctx[i * stride + off + c]))) }
            XCTAssertTrue(ctx[i * stride + off - 1].isNaN && ctx[i * stride + off + d].isNaN, label)
        }
        return w
    }
}
