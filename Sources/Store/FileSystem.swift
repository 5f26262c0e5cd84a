#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Tensors

/// The store's file-system calls: advisory locks and fsync through the project's descriptor
/// shim (`Tensors.FileDescriptor`), atomic renames and a liveness probe for process ids from
/// the C library. Everything else goes through Foundation.
enum FileSystem {
    /// The text of the C library's `errno`.
    static var lastError: String { String(cString: strerror(errno)) }

    /// fsync(2) on a folder, so that renames into and out of it are durable. Best effort:
    /// a folder that cannot be opened is skipped (the rename itself already happened).
    static func fsyncDirectory(_ dir: String) { FileDescriptor.syncDirectory(dir) }

    /// fsync(2) on a regular file.
    static func fsyncFile(_ path: String) throws {
        do {
            let fd = try FileDescriptor.open(path, .read)
            defer { fd.close() }
            try fd.sync()
        } catch let e as SystemError { throw StoreError.io(path: path, reason: "cannot \(e.operation) to fsync: \(describe(e.code))") }
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
        private var fd: FileDescriptor?

        /// Opens (creating) `path` and locks it, shared or exclusive. When the lock is busy,
        /// `onWait` is called once before blocking.
        init(path: String, exclusive: Bool, onWait: (String) -> Void) throws {
            self.path = path
            do {
                let d = try FileDescriptor.open(path, .readWriteCreate)
                do {
                    if try !d.lock(exclusive: exclusive, wait: false) {
                        onWait(path)
                        _ = try d.lock(exclusive: exclusive, wait: true)
                    }
                } catch { d.close(); throw error }
                fd = d
            } catch let e as SystemError {
                throw StoreError.io(path: path, reason: "cannot \(e.operation) the lock file: \(FileSystem.describe(e.code))")
            }
        }

        func unlock() {
            guard let d = fd else { return }
            d.unlock()
            d.close()
            fd = nil
        }

        deinit { unlock() }
    }
}
