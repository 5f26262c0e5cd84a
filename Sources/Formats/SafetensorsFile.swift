import Tensors

/// One tensor's entry in a safetensors header.
public struct TensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: DType
    public let shape: Shape
    /// Byte range inside the data buffer (after the header).
    public let dataRange: Range<Int>
}

/// A validated, memory-mapped safetensors file.
///
/// Validation follows the reference implementation (huggingface/safetensors `tensor.rs`): the
/// header length is capped at 100 MB and must fit the file; the header is a JSON object (no
/// duplicate keys); every dtype is known; shape × dtype size is computed with overflow checks
/// and must equal the entry's byte span; sorted by offset the entries tile the data buffer
/// exactly, from 0 to its end. Tensors returned are views into the mapping: nothing is copied.
public final class SafetensorsFile: @unchecked Sendable {
    public static let maxHeaderSize = 100_000_000

    public let path: String
    public let mapping: MappedFile
    /// Entries in header (file) order.
    public let tensors: [TensorInfo]
    public let metadata: [String: String]?
    /// Offset of the data buffer in the file.
    public let dataStart: Int
    private let index: [String: Int]

    public init(path: String) throws {
        self.path = path
        do { mapping = try MappedFile(path: path) } catch let e as TensorError {
            throw SafetensorsError.io(path: path, reason: e.description)
        }
        let parsed = try Self.parseHeader(mapping.bytes, path: path)
        tensors = parsed.tensors
        metadata = parsed.metadata
        dataStart = parsed.dataStart
        var idx = [String: Int](minimumCapacity: tensors.count)
        for (i, t) in tensors.enumerated() { idx[t.name] = i }
        index = idx
    }

    public var names: [String] { tensors.map(\.name) }

    public func info(_ name: String) -> TensorInfo? { index[name].map { tensors[$0] } }

    /// The tensor `name`, as a zero-copy view of the mapped file.
    public func tensor(_ name: String) throws -> Tensor {
        guard let info = info(name) else { throw SafetensorsError.tensorNotFound(path: path, tensor: name) }
        let range = (dataStart + info.dataRange.lowerBound)..<(dataStart + info.dataRange.upperBound)
        return try Tensor(dtype: info.dtype, shape: info.shape, buffer: TensorBuffer(mapping: mapping, range: range))
    }

    /// Validates `bytes` as a safetensors file and returns its entries and metadata.
    public static func parseHeader(_ bytes: UnsafeRawBufferPointer, path: String)
        throws -> (tensors: [TensorInfo], metadata: [String: String]?, dataStart: Int)
    {
        guard bytes.count >= 8 else { throw SafetensorsError.fileTooSmall(path: path, size: bytes.count) }
        let declared = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard declared <= UInt64(maxHeaderSize) else {
            throw SafetensorsError.headerTooLarge(path: path, declared: declared, cap: maxHeaderSize)
        }
        let n = Int(declared)
        guard n <= bytes.count - 8 else {
            throw SafetensorsError.headerExceedsFile(path: path, declared: declared, available: bytes.count - 8)
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + n)])
        guard n > 0, headerBytes[0] == UInt8(ascii: "{") else { throw SafetensorsError.headerNotObject(path: path) }
        let json: JSONValue
        do { json = try JSONValue.parse(headerBytes, maxDepth: 8) } catch let e as JSONParseError {
            throw SafetensorsError.headerNotJSON(path: path, reason: e.description)
        }
        guard case .object(let members) = json else { throw SafetensorsError.headerNotObject(path: path) }

        var metadata: [String: String]?
        var infos: [TensorInfo] = []
        infos.reserveCapacity(members.count)
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let kv) = value else { throw SafetensorsError.invalidMetadata(path: path, reason: "must be an object of strings") }
                var m = [String: String]()
                for (k, v) in kv {
                    guard case .string(let s) = v else { throw SafetensorsError.invalidMetadata(path: path, reason: "value of \"\(k)\" is not a string") }
                    m[k] = s
                }
                metadata = m
                continue
            }
            infos.append(try parseEntry(name: name, value: value, path: path))
        }

        // Entries sorted by offset must tile [0, buffer size) exactly.
        let bufferSize = bytes.count - 8 - n
        let order = infos.indices.sorted {
            (infos[$0].dataRange.lowerBound, infos[$0].dataRange.upperBound) < (infos[$1].dataRange.lowerBound, infos[$1].dataRange.upperBound)
        }
        var cursor = 0
        var previous: String?
        for i in order {
            let r = infos[i].dataRange
            if r.lowerBound < cursor {
                throw SafetensorsError.overlappingOffsets(path: path, tensor: infos[i].name, other: previous ?? "", at: r.lowerBound)
            }
            if r.lowerBound > cursor {
                throw SafetensorsError.gapInOffsets(path: path, tensor: infos[i].name, expectedBegin: cursor, begin: r.lowerBound)
            }
            cursor = r.upperBound
            previous = infos[i].name
        }
        guard cursor == bufferSize else { throw SafetensorsError.bufferSizeMismatch(path: path, covered: cursor, actual: bufferSize) }
        return (infos, metadata, 8 + n)
    }

    static func parseEntry(name: String, value: JSONValue, path: String) throws -> TensorInfo {
        func bad(_ r: String) -> SafetensorsError { .invalidEntry(path: path, tensor: name, reason: r) }
        guard case .object(let fields) = value else { throw bad("entry must be an object") }
        var dtypeName: String?, dims: [Int]?, offsets: [Int]?
        for (k, v) in fields {
            switch k {
            case "dtype":
                guard case .string(let s) = v else { throw bad("dtype must be a string") }
                dtypeName = s
            case "shape":
                guard case .array(let a) = v else { throw bad("shape must be an array") }
                dims = try a.map {
                    guard case .integer(let d) = $0, d >= 0 else { throw bad("shape entries must be non-negative integers") }
                    return d
                }
            case "data_offsets":
                guard case .array(let a) = v, a.count == 2 else { throw bad("data_offsets must be [begin, end]") }
                offsets = try a.map {
                    guard case .integer(let d) = $0, d >= 0 else { throw bad("data_offsets must be non-negative integers") }
                    return d
                }
            default:
                throw bad("unknown field \"\(k)\"")
            }
        }
        guard let dtypeName else { throw bad("missing dtype") }
        guard let dims else { throw bad("missing shape") }
        guard let offsets else { throw bad("missing data_offsets") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw SafetensorsError.unknownDType(path: path, tensor: name, dtype: dtypeName)
        }
        let shape: Shape
        let need: Int
        do {
            shape = try Shape(dims)
            need = try shape.byteCount(of: dtype)
        } catch {
            throw SafetensorsError.shapeOverflow(path: path, tensor: name, shape: dims)
        }
        guard offsets[1] >= offsets[0] else {
            throw SafetensorsError.offsetsOutOfOrder(path: path, tensor: name, begin: offsets[0], end: offsets[1])
        }
        guard offsets[1] - offsets[0] == need else {
            throw SafetensorsError.sizeMismatch(path: path, tensor: name, expected: need, actual: offsets[1] - offsets[0])
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataRange: offsets[0]..<offsets[1])
    }
}
