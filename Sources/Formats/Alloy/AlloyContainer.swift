import Tensors
import Crypto

/// Constants and shared definitions of the `.alloy` container (docs/FORMAT.md).
public enum AlloyContainer {
    public static let magic: [UInt8] = [0x89, 0x41, 0x4C, 0x4F, 0x59, 0x0D, 0x0A, 0x1A]
    public static let version: UInt32 = 1
    public static let preambleSize = 32
    public static let alignment = 64
    public static let maxHeaderSize = 64 << 20
    public static let maxTensors = 1_000_000
    public static let maxNameBytes = 1024
    public static let maxRank = 8
    public static let maxTensorBytes = 1 << 40
    /// Most elements in one chunk a reader accepts (the writer uses at most 2²⁰, or one row of
    /// an int8-row tensor, which `AlloyCodec.applies` keeps under this). Caps the scratch
    /// memory one chunk's decode allocates.
    public static let maxChunkElements = 1 << 22
    /// A tensor may decode to more bytes than this only if its chunks store at least
    /// 1/`maxExpansion` of its size: a small file cannot claim a huge tensor (FORMAT.md,
    /// "What a reader must reject").
    public static let freeDecodedBytes = 1 << 28
    public static let maxExpansion = 1 << 12

    /// The most bytes a tensor whose chunks store `stored` bytes may decode to.
    public static func decodedCap(stored: Int) -> Int {
        let (scaled, overflow) = stored.multipliedReportingOverflow(by: maxExpansion)
        return min(maxTensorBytes, max(freeDecodedBytes, overflow ? Int.max : scaled))
    }

    static let dtypeCodes: [DType] = [.f32, .f16, .bf16, .f64, .i64, .i32, .i16, .i8, .u8, .bool]
    /// The dtype's code: its index in `dtypeCodes` (an exhaustive switch, so a new DType case
    /// fails to compile here rather than trapping at run time).
    static func code(of d: DType) -> UInt8 {
        switch d {
        case .f32: return 0
        case .f16: return 1
        case .bf16: return 2
        case .f64: return 3
        case .i64: return 4
        case .i32: return 5
        case .i16: return 6
        case .i8: return 7
        case .u8: return 8
        case .bool: return 9
        }
    }

    static func align(_ x: Int) -> Int { (x + alignment - 1) / alignment * alignment }

    /// SHA-256 of the canonical content (FORMAT.md): codec- and chunking-independent.
    public struct ContentHasher {
        var sha = SHA256()
        public init() {}
        public mutating func add(name: String, dtype: DType, shape: Shape, bytes: UnsafeRawBufferPointer) {
            sha.update(data: Array(name.utf8) + [0] + Array(dtype.rawValue.utf8) + [0]
                       + Array(shape.dims.map(String.init).joined(separator: ",").utf8) + [0])
            withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { sha.update(bufferPointer: $0) }
            sha.update(bufferPointer: bytes)
        }
        public func finalize() -> String { sha.finalize().map { String(format: "%02x", $0) }.joined() }
    }
}

/// One tensor's entry in a `.alloy` index.
public struct AlloyTensorEntry: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: Shape
    public let codec: AlloyCodec
    public let chunkElements: Int
    public let chunks: [Chunk]

    public struct Chunk: Sendable {
        public let offset: Int
        public let size: Int
        public let crc: UInt32
    }

    public var rawBytes: Int { shape.elementCount * dtype.byteSize }
    public var storedBytes: Int { chunks.reduce(0) { $0 + $1.size } }

    func chunkRange(_ c: Int) -> Range<Int> {
        let lo = c * chunkElements
        return lo..<min(shape.elementCount, lo + chunkElements)
    }
}

import Foundation
