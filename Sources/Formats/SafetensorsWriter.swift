import Tensors

/// Deterministic safetensors writer.
///
/// The byte layout equals the reference implementation's (`safetensors.serialize`): tensors
/// ordered by dtype alignment (largest first), then by name; the header is compact JSON with
/// `__metadata__` first (keys sorted), padded with spaces to a multiple of 8 bytes; data follows
/// in the same order. Equal inputs give equal bytes.
public enum SafetensorsWriter {
    /// Tensors in the order they are written.
    public static func order(_ tensors: [(String, Tensor)]) -> [(String, Tensor)] {
        tensors.sorted { l, r in
            let (lr, rr) = (rank(l.1.dtype), rank(r.1.dtype))
            return lr != rr ? lr > rr : l.0 < r.0
        }
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
        var members: [(String, JSONValue)] = []
        if let metadata {
            members.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        var offset = 0
        for (name, t) in ordered {
            members.append((name, .object([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.dims.map { .integer($0) })),
                ("data_offsets", .array([.integer(offset), .integer(offset + t.byteCount)])),
            ])))
            offset += t.byteCount
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
}
