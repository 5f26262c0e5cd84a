import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// A parallel-for over the machine's cores.
public enum Parallel {
    /// Worker count: `ALLOY_THREADS` if set, else the active processor count.
    public static let threadCount: Int = {
        if let s = getenv("ALLOY_THREADS"), let n = Int(String(cString: s)), n > 0 { return n }
        return max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }()

    /// Splits `0..<count` into contiguous chunks (at least `minChunk` long) and runs `body` on
    /// each, concurrently. Runs inline when one chunk suffices.
    public static func forChunks(count: Int, minChunk: Int = 4096, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threadCount, max(1, count / max(minChunk, 1)))
        if chunks == 1 { body(0..<count); return }
        forEach(count: chunks) { c in body((count * c / chunks)..<(count * (c + 1) / chunks)) }
    }

    /// The threads beside the caller's that run `forEach`'s tasks (`SpinPool`); nil on one core.
    static let pool: SpinPool? = threadCount > 1 ? SpinPool(workers: threadCount - 1) : nil

    /// Runs `body(i)` for each `i` in `0..<count` concurrently (one task per index), on the
    /// spinning pool (`SpinPool`), or on `concurrentPerform` while the pool runs another loop.
    public static func forEach(count: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        if count == 1 || threadCount == 1 { for i in 0..<count { body(i) }; return }
        if pool?.run(count: count, body) == true { return }
        withoutActuallyEscaping(body) { body in
            let box = UnsafeSendableBox(body)
            DispatchQueue.concurrentPerform(iterations: count) { box.value($0) }
        }
    }
}

/// Carries a non-Sendable value into `concurrentPerform`; the caller guarantees data-race freedom.
public struct UnsafeSendableBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

// The start of a buffer that is non-empty by construction. Alloy's kernels size their scratch
// and output buffers from counts they have checked to be positive (an empty tensor, batch or
// merge returns before any buffer is made), so a nil base address here is a programmer error,
// never input: this is the one place that invariant is asserted.
extension UnsafeBufferPointer {
    @inlinable public var nonEmptyBase: UnsafePointer<Element> { baseAddress! }
}
extension UnsafeMutableBufferPointer {
    @inlinable public var nonEmptyBase: UnsafeMutablePointer<Element> { baseAddress! }
}
extension UnsafeRawBufferPointer {
    @inlinable public var nonEmptyBase: UnsafeRawPointer { baseAddress! }
}
