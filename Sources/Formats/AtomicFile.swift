import CKernels
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

    /// Writes `bytes` at file offset `offset` (pwrite), apart from `write`'s buffered stream:
    /// a file is written one way or the other. Safe from several threads at once for disjoint
    /// ranges.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count, at = offset
        while left > 0 {
            let n = pwrite(fd, p, left, off_t(at))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatIOError(path: path, operation: "write \(left) bytes at offset \(at)", code: errno)
            }
            p += n; left -= n; at += n
        }
    }

    /// Starts writing the whole pages of `range` (file offsets) to disk without waiting
    /// (`alloy_start_writeback`: Linux `sync_file_range`), so that the disk works while the caller
    /// computes the rest and `commit`'s fsync — which still makes every byte durable — has
    /// little left to wait for. The partial pages at either end are left to `commit`: a page
    /// under writeback that is written again would wait for it. For bytes that will not change
    /// again; a hint: where the call is unavailable or fails, `commit` writes them all.
    public func startWriteback(_ range: Range<Int>) {
        let page = Self.pageSize
        let lo = (range.lowerBound + page - 1) / page * page, hi = range.upperBound / page * page
        guard hi > lo else { return }
        _ = alloy_start_writeback(fd, Int64(lo), Int64(hi - lo))
    }

    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Flushes, fsyncs and renames the file into place.
    public func commit() throws {
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
