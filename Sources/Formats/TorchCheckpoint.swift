import Tensors

/// A `torch.save` checkpoint (`pytorch_model.bin`), read without running Python: a zip archive
/// (`ZipArchive`) holding `<prefix>/data.pkl` and one stored entry per storage,
/// `<prefix>/data/<key>` (PyTorch's `torch/serialization.py`, `_save` / `_load`). The pickle runs
/// in `TorchUnpickler`, which only rebuilds tensors; the result must be a dict of tensors, or
/// hold one under "state_dict", "model" or "module" (as trainers' checkpoints do).
///
/// Tensors are views of the mapped file when contiguous (strides as `Tensor.is_contiguous`
/// defines them: size-1 dimensions ignored), including views at a storage offset and tensors
/// sharing one storage. A strided tensor (a transposed or sliced view saved as is) is copied into
/// a contiguous owned tensor when read, provided it addresses no more elements than its storage
/// holds (a permuted or sliced view; expanded or overlapping strides are refused). Every storage
/// offset, size and stride is checked against its storage entry with overflow-checked
/// arithmetic. Big-endian archives (`byteorder` = "big") are refused.
public final class TorchCheckpoint: @unchecked Sendable {
    /// `data.pkl` larger than this is refused (a state dict of 100 000 tensors is ~10 MB).
    public static let maxPickleSize = 64 << 20
    /// Top-level keys under which trainers nest the state dict.
    public static let nestedKeys = ["state_dict", "model", "module"]

    public let path: String
    public let mapping: MappedFile
    public let archive: ZipArchive
    /// Entries in state-dict order. `dataRange` is the tensor's byte range in the file when it is
    /// contiguous; a strided tensor's range starts at its storage and spans its contiguous size.
    public let tensors: [TensorInfo]
    /// torch.save records no string metadata.
    public var metadata: [String: String]? { nil }
    private let layouts: [Layout]
    private let index: [String: Int]

    struct Layout {
        /// The storage entry's bytes in the file.
        let storage: Range<Int>
        let offset: Int
        let size: [Int]
        let stride: [Int]
        let contiguous: Bool
    }

    public init(path: String) throws {
        self.path = path
        do { mapping = try MappedFile(path: path) } catch let e as TensorError {
            throw TorchCheckpointError.io(path: path, reason: e.description)
        }
        let bytes = mapping.bytes
        if bytes.count >= 2, bytes[0] == 0x80, (2...5).contains(bytes[1]) { throw TorchCheckpointError.legacyFormat(path: path) }
        guard bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4B, bytes[2] == 0x03, bytes[3] == 0x04 else {
            throw TorchCheckpointError.zip(path: path, reason: "does not start with a zip local header (\"PK\\3\\4\"); not a torch.save archive")
        }
        archive = try ZipArchive(bytes: bytes, path: path)

        // The archive's one top folder holds data.pkl (its name is the saved file's stem, or "archive").
        let pickles = archive.entries.filter { e in e.name.hasSuffix("/data.pkl") && e.name.utf8.filter { $0 == UInt8(ascii: "/") }.count == 1 }
        guard pickles.count == 1 else {
            throw TorchCheckpointError.zip(path: path, reason: pickles.isEmpty ? "no <folder>/data.pkl entry" : "\(pickles.count) data.pkl entries")
        }
        let prefix = String(pickles[0].name.dropLast("data.pkl".count))
        guard let pklRange = try archive.storedRange(pickles[0].name) else {
            throw TorchCheckpointError.zip(path: path, reason: "no data.pkl entry")
        }
        if let order = try archive.storedRange(prefix + "byteorder") {
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[order]), as: UTF8.self)
            guard s == "little" else { throw TorchCheckpointError.zip(path: path, reason: "byteorder is \"\(s.prefix(16))\"; only little-endian checkpoints are read") }
        }
        guard pklRange.count <= Self.maxPickleSize else {
            throw TorchCheckpointError.zip(path: path, reason: "data.pkl is \(pklRange.count) bytes, over the \(Self.maxPickleSize)-byte cap")
        }
        var vm = TorchUnpickler(path: path)
        let top = try vm.load(UnsafeRawBufferPointer(rebasing: bytes[pklRange]))
        let items = try Self.stateDict(top, vm, path: path)

        var infos: [TensorInfo] = [], layouts: [Layout] = []
        var index = [String: Int]()
        infos.reserveCapacity(items.count)
        for (name, t) in items {
            let (info, layout) = try Self.resolve(name, vm.tensors[t], vm.storages[vm.tensors[t].storage], prefix: prefix, archive: archive, path: path)
            index[name] = infos.count
            infos.append(info)
            layouts.append(layout)
        }
        tensors = infos
        self.layouts = layouts
        self.index = index
    }

    public var names: [String] { tensors.map(\.name) }

    public func info(_ name: String) -> TensorInfo? { index[name].map { tensors[$0] } }

    /// The tensor `name`: a zero-copy view of the mapped file when contiguous, else a copy.
    public func tensor(_ name: String) throws -> Tensor {
        guard let i = index[name] else { throw TorchCheckpointError.tensorNotFound(path: path, tensor: name) }
        let info = tensors[i], l = layouts[i]
        if l.contiguous {
            return try Tensor(dtype: info.dtype, shape: info.shape, buffer: TensorBuffer(mapping: mapping, range: info.dataRange))
        }
        // Strided: gather element by element. `resolve` checked every index against the storage.
        let out = try Tensor(zeros: info.dtype, shape: info.shape)
        let w = info.dtype.byteSize, rank = l.size.count
        guard let src = mapping.base.map({ $0 + l.storage.lowerBound }), info.shape.elementCount > 0 else { return out }
        let dst = out.buffer.mutableBase
        var idx = [Int](repeating: 0, count: rank)
        var at = l.offset
        for e in 0..<info.shape.elementCount {
            (dst + e * w).copyMemory(from: src + at * w, byteCount: w)
            var d = rank - 1
            while d >= 0 {
                idx[d] += 1
                at += l.stride[d]
                if idx[d] < l.size[d] { break }
                at -= l.stride[d] * l.size[d]
                idx[d] = 0
                d -= 1
            }
        }
        return out
    }

    /// The (name, tensor index) pairs of the state dict: the top dict when every value is a
    /// tensor, else the dict of tensors under one of `nestedKeys`.
    static func stateDict(_ top: PickleValue, _ vm: TorchUnpickler, path: String) throws -> [(String, Int)] {
        guard case .dict(let d) = top else { throw TorchCheckpointError.notAStateDict(path: path, reason: "data.pkl holds a \(top.kind), not a dict") }
        func tensors(_ d: Int) -> Result<[(String, Int)], TorchCheckpointError> {
            var out: [(String, Int)] = []
            for (k, v) in vm.dictItems(d) {
                guard case .string(let name) = k else { return .failure(.notAStateDict(path: path, reason: "a key is a \(k.kind), not a tensor name")) }
                guard case .tensor(let t) = v else { return .failure(.notAStateDict(path: path, reason: "entry \"\(name)\" is a \(v.kind), not a tensor")) }
                out.append((name, t))
            }
            return .success(out)
        }
        let flat = tensors(d)
        if case .success(let items) = flat { return items }
        for (k, v) in vm.dictItems(d) {
            guard case .string(let key) = k, nestedKeys.contains(key), case .dict(let inner) = v else { continue }
            return try tensors(inner).get()
        }
        if case .failure(let e) = flat, case .notAStateDict(_, let reason) = e {
            throw TorchCheckpointError.notAStateDict(path: path, reason: reason + ", and no \(nestedKeys.map { "\"\($0)\"" }.joined(separator: "/")) dict holds the tensors")
        }
        return try flat.get()
    }

    /// Checks one tensor against its storage entry and returns where its bytes lie.
    static func resolve(_ name: String, _ t: PickledTensor, _ s: PickledStorage, prefix: String, archive: ZipArchive, path: String) throws -> (TensorInfo, Layout) {
        func bad(_ r: String) -> TorchCheckpointError { .invalidTensor(path: path, tensor: name, reason: r) }
        guard let dtype = PickleGlobal.storageDTypes[s.type] else { throw TorchCheckpointError.unsupportedDType(path: path, tensor: name, storage: s.type) }
        guard !s.key.isEmpty, s.key.count <= 256, !s.key.contains("/"), !s.key.contains("\\"), s.key != "..", s.key != "." else {
            throw bad("storage key \"\(s.key.prefix(64))\" is not a plain entry name")
        }
        let entryName = prefix + "data/" + s.key
        guard let storage = try archive.storedRange(entryName) else { throw bad("its storage \"\(entryName)\" is not in the archive") }
        let w = dtype.byteSize
        let (need, o1) = s.numel.multipliedReportingOverflow(by: w)
        guard !o1, need == storage.count else {
            throw bad("its storage declares \(s.numel) elements of \(w) bytes but \"\(entryName)\" holds \(storage.count) bytes")
        }
        let shape: Shape
        do { shape = try Shape(t.size) } catch { throw bad("size \(t.size) is negative or overflows") }
        guard t.offset >= 0 else { throw bad("storage offset \(t.offset) is negative") }
        guard t.stride.allSatisfy({ $0 >= 0 }) else { throw bad("stride \(t.stride) has a negative entry") }
        let byteCount: Int
        do { byteCount = try shape.byteCount(of: dtype) } catch { throw bad("size \(t.size) overflows in bytes") }

        // The last element addressed, offset + Σ (size − 1)·stride, must lie inside the storage.
        var contiguous = true
        if shape.elementCount > 0 {
            var last = t.offset
            for (n, st) in zip(t.size, t.stride) {
                let (p, o2) = (n - 1).multipliedReportingOverflow(by: st)
                let (q, o3) = last.addingReportingOverflow(p)
                guard !o2, !o3 else { throw bad("size \(t.size) and stride \(t.stride) overflow") }
                last = q
            }
            guard last < s.numel else {
                throw bad("offset \(t.offset), size \(t.size) and stride \(t.stride) reach element \(last) of a \(s.numel)-element storage")
            }
            var expected = 1
            for (n, st) in zip(t.size, t.stride).reversed() where n != 1 {
                if st != expected { contiguous = false; break }
                expected *= n  // ≤ elementCount, which Shape checked
            }
            if !contiguous, shape.elementCount > s.numel {
                throw bad("size \(t.size) with stride \(t.stride) views \(shape.elementCount) elements of a \(s.numel)-element storage (an expanded or overlapping view, which Alloy does not copy); save it with .contiguous()")
            }
        }
        let start: Int
        if contiguous, shape.elementCount > 0 {
            start = storage.lowerBound + t.offset * w  // offset + count ≤ numel: no overflow
        } else {
            start = storage.lowerBound
        }
        let info = TensorInfo(name: name, dtype: dtype, shape: shape, dataRange: start..<(start + byteCount))
        return (info, Layout(storage: storage, offset: t.offset, size: t.size, stride: t.stride, contiguous: contiguous))
    }
}
