import Foundation
import Store

/// Finds models and adapters given on the command line: a path on disk is used as is; anything
/// else is a reference into the store at `storeRoot`, checked out on first use.
public struct ModelLocator: Sendable {
    public let storeRoot: String

    public init(storeRoot: String) { self.storeRoot = storeRoot }

    /// Whether a store exists at `storeRoot` (its catalog is there).
    public var storeExists: Bool {
        FileManager.default.fileExists(atPath: (storeRoot as NSString).appendingPathComponent("catalog.sqlite"))
    }

    /// Opens the store (creating it when `create`).
    public func open(create: Bool = false) throws -> Store { try Store(root: storeRoot, create: create) }

    /// The path of `pathOrRef`: itself when it exists on disk, else the checkout of the store entry.
    public func path(_ pathOrRef: String) throws -> String {
        if FileManager.default.fileExists(atPath: pathOrRef) { return pathOrRef }
        guard storeExists else { throw CompositionError.notFound(ref: pathOrRef, store: storeRoot) }
        let s = try open()
        return try s.checkout(try s.resolve(pathOrRef))
    }
}
