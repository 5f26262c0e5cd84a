#if canImport(Glibc)
import Glibc
#endif

/// Memory behind a tensor: either owned (64-byte aligned, writable) or a region of a
/// `MappedFile` (read-only, shared, never copied).
public final class TensorBuffer: @unchecked Sendable {
    public let base: UnsafeRawPointer?
    public let byteCount: Int
    /// Non-nil when the buffer is a view into a mapped file.
    public let mapping: MappedFile?
    private let owned: UnsafeMutableRawPointer?

    /// A zero-filled, owned buffer.
    public init(zeroedByteCount: Int) {
        // Invariant: sizes come from `Shape.byteCount`, which is checked and never negative.
        precondition(zeroedByteCount >= 0)
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(zeroedByteCount, 1), alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(zeroedByteCount, 1))
        owned = p
        base = UnsafeRawPointer(p)
        byteCount = zeroedByteCount
        mapping = nil
    }

    /// An owned buffer whose bytes the caller will overwrite entirely (not zero-filled).
    /// Buffers of 4 MiB or more are 2 MiB-aligned and advised as huge pages, so filling them
    /// takes a few page faults instead of one per 4 KiB page.
    public init(uninitializedByteCount n: Int) {
        // Invariant: sizes come from `Shape.byteCount`, which is checked and never negative.
        precondition(n >= 0)
        let huge = 2 << 20
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: n >= 2 * huge ? huge : 64)
        if n >= 2 * huge { _ = madvise(p, n / huge * huge, 14 /* MADV_HUGEPAGE */) }
        owned = p
        base = UnsafeRawPointer(p)
        byteCount = n
        mapping = nil
    }

    /// A view of `range` inside `file`. The caller has validated the range.
    public init(mapping file: MappedFile, range: Range<Int>) {
        // Invariant: readers validate every range against the file before making a view.
        precondition(range.lowerBound >= 0 && range.upperBound <= file.size)
        owned = nil
        mapping = file
        base = file.base.map { $0 + range.lowerBound }
        byteCount = range.count
    }

    /// Writable pointer; only owned buffers are writable.
    public var mutableBase: UnsafeMutableRawPointer {
        // API contract: only code that created an owned tensor writes to it; mapped inputs are read-only.
        guard let owned else { preconditionFailure("a mapped tensor is read-only; copy it first") }
        return owned
    }

    public var isOwned: Bool { owned != nil }

    deinit { owned?.deallocate() }
}
