import XCTest
import Foundation
@testable import Encoder
import Formats
import Tensors

/// The on-disk cache of packed base weights: mapped results equal in-memory packing at every
/// precision, files that fail a check are rebuilt (never trusted, never a trap), content hashes
/// are remembered per file version, and the directory stays under its size cap.
final class PackedWeightCacheTests: XCTestCase {
    var dir = ""
    let batch: [[Int32]] = [[101, 7, 19, 42, 102], [101, 3, 102], [101, 11, 12, 13, 14, 15, 16, 102]]

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "alloy-packcache-\(UUID().uuidString)"
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    var cache: PackedWeightCache { PackedWeightCache(directory: dir, minimumBytes: 0) }

    func packFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".alloypack") }.sorted()
            .map { (dir as NSString).appendingPathComponent($0) }
    }

    /// Bit-identical hidden states with and without the cache, for a first run (packs into the
    /// file) and a second (maps it), at f32, bf16 and int8; one file per precision.
    func testMappedWeightsGiveTheSameResultsAsPackingInMemory() throws {
        for precision in Precision.allCases {
            let reference = try EncoderModel(directory: Fixture.path("tiny"), precision: precision).hiddenStates(batch).values
            let first = try EncoderModel(directory: Fixture.path("tiny"), precision: precision, packCache: cache)
            XCTAssertEqual(first.hiddenStates(batch).values, reference, "\(precision), first run")
            let second = try EncoderModel(directory: Fixture.path("tiny"), precision: precision, packCache: cache)
            XCTAssertEqual(second.hiddenStates(batch).values, reference, "\(precision), mapped")
        }
        let files = packFiles()
        XCTAssertEqual(files.count, 3)
        let hash = try EncoderModel(directory: Fixture.path("tiny")).contentHash()
        XCTAssertTrue(files.allSatisfy { ($0 as NSString).lastPathComponent.hasPrefix(hash + "-") }, "\(files)")
    }

    /// The second process reads the file's values: zeroing its data (past the header) changes
    /// what the model computes. (Values are not hashed; see the type's documentation.)
    func testASecondModelReadsTheFile() throws {
        let reference = try EncoderModel(directory: Fixture.path("tiny"), packCache: cache).hiddenStates(batch).values
        let path = try XCTUnwrap(packFiles().first)
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: path)).map { $0 }
        for i in 4096..<bytes.count { bytes[i] = 0 }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let mapped = try EncoderModel(directory: Fixture.path("tiny"), packCache: cache).hiddenStates(batch).values
        XCTAssertNotEqual(mapped, reference)
    }

    /// Truncated files, a changed magic, a changed header byte (checksum), and a well-formed
    /// header whose offsets point outside the file are refused by `open` with a reason, and
    /// `packed` rebuilds the file: results stay exact.
    func testDamagedFilesAreRefusedAndRebuilt() throws {
        let reference = try EncoderModel(directory: Fixture.path("tiny")).hiddenStates(batch).values
        let model = try EncoderModel(directory: Fixture.path("tiny"), packCache: cache)
        _ = model.hiddenStates(batch)
        let path = try XCTUnwrap(packFiles().first)
        let good = try XCTUnwrap(FileManager.default.contents(atPath: path)).map { $0 }
        let key = PackedWeightCache.Key(contentHash: try model.contentHash(), precision: .f32, isa: Kernels.isa)
        let layers = model.baseLinears()
        XCTAssertNoThrow(try cache.open(path, key: key, layers: layers))

        let headerLength = Int(good[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var damaged: [(String, [UInt8])] = [
            ("empty", []), ("magic", [0x58] + good.dropFirst()), ("header byte", good),
            ("length", Array(good[0..<8]) + [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f] + good[16...]),
        ]
        damaged[2].1[16 + headerLength / 2] ^= 0x01
        for cut in [7, 15, 16 + headerLength / 2, 16 + headerLength + 31, good.count - 1] { damaged.append(("cut at \(cut)", Array(good[0..<cut]))) }
        // A header that checks out but places a part past the end of the file.
        let text = String(decoding: good[16..<(16 + headerLength)], as: UTF8.self)
        let moved = text.replacingOccurrences(of: "[4096,", with: "[\(good.count + 4096),")
        XCTAssertNotEqual(moved, text)
        var forged = Array(good[0..<8])
        withUnsafeBytes(of: UInt64(moved.utf8.count).littleEndian) { forged += $0 }
        forged += Array(moved.utf8)
        forged += Array(moved.utf8).withUnsafeBytes { PackedWeightCache.digest($0) }
        forged += Array(good[(16 + headerLength + 32)...])
        damaged.append(("offset out of range", forged))

        for (what, bytes) in damaged {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try cache.open(path, key: key, layers: layers), what)
            let rebuilt = try EncoderModel(directory: Fixture.path("tiny"), packCache: cache).hiddenStates(batch).values
            XCTAssertEqual(rebuilt, reference, what)
            XCTAssertEqual(try XCTUnwrap(FileManager.default.contents(atPath: path)).map { $0 }, good, "\(what): rebuilt identically")
        }
        // A file for another precision or model is not read as this one.
        let other = PackedWeightCache.Key(contentHash: String(repeating: "0", count: 64), precision: .f32, isa: Kernels.isa)
        XCTAssertThrowsError(try cache.open(path, key: other, layers: layers))
    }

    /// Random byte flips anywhere in a file never crash `open`: it throws, or (for flips in the
    /// values) returns weights of the right shapes.
    func testRandomDamageNeverTraps() throws {
        let model = try EncoderModel(directory: Fixture.path("tiny"), precision: .int8, packCache: cache)
        _ = model.hiddenStates(batch)
        let path = try XCTUnwrap(packFiles().first)
        let good = try XCTUnwrap(FileManager.default.contents(atPath: path)).map { $0 }
        let key = PackedWeightCache.Key(contentHash: try model.contentHash(), precision: .int8, isa: Kernels.isa)
        var rng = SplitMix(seed: 7)
        for _ in 0..<200 {
            var bytes = good
            for _ in 0..<Int(rng.next() % 4 + 1) {
                let i = Int(rng.next() % UInt64(min(bytes.count, 6000)))
                bytes[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            if let out = try? cache.open(path, key: key, layers: model.baseLinears()) {
                XCTAssertEqual(out.count, model.baseLinears().count)
            }
        }
    }

    /// A model's content hash is computed once per file version: again only after the file changes.
    func testContentHashIsRememberedPerFileVersion() throws {
        let file = NSTemporaryDirectory() + "alloy-fp-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: file))
        var computed = 0
        func hash() throws -> String { try cache.contentHash(files: [file]) { computed += 1; return String(repeating: "a", count: 64) } }
        XCTAssertEqual(try hash(), String(repeating: "a", count: 64))
        XCTAssertEqual(try hash(), String(repeating: "a", count: 64))
        XCTAssertEqual(computed, 1)
        try Data([1, 2, 3, 4]).write(to: URL(fileURLWithPath: file))
        _ = try hash()
        XCTAssertEqual(computed, 2)
    }

    /// Beyond `maximumBytes`, the least recently used files go; the one just written stays.
    func testTheDirectoryStaysUnderItsCap() throws {
        let small = PackedWeightCache(directory: dir, minimumBytes: 0, maximumBytes: 1)
        for precision in Precision.allCases {
            _ = try EncoderModel(directory: Fixture.path("tiny"), precision: precision, packCache: small).hiddenStates(batch)
            XCTAssertEqual(packFiles().count, 1)
            XCTAssertTrue(packFiles()[0].contains("-\(precision)-"))
        }
    }

    /// A cache directory that cannot be created leaves the model packing in memory, exactly.
    func testAnUnwritableCacheFallsBackToPackingInMemory() throws {
        let file = dir + "-file"
        FileManager.default.createFile(atPath: file, contents: Data([0]))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let blocked = PackedWeightCache(directory: file + "/packed", minimumBytes: 0)   // a path under a regular file
        let reference = try EncoderModel(directory: Fixture.path("tiny")).hiddenStates(batch).values
        XCTAssertEqual(try EncoderModel(directory: Fixture.path("tiny"), packCache: blocked).hiddenStates(batch).values, reference)
    }

    /// Small models are not cached; `ALLOY_PACK_CACHE=off` turns the cache off; the directory
    /// follows ALLOY_CACHE_DIR, then XDG_CACHE_HOME, then HOME.
    func testSettings() throws {
        let big = PackedWeightCache(directory: dir)
        _ = try EncoderModel(directory: Fixture.path("tiny"), packCache: big).hiddenStates(batch)
        XCTAssertEqual(packFiles(), [])
        XCTAssertNil(PackedWeightCache.user(environment: ["ALLOY_PACK_CACHE": "off", "HOME": "/h"]))
        XCTAssertEqual(PackedWeightCache.user(environment: ["ALLOY_CACHE_DIR": "/c", "HOME": "/h"])?.directory, "/c/packed")
        XCTAssertEqual(PackedWeightCache.user(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"])?.directory, "/x/alloy/packed")
        XCTAssertEqual(PackedWeightCache.user(environment: ["HOME": "/h"])?.directory, "/h/.cache/alloy/packed")
        XCTAssertNil(PackedWeightCache.user(environment: [:]))
        let tags = Set(Precision.allCases.map { PackedWeightCache.layoutTag($0) })
        XCTAssertEqual(tags.count, 3)
    }
}
