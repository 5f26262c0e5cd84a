/// Why a `torch.save` checkpoint (`pytorch_model.bin`) was rejected. Every case names the file;
/// pickle cases name the opcode (or global) and its byte offset inside `data.pkl`.
public enum TorchCheckpointError: Error, Equatable, CustomStringConvertible {
    case io(path: String, reason: String)
    /// The zip container is malformed (the reason says which structure).
    case zip(path: String, reason: String)
    /// An entry is compressed; torch writes stored entries only, and Alloy maps them in place.
    case compressedEntry(path: String, entry: String, method: Int)
    /// The file is the pre-1.6 `torch.save` format (pickles back to back), not a zip archive.
    case legacyFormat(path: String)
    /// A pickle opcode Alloy does not run (INST, OBJ, EXT*, unknown, …).
    case refusedOpcode(path: String, opcode: String, offset: Int)
    /// A global outside the state-dict allow list.
    case refusedGlobal(path: String, global: String, opcode: String, offset: Int)
    /// The pickle stream is malformed or uses an allowed opcode in a way a state dict never does.
    case pickle(path: String, opcode: String, offset: Int, reason: String)
    /// The unpickled object is not a dict of tensors (or one nested under "state_dict"/"model").
    case notAStateDict(path: String, reason: String)
    case invalidTensor(path: String, tensor: String, reason: String)
    case unsupportedDType(path: String, tensor: String, storage: String)
    case tensorNotFound(path: String, tensor: String)

    public var description: String {
        switch self {
        case let .io(p, r): return "\(p): \(r)"
        case let .zip(p, r): return "\(p): not a readable torch.save zip archive: \(r)"
        case let .compressedEntry(p, e, m):
            return "\(p): zip entry \"\(e)\" is compressed (method \(m)); torch.save writes stored entries only and Alloy reads them in place — re-save the checkpoint with torch.save"
        case let .legacyFormat(p):
            return "\(p): legacy torch.save format (PyTorch < 1.6, not a zip archive) is not supported; load and re-save it with a current torch, or convert it to safetensors"
        case let .refusedOpcode(p, o, at):
            return "\(p): data.pkl offset \(at): pickle opcode \(o) refused — a state dict needs none"
        case let .refusedGlobal(p, g, o, at):
            return "\(p): data.pkl offset \(at): \(o) \(g) refused — only the globals of a tensor state dict are allowed (collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.*Storage, …)"
        case let .pickle(p, o, at, r): return "\(p): data.pkl offset \(at): \(o): \(r)"
        case let .notAStateDict(p, r): return "\(p): not a state dict: \(r)"
        case let .invalidTensor(p, t, r): return "\(p): tensor \"\(t)\": \(r)"
        case let .unsupportedDType(p, t, s):
            return "\(p): tensor \"\(t)\" is stored as torch.\(s), which Alloy does not read (supported: Float, Half, BFloat16, Double, Long, Int, Short, Char, Byte, Bool storages)"
        case let .tensorNotFound(p, t): return "\(p): no tensor named \"\(t)\""
        }
    }
}
