import Foundation
import XCTest
import Tensors

enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func path(_ rel: String) -> String { root.appendingPathComponent(rel).path }
    static func bytes(_ rel: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: root.appendingPathComponent(rel))) }
}

/// A fresh temporary directory removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) -> String {
    let dir = NSTemporaryDirectory() + "alloy-test-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

typealias SeededRNG = SplitMix
