import Foundation
import Tensors

/// Deterministic safetensors writer.
///
/// The byte layout equals the reference implementation's (`safetensors.serialize`): tensors
/// ordered by dtype alignment (largest first), then by name; the header is compact JSON with
/// `__metadata__` first (keys sorted), padded with spaces to a multiple of 8 bytes; data follows
/// in the same order. Equal inputs give equal bytes.
public enum SafetensorsWriter {
    /// What the header says of one tensor.
    public struct Entry: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: Shape
        public init(name: String, dtype: DType, shape: Shape) { self.name = name; self.dtype = dtype; self.shape = shape }
        public var byteCount: Int { shape.elementCount * dtype.byteSize }
    }

    /// Tensors in the order they are written.
    public static func order(_ tensors: [(String, Tensor)]) -> [(String, Tensor)] {
        tensors.sorted { l, r in precedes((l.0, l.1.dtype), (r.0, r.1.dtype)) }
    }

    /// Entries in the order they are written.
    public static func order(_ entries: [Entry]) -> [Entry] {
        entries.sorted { l, r in precedes((l.name, l.dtype), (r.name, r.dtype)) }
    }

    static func precedes(_ l: (String, DType), _ r: (String, DType)) -> Bool {
        let (lr, rr) = (rank(l.1), rank(r.1))
        return lr != rr ? lr > rr : l.0 < r.0
    }

    /// The position of each dtype in the reference implementation's `Dtype` enum, which
    /// orders ties within one byte size.
    static func rank(_ d: DType) -> Int {
        switch d {
        case .bool: return 0
        case .u8: return 1
        case .i8: return 2
        case .i16: return 3
        case .f16: return 5
        case .bf16: return 6
        case .i32: return 7
        case .f32: return 9
        case .f64: return 10
        case .i64: return 11
        }
    }

    /// The 8-byte length prefix plus the padded JSON header for `ordered` tensors.
    public static func header(_ ordered: [(String, Tensor)], metadata: [String: String]?) -> [UInt8] {
        header(ordered.map { Entry(name: $0.0, dtype: $0.1.dtype, shape: $0.1.shape) }, metadata: metadata)
    }

    /// The 8-byte length prefix plus the padded JSON header for `ordered` entries.
    public static func header(_ ordered: [Entry], metadata: [String: String]?) -> [UInt8] {
        var members: [(String, JSONValue)] = []
        if let metadata {
            members.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        var offset = 0
        for e in ordered {
            members.append((e.name, .object([
                ("dtype", .string(e.dtype.rawValue)),
                ("shape", .array(e.shape.dims.map { .integer($0) })),
                ("data_offsets", .array([.integer(offset), .integer(offset + e.byteCount)])),
            ])))
            offset += e.byteCount
        }
        var json = Array(JSONValue.object(members).serialized().utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        return out
    }

    /// Throws `SafetensorsError.duplicateTensor` if two of `tensors` share a name.
    public static func checkUnique(_ tensors: [(String, Tensor)], path: String) throws {
        var seen = Set<String>()
        for (name, _) in tensors where !seen.insert(name).inserted {
            throw SafetensorsError.duplicateTensor(path: path, tensor: name)
        }
    }

    /// The whole file as bytes (for small files and tests). Names must be unique (see
    /// `checkUnique`); a duplicate would make a file readers reject.
    public static func serialize(_ tensors: [(String, Tensor)], metadata: [String: String]? = nil) -> [UInt8] {
        let ordered = order(tensors)
        var out = header(ordered, metadata: metadata)
        for (_, t) in ordered { out.append(contentsOf: t.rawBytes) }
        return out
    }

    /// Writes `tensors` to `path` atomically, streaming each tensor's bytes (no whole-file copy).
    /// Throws `SafetensorsError.duplicateTensor` naming the first name given twice.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String]? = nil, to path: String) throws {
        try checkUnique(tensors, path: path)
        let ordered = order(tensors)
        let file = try AtomicFile(path: path)
        try file.write(header(ordered, metadata: metadata))
        for (_, t) in ordered { try file.write(t.rawBytes) }
        try file.commit()
    }

    /// A safetensors file whose tensors are written where they belong, in any order and from
    /// any thread (positional writes): the header first, then each tensor's bytes, whole or in
    /// pieces, at its offset — producers (merges) write from small staging blocks, so no page of
    /// the file is faulted in and zero-filled first as a mapping would. Atomic like `write`:
    /// nothing appears at `path` before `commit`.
    ///
    /// `@unchecked Sendable`: after `init` only `write(_:at:)` (disjoint ranges, pwrite) and the
    /// error slot (a lock) are used from several threads; `commit` is called once, after them.
    public final class Placed: @unchecked Sendable {
        public let path: String
        private let file: AtomicFile
        private let headerSize: Int
        private var offsets: [String: Range<Int>] = [:]
        private let lock = NSLock()
        private var failure: Error?
        private let writeback = DispatchQueue(label: "alloy.safetensors.writeback")

        public init(_ entries: [Entry], metadata: [String: String]? = nil, path: String) throws {
            var seen = Set<String>()
            for e in entries where !seen.insert(e.name).inserted { throw SafetensorsError.duplicateTensor(path: path, tensor: e.name) }
            self.path = path
            let ordered = order(entries)
            let head = header(ordered, metadata: metadata)
            var offset = 0
            for e in ordered { offsets[e.name] = offset..<(offset + e.byteCount); offset += e.byteCount }
            let file = try AtomicFile(path: path)
            try head.withUnsafeBytes { try file.write($0, at: 0) }
            self.file = file
            headerSize = head.count
        }

        /// The byte range of tensor `name` in the data region; nil for a name that is not an entry.
        public func range(_ name: String) -> Range<Int>? { offsets[name] }

        /// Writes `bytes` at `offset` of the data region. A failure is kept and thrown by
        /// `commit` (producers write from worker threads that cannot throw).
        public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
            do { try file.write(bytes, at: headerSize + offset) } catch {
                lock.lock(); defer { lock.unlock() }
                if failure == nil { failure = error }
            }
        }

        /// Says tensor `name`'s bytes are all written: their writeback to disk starts now, from a
        /// background queue (submitting the writes takes the file system's time, which the
        /// producer should not wait for), overlapping whatever the producer does next
        /// (`AtomicFile.startWriteback`).
        public func finished(_ name: String) {
            guard let r = offsets[name] else { return }
            let file = UnsafeSendableBox(file), range = (headerSize + r.lowerBound)..<(headerSize + r.upperBound)
            writeback.async { file.value.startWriteback(range) }  // a positional call on the descriptor
        }

        /// Throws the first failed write, else waits for the writebacks started, fsyncs and
        /// renames the file into place.
        public func commit() throws {
            writeback.sync {}
            if let failure = lock.withLock({ failure }) { throw failure }
            try file.commit()
        }
    }
}
