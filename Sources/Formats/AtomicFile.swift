#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file atomically: bytes go to a temporary file in the same directory, which is
/// fsync'ed and then renamed over the destination (and the directory fsync'ed), so a reader
/// sees either the old file or the complete new one — never a partial write.
public final class AtomicFile {
    public let path: String
    let tempPath: String
    private var fd: Int32
    private var committed = false
    private var buffer: [UInt8] = []
    private var mapping: UnsafeMutableRawBufferPointer?
    private static let bufferSize = 1 << 20

    public init(path: String) throws {
        self.path = path
        tempPath = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        fd = open(tempPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FormatIOError(path: path, operation: "create a temporary file", code: errno) }
        buffer.reserveCapacity(Self.bufferSize)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > Self.bufferSize { try flush() }
        if bytes.count >= Self.bufferSize {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        let b = buffer
        buffer.removeAll(keepingCapacity: true)
        try b.withUnsafeBytes { try writeAll($0) }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }  // nothing to write
        var off = 0
        while off < bytes.count {
            let n = Glibc.write(fd, base + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatIOError(path: path, operation: "write", code: errno)
            }
            off += n
        }
    }

    /// Sizes the file to `size` bytes (what was written before is kept) and maps all of it for
    /// writing; the mapping is valid until `commit` (or the file's end). Once per file.
    public func map(size: Int) throws -> UnsafeMutableRawBufferPointer {
        precondition(mapping == nil, "AtomicFile.map is called once per file (API contract)")
        try flush()
        guard size > 0 else { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw FormatIOError(path: path, operation: "size the file to \(size) bytes", code: errno) }
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else { throw FormatIOError(path: path, operation: "map \(size) bytes for writing", code: errno) }
        let m = UnsafeMutableRawBufferPointer(start: p, count: size)
        mapping = m
        return m
    }

    private func unmap() {
        if let m = mapping, let base = m.baseAddress { munmap(base, m.count) }
        mapping = nil
    }

    /// Flushes, fsyncs and renames the file into place.
    public func commit() throws {
        unmap()   // its dirty pages are the file's: the fsync below writes them
        try flush()
        guard fsync(fd) == 0 else { throw FormatIOError(path: path, operation: "fsync", code: errno) }
        close(fd)
        fd = -1
        guard rename(tempPath, path) == 0 else { throw FormatIOError(path: path, operation: "rename into place", code: errno) }
        committed = true
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    deinit {
        unmap()
        if fd >= 0 { close(fd) }
        if !committed { unlink(tempPath) }
    }

    /// Writes `bytes` to `path` atomically.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let f = try AtomicFile(path: path)
        try f.write(bytes)
        try f.commit()
    }
}

/// An operating-system error while reading or writing a file.
public struct FormatIOError: Error, CustomStringConvertible {
    public let path: String
    public let operation: String
    public let code: Int32
    public var description: String { "\(path): cannot \(operation): \(String(cString: strerror(code)))" }
}
