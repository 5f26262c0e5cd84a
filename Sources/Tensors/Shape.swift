/// A tensor shape whose element count is known not to overflow.
///
/// Construction checks every dimension (≥ 0) and the product with overflow detection, so a
/// shape read from an untrusted header can be used in arithmetic without further checks.
public struct Shape: Hashable, Sendable, CustomStringConvertible {
    public let dims: [Int]
    public let elementCount: Int

    public init(_ dims: [Int]) throws {
        var count = 1
        for d in dims {
            guard d >= 0 else { throw TensorError.negativeDimension(dims: dims) }
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw TensorError.elementCountOverflow(dims: dims) }
            count = p
        }
        self.dims = dims
        self.elementCount = count
    }

    /// A shape from literal dimensions known to be valid (programmer error otherwise).
    public init(checked dims: Int...) {
        // Literal dimensions written in code; a negative or overflowing literal is a programmer error.
        try! self.init(dims)
    }

    public var rank: Int { dims.count }

    /// The byte size of this shape for `dtype`, checked against overflow.
    public func byteCount(of dtype: DType) throws -> Int {
        let (b, overflow) = elementCount.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw TensorError.byteSizeOverflow(dims: dims, dtype: dtype) }
        return b
    }

    public var description: String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }
}
