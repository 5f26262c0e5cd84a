#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Pages are loaded lazily by the kernel; nothing is
/// copied. The mapping lives as long as this object (tensors keep it alive).
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// Start of the mapping; `nil` only for an empty file.
    public let base: UnsafeRawPointer?
    public let size: Int

    public init(path: String) throws {
        self.path = path
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, .read) } catch let e as SystemError { throw TensorError.cannotOpen(path: path, errno: e.code) }
        defer { fd.close() }
        do { size = try fd.size() } catch let e as SystemError { throw TensorError.cannotOpen(path: path, errno: e.code) }
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd.raw, 0)
        guard let p, p != MAP_FAILED else { throw TensorError.cannotMap(path: path, errno: errno) }
        base = UnsafeRawPointer(p)
    }

    /// The mapped bytes.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// Hints the kernel that `range` will be read soon, sequentially.
    public func willNeed(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), range.upperBound - start, MADV_WILLNEED)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }
}
