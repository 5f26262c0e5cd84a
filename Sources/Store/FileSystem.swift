#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The store's only calls into the C library: advisory locks, fsync of folders, atomic
/// renames and a liveness probe for process ids. Everything else goes through Foundation.
/// (No project-wide platform shim exists yet; when one does, these move there.)
enum FileSystem {
    /// The text of the C library's `errno`.
    static var lastError: String { String(cString: strerror(errno)) }

    /// fsync(2) on a folder, so that renames into and out of it are durable. Best effort:
    /// a folder that cannot be opened is skipped (the rename itself already happened).
    static func fsyncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    /// fsync(2) on a regular file.
    static func fsyncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.io(path: path, reason: "cannot open to fsync: \(lastError)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError.io(path: path, reason: "cannot fsync: \(lastError)") }
    }

    /// rename(2): atomic within one file system. Returns the errno on failure.
    static func move(_ from: String, _ to: String) -> Int32? {
        if rename(from, to) == 0 { return nil }
        return errno
    }

    /// The text of an errno value.
    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Whether `code` is the errno of a path that does not exist.
    static func isMissing(_ code: Int32) -> Bool { code == ENOENT }

    /// Whether a process with id `pid` exists (a temp folder named after a live process is
    /// still being written). A reused pid only keeps a leftover one `gc` longer.
    static func processExists(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    static var pid: Int32 { getpid() }

    /// An flock(2) on a file; released by `unlock` or when the process dies, so a killed
    /// holder never wedges anyone.
    final class Lock {
        let path: String
        private var fd: Int32

        /// Opens (creating) `path` and locks it, shared or exclusive. When the lock is busy,
        /// `onWait` is called once before blocking.
        init(path: String, exclusive: Bool, onWait: (String) -> Void) throws {
            self.path = path
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw StoreError.io(path: path, reason: "cannot open the lock file: \(FileSystem.lastError)") }
            let op = exclusive ? LOCK_EX : LOCK_SH
            if flock(fd, op | LOCK_NB) != 0 {
                guard errno == EWOULDBLOCK else { let e = FileSystem.lastError; close(fd); throw StoreError.io(path: path, reason: "cannot lock: \(e)") }
                onWait(path)
                while flock(fd, op) != 0 {
                    guard errno == EINTR else { let e = FileSystem.lastError; close(fd); throw StoreError.io(path: path, reason: "cannot lock: \(e)") }
                }
            }
        }

        func unlock() {
            guard fd >= 0 else { return }
            _ = flock(fd, LOCK_UN)
            close(fd)
            fd = -1
        }

        deinit { unlock() }
    }
}
