import Foundation
import XCTest
import Tensors
import Formats

/// Seeded mutation fuzzing, one test per parser (FuzzHarness.swift), and the replay of every
/// committed crash input under Regressions/<parser>/<name>/.
final class FuzzTests: XCTestCase {
    nonisolated(unsafe) static var run: FuzzRun?
    nonisolated(unsafe) static var total = 0

    static func shared() -> FuzzRun {
        if let r = run { return r }
        let r = FuzzRun()
        run = r
        return r
    }

    func fuzz(_ target: FuzzTarget, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertFalse(target.seeds.isEmpty, "\(target.name): no seeds", file: file, line: line)
        // Every seed must parse: a fuzz target whose seeds are rejected only tests the first check.
        let run = Self.shared()
        for s in target.seeds {
            let dir = (FuzzConfig.workRoot as NSString).appendingPathComponent(target.name + "-seed")
            try FuzzRun.write(s, to: dir)
            run.begin("seed \(s.name) of target \(target.name)")
            XCTAssertNoThrow(try target.parse(dir), "\(target.name): seed \(s.name) does not parse", file: file, line: line)
            run.end()
        }
        let t0 = Date()
        let (ran, failures) = try run.fuzz(target, count: FuzzConfig.mutants, seed: FuzzConfig.seed)
        Self.total += ran
        print("fuzz \(target.name): \(ran) mutants in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s, seed \(FuzzConfig.seed) (\(Self.total) so far); "
              + String(format: "mutate %.1f s, write %.1f s, parse %.1f s, slowest parse %.2f s (mutant %d); %d parsed without error",
                       run.timing.mutate, run.timing.write, run.timing.parse, run.timing.slowest, run.timing.slowestIndex, run.timing.accepted))
        if FuzzConfig.verbose {
            for (k, n) in run.errorKinds.sorted(by: { $0.value > $1.value }).prefix(25) { print(String(format: "%6d  ", n) + k) }
            run.errorKinds = [:]
        }
        fflush(nil)
        for f in failures { XCTFail(f, file: file, line: line) }
    }

    func testSafetensors() throws { try fuzz(FuzzTargets.safetensors) }
    func testSafetensorsIndex() throws { try fuzz(FuzzTargets.shardedIndex) }
    func testAlloy() throws { try fuzz(FuzzTargets.alloy) }
    func testSparseDelta() throws { try fuzz(FuzzTargets.sparseDelta) }
    func testPEFT() throws { try fuzz(FuzzTargets.peft) }
    func testHFConfig() throws { try fuzz(FuzzTargets.hfConfig) }
    func testTokenizer() throws { try fuzz(FuzzTargets.tokenizer) }
    func testSentenceTransformers() throws { try fuzz(FuzzTargets.sentenceTransformers) }
    func testRecipe() throws { try fuzz(FuzzTargets.recipe) }
    func testTaskData() throws { try fuzz(FuzzTargets.taskData) }
    func testCard() throws { try fuzz(FuzzTargets.card) }
    func testHead() throws { try fuzz(FuzzTargets.head) }
    func testAdapterSet() throws { try fuzz(FuzzTargets.adapterSet) }
    func testTorchCheckpoint() throws { try fuzz(FuzzTargets.torchCheckpoint) }
    func testPackedWeights() throws { try fuzz(FuzzTargets.packedWeights) }
    func testTorchPickle() throws {
        XCTAssertEqual(FuzzTargets.torchPickle.seeds.count, 5, "torch seeds missing")
        try fuzz(FuzzTargets.torchPickle)
    }
    func testTorchHostile() throws {
        XCTAssertGreaterThanOrEqual(FuzzTargets.torchHostile.seeds.count, 15, "hostile fixtures missing")
        try fuzz(FuzzTargets.torchHostile)
    }

    /// The harness reports a trap: a child test process parses mutants with a parser that
    /// traps on one of them; it must die of the signal, print which mutant it was parsing,
    /// and leave that mutant and its note on disk.
    func testACrashIsReportedWithItsInput() throws {
        #if os(Linux)
        let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("alloy-fuzz-selftest-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["FuzzTests.FuzzTests/testCrashChild"]
        var env = ProcessInfo.processInfo.environment
        env["ALLOY_FUZZ_CRASH_CHILD"] = "1"
        env["ALLOY_FUZZ_DIR"] = dir
        env["SWIFT_BACKTRACE"] = "enable=no"
        child.environment = env
        let err = Pipe()
        child.standardError = err
        child.standardOutput = Pipe()
        try child.run()
        let output = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .uncaughtSignal, output)
        XCTAssertTrue(output.contains("FUZZ CRASH while parsing fuzz target selftest mutant 7 "), output)
        let work = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasPrefix("alloy-fuzz-") })
        let note = try String(contentsOfFile: "\(dir)/\(work)/selftest/current.txt", encoding: .utf8)
        XCTAssertTrue(note.contains("mutant 7 ") && note.contains("ALLOY_FUZZ_INDEX=7"), note)
        XCTAssertEqual(FuzzFixtures.bytes("\(dir)/\(work)/selftest/current/input.bin"), Array("trap".utf8))
        #else
        throw XCTSkip("runs the test bundle as a child process, which needs Linux's executable .xctest")
        #endif
    }

    /// The child of `testACrashIsReportedWithItsInput`: traps on mutant 7.
    func testCrashChild() throws {
        guard ProcessInfo.processInfo.environment["ALLOY_FUZZ_CRASH_CHILD"] != nil else {
            throw XCTSkip("runs only as the child process of testACrashIsReportedWithItsInput")
        }
        var n = 0
        let target = FuzzTarget(name: "selftest", seeds: [FuzzInput(name: "s", files: [FuzzFile(name: "input.bin", bytes: [1], style: .fixed)])]) { dir in
            n += 1
            if n == 8 {
                try FuzzRun.writeBytes(Array("trap".utf8), to: (dir as NSString).appendingPathComponent("input.bin"))
                let a: [Int] = []
                _ = a[n]  // an index out of range: a trap, as a parser bug would be
            }
        }
        _ = try Self.shared().fuzz(target, count: 20, seed: 1)
        XCTFail("the child should have trapped")
    }

    /// The mutator is deterministic: the same seed and index give the same mutant.
    func testMutantsAreReproducible() {
        let seeds = FuzzTargets.alloySeeds + FuzzTargets.peft.seeds
        for i in 0..<50 {
            var a = Mutator(seed: 42 &+ UInt64(i)), b = Mutator(seed: 42 &+ UInt64(i))
            let x = a.mutant(of: seeds), y = b.mutant(of: seeds)
            XCTAssertEqual(x.name, y.name)
            XCTAssertEqual(x.files.map(\.bytes), y.files.map(\.bytes), "mutant \(i)")
        }
    }

    /// Every committed crash input, replayed through its parser: each must now throw or
    /// parse, not trap. Regressions/<target>/<name>/ holds the mutated files; the target's
    /// first seed supplies the rest. On Linux each input is replayed in a child process, so an
    /// input whose fix has not landed fails this test (naming it and the signal) instead of
    /// ending the whole test run.
    func testRegressions() throws {
        let cases = try Self.regressionCases()
        XCTAssertFalse(cases.isEmpty, "no regression inputs found under Regressions/")
        for c in cases {
            print("replaying Regressions/\(c)")
            fflush(nil)
            #if os(Linux)
            let child = Process()
            child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            child.arguments = ["FuzzTests.FuzzTests/testReplayChild"]
            var env = ProcessInfo.processInfo.environment
            env["ALLOY_FUZZ_REPLAY"] = c
            child.environment = env
            let out = Pipe()
            child.standardOutput = out
            child.standardError = out
            let t0 = Date()
            try child.run()
            let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            child.waitUntilExit()
            let failed = child.terminationReason == .uncaughtSignal ? "died of signal \(child.terminationStatus)" : child.terminationStatus != 0 ? "exited with status \(child.terminationStatus)" : nil
            if let failed { XCTFail("Regressions/\(c): replay \(failed)\n" + String(output.suffix(3000))) }
            XCTAssertLessThan(Date().timeIntervalSince(t0), FuzzConfig.slowSeconds + 5, "Regressions/\(c) is slow")
            #else
            try Self.replay(c)
            #endif
        }
        print("replayed \(cases.count) regression inputs")
    }

    /// The child of `testRegressions`: replays the one input `ALLOY_FUZZ_REPLAY` names.
    func testReplayChild() throws {
        guard let c = ProcessInfo.processInfo.environment["ALLOY_FUZZ_REPLAY"] else {
            throw XCTSkip("runs only as a child process of testRegressions")
        }
        try Self.replay(c)
    }

    /// `<target>/<name>` of every folder under Regressions/.
    static func regressionCases() throws -> [String] {
        let root = FuzzFixtures.regressions("")
        let fm = FileManager.default
        var out: [String] = []
        for t in try fm.contentsOfDirectory(atPath: root).sorted() where !t.hasPrefix(".") && !t.hasSuffix(".md") {
            for name in try fm.contentsOfDirectory(atPath: (root as NSString).appendingPathComponent(t)).sorted() where !name.hasPrefix(".") {
                out.append(t + "/" + name)
            }
        }
        return out
    }

    /// Replays Regressions/<case> through its target in this process (errors are fine).
    static func replay(_ c: String) throws {
        let parts = c.split(separator: "/").map(String.init)
        guard parts.count == 2, let target = FuzzTargets.all.first(where: { $0.name == parts[0] }) else {
            throw ReplayError(message: "Regressions/\(c): no fuzz target of that name")
        }
        let cdir = FuzzFixtures.regressions(c)
        let fm = FileManager.default
        guard var input = target.seeds.first else { throw ReplayError(message: "target \(target.name) has no seeds") }
        input.name = c
        let files = ((try? fm.subpathsOfDirectory(atPath: cdir)) ?? []).filter {
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: (cdir as NSString).appendingPathComponent($0), isDirectory: &isDir) && !isDir.boolValue
        }
        guard !files.isEmpty else { throw ReplayError(message: "Regressions/\(c) is empty") }
        for f in files {
            input.files.removeAll { $0.name == f }
            input.files.append(FuzzFile(name: f, bytes: FuzzFixtures.bytes((cdir as NSString).appendingPathComponent(f)), style: .binary))
        }
        let dir = (FuzzConfig.workRoot as NSString).appendingPathComponent("regression")
        try FuzzRun.write(input, to: dir)
        let run = shared()
        run.begin("Regressions/\(c) (target \(target.name))")
        do { try target.parse(dir) } catch {}
        run.end()
    }

    override class func tearDown() {
        try? FileManager.default.removeItem(atPath: FuzzConfig.workRoot)
        super.tearDown()
    }
}

struct ReplayError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
