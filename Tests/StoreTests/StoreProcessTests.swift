import XCTest
import Foundation
@testable import Store
import Formats
import Tensors

/// Tests that run the `alloy` executable (built by `swift build --build-tests`) as separate
/// processes: SIGKILL at random moments of an import, and concurrent imports into one store.
final class StoreProcessTests: XCTestCase {
    var alloy: String!

    override func setUpWithError() throws {
        let candidates = ["debug", "release"].map { Fixture.repo + "/.build/\($0)/alloy" }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no alloy executable in .build/debug or .build/release; run `swift build --build-tests` first (Scripts/test does)")
        }
        alloy = found
    }

    func launch(_ args: [String], store: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: alloy)
        p.arguments = args + ["--store", store]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// A seeded random "model" of `megabytes` MiB of F32 in 8 tensors.
    func makeSource(_ dir: String, seed: UInt64, megabytes: Int) throws -> String {
        var rng = SplitMix(seed: seed)
        let per = megabytes * (1 << 20) / 4 / 8
        let tensors = try (0..<8).map { i -> (String, Tensor) in
            ("layer.\(i).weight", try Tensor((0..<per).map { _ in Float(Int32(truncatingIfNeeded: rng.next() >> 32)) / 1e9 }, shape: Shape([per])))
        }
        let path = dir + "/model-\(seed).safetensors"
        try SafetensorsWriter.write(tensors, to: path)
        return path
    }

    /// ≥ 50 imports killed with SIGKILL at uniformly random moments across the import's
    /// duration: the store never fails `verify`, and an entry is either absent or complete.
    func testImportKilledAtRandomMomentsNeverCorruptsTheStore() throws {
        let root = NSTemporaryDirectory() + "alloy-crash-\(UInt32.random(in: 0...UInt32.max))"
        let store = try Store(root: root)
        let sources = try (0..<4).map { try makeSource(root, seed: UInt64($0), megabytes: 8) }
        // Time one uninterrupted import to spread the kills over it.
        let t0 = Date()
        let p0 = try launch(["import", sources[0], "--name", "warmup"], store: root)
        p0.waitUntilExit()
        XCTAssertEqual(p0.terminationStatus, 0)
        let duration = Date().timeIntervalSince(t0)
        var rng = SplitMix(seed: 42)
        var present = 0, absent = 0, orphaned = 0
        let trials = 60
        for k in 0..<trials {
            // Alternate sources so that most trials write new blobs; gc now and then.
            if k % 10 == 9 { _ = try store.gc() }
            let name = "trial-\(k)"
            let p = try launch(["import", sources[k % sources.count], "--name", name], store: root)
            let delay = Double(rng.next() % 1000) / 1000 * duration * 1.1
            usleep(useconds_t(delay * 1e6))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let report = try store.verify()
            XCTAssertTrue(report.ok, "trial \(k) (killed after \(delay) s): \(report.problems)")
            if let item = try? store.resolve(name) {
                present += 1
                XCTAssertEqual(item.blobs.keys.sorted(), ["weights"])
                let f = try store.open(item, role: "weights")
                XCTAssertEqual(f.names.count, 8)
            } else {
                absent += 1
            }
            if !report.leftovers.isEmpty { orphaned += 1 }
        }
        print("crash test: \(trials) SIGKILLs over a \(String(format: "%.2f", duration)) s import — entry complete \(present)×, absent \(absent)×, leftovers for gc \(orphaned)×; verify ok every time")
        XCTAssertGreaterThan(absent, 0, "some kills should land before the commit")
        _ = try store.gc()
        XCTAssertTrue(try store.verify().leftovers.isEmpty)
    }

    /// Two processes importing into one store at once: both succeed (one waits for the lock).
    func testConcurrentImportsBothSucceed() throws {
        let root = NSTemporaryDirectory() + "alloy-concurrent-\(UInt32.random(in: 0...UInt32.max))"
        let store = try Store(root: root)
        let a = try makeSource(root, seed: 1, megabytes: 8), b = try makeSource(root, seed: 2, megabytes: 8)
        for round in 0..<3 {
            let pa = try launch(["import", a, "--name", "a\(round)"], store: root)
            let pb = try launch(["import", round == 2 ? a : b, "--name", "b\(round)"], store: root)
            pa.waitUntilExit(); pb.waitUntilExit()
            XCTAssertEqual(pa.terminationStatus, 0); XCTAssertEqual(pb.terminationStatus, 0)
        }
        XCTAssertTrue(try store.verify().ok)
        XCTAssertEqual(Set(try store.list().flatMap(\.names)), ["a0", "a1", "a2", "b0", "b1", "b2"])
        XCTAssertEqual(try store.list().count, 2, "the same content imported twice, even concurrently, is one entry")
    }
}
