#if canImport(Glibc)
import Glibc
private func cOpen(_ p: String, _ f: Int32, _ m: mode_t) -> Int32 { Glibc.open(p, f, m) }
private func cWrite(_ fd: Int32, _ b: UnsafeRawPointer, _ n: Int) -> Int { Glibc.write(fd, b, n) }
private func cClose(_ fd: Int32) -> Int32 { Glibc.close(fd) }
#elseif canImport(Darwin)
import Darwin
private func cOpen(_ p: String, _ f: Int32, _ m: mode_t) -> Int32 { Darwin.open(p, f, m) }
private func cWrite(_ fd: Int32, _ b: UnsafeRawPointer, _ n: Int) -> Int { Darwin.write(fd, b, n) }
private func cClose(_ fd: Int32) -> Int32 { Darwin.close(fd) }
#endif

/// An operating-system error: what was attempted, on which path, and the errno text.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let operation: String
    public let code: Int32
    public var description: String { "\(path): cannot \(operation): \(String(cString: strerror(code)))" }
}

/// The file-descriptor calls Alloy makes (open, write, fsync, flock, fstat), in one small shim
/// so that no other file calls the C library's descriptor functions directly.
public struct FileDescriptor: Sendable {
    public let raw: Int32
    public let path: String

    public enum Mode: Sendable {
        /// Read-only.
        case read
        /// Write-only, created; fails if the file exists (temporary files).
        case createNew
        /// Read-write, created if missing (lock files).
        case readWriteCreate
        /// A directory, opened to fsync it.
        case directory
    }

    public static func open(_ path: String, _ mode: Mode) throws -> FileDescriptor {
        let flags: Int32
        switch mode {
        case .read: flags = O_RDONLY | O_CLOEXEC
        case .createNew: flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC
        case .readWriteCreate: flags = O_RDWR | O_CREAT | O_CLOEXEC
        case .directory: flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC
        }
        var fd: Int32
        repeat { fd = cOpen(path, flags, 0o644) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw SystemError(path: path, operation: "open", code: errno) }
        return FileDescriptor(raw: fd, path: path)
    }

    /// Writes all of `bytes`, retrying short writes and interruptions.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var off = 0
        while off < bytes.count {
            let n = cWrite(raw, base + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(path: path, operation: "write", code: errno)
            }
            off += n
        }
    }

    public func sync() throws {
        guard fsync(raw) == 0 else { throw SystemError(path: path, operation: "fsync", code: errno) }
    }

    public func size() throws -> Int {
        var st = stat()
        guard fstat(raw, &st) == 0 else { throw SystemError(path: path, operation: "stat", code: errno) }
        return Int(st.st_size)
    }

    /// Takes an flock(2) lock; with `wait` false, returns false at once when another process
    /// holds a conflicting lock.
    public func lock(exclusive: Bool, wait: Bool) throws -> Bool {
        let op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)
        while flock(raw, op) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK && !wait { return false }
            throw SystemError(path: path, operation: "lock", code: errno)
        }
        return true
    }

    public func unlock() { _ = flock(raw, LOCK_UN) }

    public func close() { _ = cClose(raw) }

    /// fsyncs a directory so that a rename inside it is durable; best effort.
    public static func syncDirectory(_ path: String) {
        guard let d = try? open(path.isEmpty ? "/" : path, .directory) else { return }
        _ = try? d.sync()
        d.close()
    }
}
