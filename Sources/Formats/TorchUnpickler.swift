import Tensors

/// A global the restricted unpickler resolves: the allow list of a tensor state dict.
enum PickleGlobal: Equatable, Sendable {
    case orderedDict
    case rebuildTensor, rebuildTensorV2, rebuildParameter, rebuildParameterWithState
    case size
    /// `torch.<Name>Storage`, e.g. "FloatStorage"; only a persistent id's storage type.
    case storage(String)

    /// The allow list: torch's `weights_only` unpickler (`torch/_weights_only_unpickler.py`)
    /// narrowed to what `torch.save(model.state_dict())` writes, as mergekit's
    /// `LazyTorchUnpickler` (`mergekit/io/lazy_unpickle.py`) does.
    static func resolve(module: String, name: String) -> PickleGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameterWithState
        case ("torch", "Size"): return .size
        case ("torch", let n) where storageTypes.contains(n): return .storage(n)
        default: return nil
        }
    }

    /// Storage classes a persistent id may name: those with an Alloy dtype, and the rest of
    /// torch's legacy typed storages, so that a tensor of those is refused naming the tensor.
    static let storageTypes: Set<String> = Set(storageDTypes.keys).union([
        "ComplexFloatStorage", "ComplexDoubleStorage", "QUInt8Storage", "QInt8Storage", "QInt32Storage",
        "QUInt4x2Storage", "QUInt2x4Storage",
    ])

    static let storageDTypes: [String: DType] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool,
    ]
}

/// A value of the restricted unpickler. Containers live in the unpickler's arenas and are
/// referenced by index, so no value holds another: building, reading and freeing a result never
/// recurses, however deep the input nests, and reference cycles (a dict put in itself through
/// the memo) are harmless.
enum PickleValue: Equatable, Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Int)
    case tuple(Int)
    case list(Int)
    case dict(Int)
    case global(PickleGlobal)
    /// A persistent id resolved to a storage record (index into `storages`).
    case storage(Int)
    /// A rebuilt tensor (index into `tensors`).
    case tensor(Int)

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global: return "global"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// A storage named by a persistent id `('storage', storage_type, key, location, numel)`.
struct PickledStorage: Sendable {
    let type: String
    let key: String
    let location: String
    let numel: Int
}

/// A tensor as `_rebuild_tensor_v2(storage, storage_offset, size, stride, …)` describes it.
struct PickledTensor: Sendable {
    let storage: Int
    let offset: Int
    let size: [Int]
    let stride: [Int]
}

/// A pickle virtual machine that runs only what a tensor state dict needs (protocols 2–5 as
/// `torch.save` writes them: protocol 2 by default), in the manner of torch's `weights_only`
/// unpickler and mergekit's lazy unpickler: globals come from `PickleGlobal`'s allow list;
/// REDUCE runs only the allowed rebuild functions and `OrderedDict()`; BUILD only sets an
/// OrderedDict's attributes (`state_dict._metadata`), which are dropped; INST, OBJ, NEWOBJ,
/// EXT*, text-protocol opcodes, buffers and unknown opcodes are refused. Every refusal names
/// the file, the opcode (or global) and its offset. Stack, marks, memo and the number of containers are capped; integers
/// are read with overflow checks; nothing recurses.
struct TorchUnpickler {
    /// Caps on the machine's state; `standard` is used for files (tests lower them).
    struct Limits {
        var stack = 1 << 20
        var marks = 1 << 16
        var memo = 1 << 22
        /// Tuples, lists and dicts together (a state dict makes about five per tensor).
        var objects = 1 << 23
        static let standard = Limits()
    }
    static let maxDims = 64

    var limits = Limits.standard

    let path: String
    private(set) var tuples: [[PickleValue]] = []
    private(set) var lists: [[PickleValue]] = []
    private(set) var dicts: [[(key: PickleValue, value: PickleValue)]] = []
    private var dictKeys: [[String: Int]] = []
    private(set) var storages: [PickledStorage] = []
    private(set) var tensors: [PickledTensor] = []
    private var isOrderedDict: [Bool] = []

    init(path: String) { self.path = path }

    /// Runs `bytes` (a `data.pkl`) to its STOP and returns the top value.
    mutating func load(_ bytes: UnsafeRawBufferPointer) throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [UInt32: PickleValue] = [:]
        var pos = 0
        let n = bytes.count
        let path = self.path, limits = self.limits

        while true {
            guard tuples.count + lists.count + dicts.count <= limits.objects else {
                throw TorchCheckpointError.pickle(path: path, opcode: "data.pkl", offset: pos, reason: "builds more than \(limits.objects) tuples, lists and dicts")
            }
            let at = pos
            guard pos < n else { throw TorchCheckpointError.pickle(path: path, opcode: "end of data", offset: at, reason: "the stream ends before STOP; data.pkl is truncated") }
            let op = bytes[pos]
            pos += 1
            let name = Self.opcodeNames[op] ?? String(format: "0x%02X", op)
            func fail(_ reason: String) -> TorchCheckpointError { .pickle(path: path, opcode: name, offset: at, reason: reason) }
            func take(_ k: Int) throws -> UnsafeRawBufferPointer {
                guard k >= 0, k <= n - pos else { throw fail("needs \(k) bytes, \(n - pos) remain; data.pkl is truncated") }
                defer { pos += k }
                return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + k)])
            }
            func le(_ k: Int) throws -> UInt64 {
                let b = try take(k)
                var v: UInt64 = 0
                for i in (0..<k).reversed() { v = v << 8 | UInt64(b[i]) }
                return v
            }
            func length(_ k: Int) throws -> Int {
                let v = try le(k)
                guard v <= UInt64(n - pos) else { throw fail("length \(v) runs past the end of data.pkl (\(n - pos) bytes remain)") }
                return Int(v)
            }
            func push(_ v: PickleValue) throws {
                guard stack.count < limits.stack else { throw fail("stack exceeds \(limits.stack) entries") }
                stack.append(v)
            }
            func pop() throws -> PickleValue {
                if let m = marks.last, stack.count <= m { throw fail("pops past a MARK") }
                guard let v = stack.popLast() else { throw fail("stack underflow") }
                return v
            }
            func popMark() throws -> [PickleValue] {
                guard let m = marks.popLast() else { throw fail("no MARK to pop to") }
                guard m <= stack.count else { throw fail("stack underflow below MARK") }
                defer { stack.removeSubrange(m...) }
                return Array(stack[m...])
            }
            func memoPut(_ i: UInt32) throws {
                guard let top = stack.last else { throw fail("memo put with an empty stack") }
                guard memo[i] != nil || memo.count < limits.memo else { throw fail("memo exceeds \(limits.memo) entries") }
                memo[i] = top
            }
            func memoGet(_ i: UInt32) throws {
                guard let v = memo[i] else { throw fail("memo index \(i) was never put") }
                try push(v)
            }
            func string(_ b: UnsafeRawBufferPointer) throws -> String {
                guard let s = String(validating: b, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
                return s
            }

            switch op {
            case 0x80:  // PROTO
                let v = try le(1)
                guard (2...5).contains(v) else { throw fail("protocol \(v); torch.save writes 2 (accepted: 2–5)") }
            case 0x95:  // FRAME: framing is a read-ahead hint; the opcodes follow in line.
                _ = try le(8)
            case 0x2E:  // STOP
                guard marks.isEmpty else { throw fail("a MARK is still open") }
                guard stack.count == 1, let top = stack.last else { throw fail("stack holds \(stack.count) values at STOP, not 1") }
                return top
            case 0x28:  // MARK
                guard marks.count < limits.marks else { throw fail("more than \(limits.marks) open MARKs") }
                marks.append(stack.count)
            case 0x30:  // POP
                if let m = marks.last, m == stack.count { marks.removeLast() } else { _ = try pop() }
            case 0x31:  // POP_MARK
                _ = try popMark()
            case 0x32:  // DUP
                guard let top = stack.last else { throw fail("stack underflow") }
                try push(top)
            case 0x4E: try push(.none)  // NONE
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false))  // NEWFALSE
            case 0x4B: try push(.int(Int(try le(1))))  // BININT1
            case 0x4D: try push(.int(Int(try le(2))))  // BININT2
            case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try le(4)))))  // BININT
            case 0x8A, 0x8B:  // LONG1, LONG4: little-endian two's complement, at most 8 bytes here
                let k = Int(try le(op == 0x8A ? 1 : 4))
                guard k <= 8 else { throw fail("a \(k)-byte integer; sizes and offsets fit in 8") }
                let raw = try le(k)
                var v = Int64(bitPattern: raw)
                if k > 0, k < 8, raw & (1 << (UInt64(k) * 8 - 1)) != 0 { v -= Int64(1) << (Int64(k) * 8) }
                try push(.int(Int(v)))
            case 0x47:  // BINFLOAT: big-endian IEEE double
                let b = try take(8)
                var bits: UInt64 = 0
                for i in 0..<8 { bits = bits << 8 | UInt64(b[i]) }
                try push(.float(Double(bitPattern: bits)))
            case 0x58: try push(.string(try string(try take(try length(4)))))  // BINUNICODE
            case 0x8C: try push(.string(try string(try take(try length(1)))))  // SHORT_BINUNICODE
            case 0x8D: try push(.string(try string(try take(try length(8)))))  // BINUNICODE8
            case 0x54: try push(.string(try string(try take(try length(4)))))  // BINSTRING (py2 str)
            case 0x55: try push(.string(try string(try take(try length(1)))))  // SHORT_BINSTRING
            case 0x42: try push(.bytes(try take(try length(4)).count))  // BINBYTES
            case 0x43: try push(.bytes(try take(try length(1)).count))  // SHORT_BINBYTES
            case 0x8E: try push(.bytes(try take(try length(8)).count))  // BINBYTES8
            case 0x29: try push(.tuple(newTuple([])))  // EMPTY_TUPLE
            case 0x85: try push(.tuple(newTuple([try pop()])))  // TUPLE1
            case 0x86:  // TUPLE2
                let b = try pop(), a = try pop()
                try push(.tuple(newTuple([a, b])))
            case 0x87:  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                try push(.tuple(newTuple([a, b, c])))
            case 0x74: try push(.tuple(newTuple(try popMark())))  // TUPLE
            case 0x5D: lists.append([]); try push(.list(lists.count - 1))  // EMPTY_LIST
            case 0x6C: lists.append(try popMark()); try push(.list(lists.count - 1))  // LIST
            case 0x7D: try push(.dict(newDict(ordered: false)))  // EMPTY_DICT
            case 0x64:  // DICT
                let items = try popMark()
                let d = newDict(ordered: false)
                try setItems(d, items, fail)
                try push(.dict(d))
            case 0x61:  // APPEND
                let v = try pop()
                guard case .list(let l)? = stack.last else { throw fail("APPEND to a \(stack.last?.kind ?? "nothing"), not a list") }
                lists[l].append(v)
            case 0x65:  // APPENDS
                let items = try popMark()
                guard case .list(let l)? = stack.last else { throw fail("APPENDS to a \(stack.last?.kind ?? "nothing"), not a list") }
                lists[l].append(contentsOf: items)
            case 0x73:  // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d)? = stack.last else { throw fail("SETITEM on a \(stack.last?.kind ?? "nothing"), not a dict") }
                try setItems(d, [k, v], fail)
            case 0x75:  // SETITEMS
                let items = try popMark()
                guard case .dict(let d)? = stack.last else { throw fail("SETITEMS on a \(stack.last?.kind ?? "nothing"), not a dict") }
                try setItems(d, items, fail)
            case 0x71: try memoPut(UInt32(try le(1)))  // BINPUT
            case 0x72: try memoPut(UInt32(try le(4)))  // LONG_BINPUT
            case 0x94: try memoPut(UInt32(truncatingIfNeeded: memo.count))  // MEMOIZE
            case 0x68: try memoGet(UInt32(try le(1)))  // BINGET
            case 0x6A: try memoGet(UInt32(try le(4)))  // LONG_BINGET
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line(bytes, &pos, fail), attr = try line(bytes, &pos, fail)
                guard let g = PickleGlobal.resolve(module: module, name: attr) else {
                    throw TorchCheckpointError.refusedGlobal(path: path, global: "\(module).\(attr)", opcode: name, offset: at)
                }
                try push(.global(g))
            case 0x93:  // STACK_GLOBAL
                let attr = try pop(), module = try pop()
                guard case .string(let m) = module, case .string(let a) = attr else { throw fail("module and name must be strings") }
                guard let g = PickleGlobal.resolve(module: m, name: a) else {
                    throw TorchCheckpointError.refusedGlobal(path: path, global: "\(m).\(a)", opcode: name, offset: at)
                }
                try push(.global(g))
            case 0x51:  // BINPERSID
                try push(.storage(try persistentLoad(try pop(), fail)))
            case 0x52:  // REDUCE
                let args = try pop(), callable = try pop()
                try push(try reduce(callable, args, fail))
            case 0x62:  // BUILD: only an OrderedDict's attributes (state_dict._metadata), dropped.
                let state = try pop()
                guard case .dict(let d)? = stack.last, isOrderedDict[d] else {
                    throw fail("refused on a \(stack.last?.kind ?? "nothing"): only an OrderedDict's attributes (state_dict._metadata) may be set")
                }
                switch state {
                case .dict, .none: break
                default: throw fail("OrderedDict state must be a dict, not a \(state.kind)")
                }
            default:
                throw TorchCheckpointError.refusedOpcode(path: path, opcode: name, offset: at)
            }
        }
    }

    /// A text argument ending in "\n" (GLOBAL's module and name), at most 256 bytes.
    private func line(_ bytes: UnsafeRawBufferPointer, _ pos: inout Int, _ fail: (String) -> TorchCheckpointError) throws -> String {
        let start = pos
        while pos < bytes.count, bytes[pos] != 0x0A {
            pos += 1
            guard pos - start <= 256 else { throw fail("a global name longer than 256 bytes") }
        }
        guard pos < bytes.count else { throw fail("a global name runs past the end of data.pkl") }
        defer { pos += 1 }
        guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self) else {
            throw fail("a global name is not valid UTF-8")
        }
        return s
    }

    private mutating func newTuple(_ items: [PickleValue]) -> Int {
        tuples.append(items)
        return tuples.count - 1
    }

    private mutating func newDict(ordered: Bool) -> Int {
        dicts.append([])
        dictKeys.append([:])
        isOrderedDict.append(ordered)
        return dicts.count - 1
    }

    /// Sets key/value pairs as Python does (a repeated key replaces its value in place). Keys
    /// must be strings or integers, as a state dict's (and its `_metadata`'s) are.
    private mutating func setItems(_ d: Int, _ items: [PickleValue], _ fail: (String) -> TorchCheckpointError) throws {
        guard items.count % 2 == 0 else { throw fail("an odd number of items (\(items.count)) for key/value pairs") }
        var i = 0
        while i < items.count {
            let k = items[i], v = items[i + 1]
            let key: String
            switch k {
            case .string(let s): key = "s" + s
            case .int(let x): key = "i" + String(x)
            default: throw fail("a dict key must be a string or an int, not a \(k.kind)")
            }
            if let j = dictKeys[d][key] {
                dicts[d][j].value = v
            } else {
                dictKeys[d][key] = dicts[d].count
                dicts[d].append((k, v))
            }
            i += 2
        }
    }

    /// `('storage', storage_type, key, location, numel)`, as torch.save's `persistent_id` writes.
    private mutating func persistentLoad(_ pid: PickleValue, _ fail: (String) -> TorchCheckpointError) throws -> Int {
        guard case .tuple(let t) = pid, tuples[t].count == 5 else {
            throw fail("persistent id must be ('storage', type, key, location, numel), not a \(pid.kind)")
        }
        let f = tuples[t]
        guard case .string("storage") = f[0] else { throw fail("persistent id must start with 'storage'") }
        guard case .global(.storage(let type)) = f[1] else { throw fail("persistent id's storage type must be a torch.*Storage global, not a \(f[1].kind)") }
        guard case .string(let key) = f[2] else { throw fail("persistent id's key must be a string, not a \(f[2].kind)") }
        guard case .string(let location) = f[3] else { throw fail("persistent id's location must be a string, not a \(f[3].kind)") }
        guard case .int(let numel) = f[4], numel >= 0 else { throw fail("persistent id's element count must be a non-negative int") }
        storages.append(PickledStorage(type: type, key: key, location: location, numel: numel))
        return storages.count - 1
    }

    private func ints(_ v: PickleValue, _ what: String, _ fail: (String) -> TorchCheckpointError) throws -> [Int] {
        guard case .tuple(let t) = v else { throw fail("\(what) must be a tuple, not a \(v.kind)") }
        guard tuples[t].count <= Self.maxDims else { throw fail("\(what) has \(tuples[t].count) dimensions, over the cap of \(Self.maxDims)") }
        return try tuples[t].map {
            guard case .int(let x) = $0 else { throw fail("\(what) must hold ints, not a \($0.kind)") }
            return x
        }
    }

    /// Calls an allowed callable. Tensor rebuilds keep storage, offset, size and stride; their
    /// `requires_grad`, backward hooks (an empty OrderedDict) and metadata carry nothing a
    /// reader needs and are checked for type only.
    private mutating func reduce(_ callable: PickleValue, _ args: PickleValue, _ fail: (String) -> TorchCheckpointError) throws -> PickleValue {
        guard case .global(let g) = callable else { throw fail("calls a \(callable.kind), which is not callable") }
        guard case .tuple(let t) = args else { throw fail("arguments must be a tuple, not a \(args.kind)") }
        let a = tuples[t]
        switch g {
        case .orderedDict:
            guard a.isEmpty else { throw fail("OrderedDict() takes no arguments here, got \(a.count)") }
            return .dict(newDict(ordered: true))
        case .size:
            guard a.count == 1 else { throw fail("torch.Size takes one tuple") }
            _ = try ints(a[0], "torch.Size", fail)
            return a[0]
        case .rebuildTensor, .rebuildTensorV2:
            let fn = g == .rebuildTensor ? "_rebuild_tensor" : "_rebuild_tensor_v2"
            let expected = g == .rebuildTensor ? 4...4 : 6...7
            guard expected.contains(a.count) else { throw fail("\(fn) takes \(expected.lowerBound)…\(expected.upperBound) arguments, got \(a.count)") }
            guard case .storage(let s) = a[0] else { throw fail("\(fn)'s first argument must be a storage, not a \(a[0].kind)") }
            guard case .int(let offset) = a[1] else { throw fail("\(fn)'s storage offset must be an int, not a \(a[1].kind)") }
            let size = try ints(a[2], "size", fail), stride = try ints(a[3], "stride", fail)
            guard size.count == stride.count else { throw fail("size has \(size.count) dimensions but stride \(stride.count)") }
            if a.count >= 6 {
                guard case .bool = a[4] else { throw fail("requires_grad must be a bool, not a \(a[4].kind)") }
                guard case .dict = a[5] else { throw fail("backward hooks must be an OrderedDict, not a \(a[5].kind)") }
            }
            tensors.append(PickledTensor(storage: s, offset: offset, size: size, stride: stride))
            return .tensor(tensors.count - 1)
        case .rebuildParameter, .rebuildParameterWithState:
            let count = g == .rebuildParameter ? 3 : 4
            guard a.count == count else { throw fail("\(g == .rebuildParameter ? "_rebuild_parameter" : "_rebuild_parameter_with_state") takes \(count) arguments, got \(a.count)") }
            guard case .tensor = a[0] else { throw fail("a parameter wraps a tensor, not a \(a[0].kind)") }
            return a[0]
        case .storage(let s):
            throw fail("calling torch.\(s) is refused; a storage is only named by a persistent id")
        }
    }

    /// Opcode names as `pickletools` spells them, for error messages.
    static let opcodeNames: [UInt8: String] = [
        0x28: "MARK", 0x2E: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT", 0x49: "INT",
        0x4A: "BININT", 0x4B: "BININT1", 0x4C: "LONG", 0x4D: "BININT2", 0x4E: "NONE", 0x50: "PERSID",
        0x51: "BINPERSID", 0x52: "REDUCE", 0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING",
        0x56: "UNICODE", 0x58: "BINUNICODE", 0x61: "APPEND", 0x62: "BUILD", 0x63: "GLOBAL", 0x64: "DICT",
        0x7D: "EMPTY_DICT", 0x65: "APPENDS", 0x67: "GET", 0x68: "BINGET", 0x69: "INST", 0x6A: "LONG_BINGET",
        0x6C: "LIST", 0x5D: "EMPTY_LIST", 0x6F: "OBJ", 0x70: "PUT", 0x71: "BINPUT", 0x72: "LONG_BINPUT",
        0x73: "SETITEM", 0x74: "TUPLE", 0x29: "EMPTY_TUPLE", 0x75: "SETITEMS", 0x47: "BINFLOAT",
        0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1", 0x86: "TUPLE2",
        0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8A: "LONG1", 0x8B: "LONG4",
        0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x8C: "SHORT_BINUNICODE", 0x8D: "BINUNICODE8",
        0x8E: "BINBYTES8", 0x8F: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x92: "NEWOBJ_EX",
        0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER",
        0x98: "READONLY_BUFFER",
    ]

    // MARK: reading the result

    func tupleItems(_ i: Int) -> [PickleValue] { tuples[i] }
    func dictItems(_ i: Int) -> [(key: PickleValue, value: PickleValue)] { dicts[i] }
}
