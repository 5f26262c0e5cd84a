import XCTest
import Foundation
@testable import Formats
import Tensors

final class AlloyContainerTests: XCTestCase {
    /// Random tensors of every dtype; floats include NaN (quiet and signalling payloads),
    /// ±Inf, subnormals, ±0 and the extremes.
    func sampleTensors(seed: UInt64, scale: Int = 1) throws -> [(String, Tensor)] {
        var rng = SeededRNG(seed: seed)
        var out: [(String, Tensor)] = []
        let specials32: [UInt32] = [0x7FC0_0000, 0x7F80_0001, 0xFFC1_2345, 0x7F80_0000, 0xFF80_0000, 0x0000_0001, 0x807F_FFFF,
                                    0x8000_0000, 0x0000_0000, 0x7F7F_FFFF, 0x0080_0000]
        let specials16: [UInt16] = [0x7E00, 0x7C01, 0xFE33, 0x7C00, 0xFC00, 0x0001, 0x83FF, 0x8000, 0x0000, 0x7BFF, 0x7FC1, 0xFF81]
        for dtype in DType.allCases {
            for (k, dims) in [[0], [1], [3, 5], [257 * scale, 129], [70_001 * scale]].enumerated() {
                let shape = try Shape(dims)
                let n = shape.elementCount
                var bytes = [UInt8](repeating: 0, count: try shape.byteCount(of: dtype))
                bytes.withUnsafeMutableBytes { b in
                    switch dtype {
                    case .f32:
                        let p = b.bindMemory(to: Float.self)
                        for i in 0..<n { p[i] = Float(Double.random(in: -1...1, using: &rng) * pow(10, Double.random(in: -6...2, using: &rng))) }
                        let u = b.bindMemory(to: UInt32.self)
                        for (j, s) in specials32.enumerated() where j < n { u[(j * 7919) % n] = s }
                    case .f16, .bf16:
                        let u = b.bindMemory(to: UInt16.self)
                        for i in 0..<n {
                            let f = Float(Double.random(in: -2...2, using: &rng))
                            u[i] = dtype == .f16 ? DTypeConversion.floatToF16(f) : DTypeConversion.floatToBF16(f)
                        }
                        for (j, s) in specials16.enumerated() where j < n { u[(j * 7919) % n] = s }
                    case .f64:
                        let p = b.bindMemory(to: Double.self)
                        for i in 0..<n { p[i] = Double.random(in: -1e3...1e3, using: &rng) }
                        for (j, s) in [Double.nan, .infinity, -.infinity, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude].enumerated() where j < n { p[(j * 7919) % n] = s }
                    default:
                        for i in 0..<b.count { b[i] = UInt8.random(in: 0...255, using: &rng) }
                        if dtype == .bool { for i in 0..<b.count { b[i] &= 1 } }
                    }
                }
                out.append(("\(dtype.rawValue).\(k)", try bytes.withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, bytes: $0) }))
            }
        }
        // A mostly-zero tensor, which the automatic codec stores sparse.
        var sparse = [Float](repeating: 0, count: 200_000)
        for _ in 0..<3000 { sparse[Int.random(in: 0..<sparse.count, using: &rng)] = Float.random(in: -0.01...0.01, using: &rng) }
        sparse[5] = -0.0
        sparse[6] = .nan
        out.append(("delta.sparse", try Tensor(sparse, shape: Shape([400, 500]))))
        return out
    }

    func roundTrip(_ tensors: [(String, Tensor)], codec: (Tensor) -> AlloyCodec) throws -> AlloyFile {
        let dir = temporaryDirectory(self)
        let path = dir + "/t.alloy"
        try AlloyWriter.write(tensors.map { .init(name: $0.0, tensor: $0.1, codec: codec($0.1)) }, metadata: [("kind", .string("base"))], to: path)
        return try AlloyFile(path: path)
    }

    func testLosslessRoundTripsAreBitExactForEveryDTypeAndCodec() throws {
        let tensors = try sampleTensors(seed: 1)
        for choice in ["auto", "raw", "float", "sparse"] {
            let file = try roundTrip(tensors) { t in
                switch choice {
                case "raw": return .raw
                case "float": return t.dtype.isFloatingPoint ? .float : .raw
                case "sparse": return AlloyCodec.sparse.applies(to: t.dtype, shape: t.shape) ? .sparse : .raw
                default: return AlloyCodec.automatic(for: t)
                }
            }
            for (name, t) in tensors {
                XCTAssertTrue(try file.tensor(name).bitwiseEquals(t), "\(choice): \(name)")
            }
            XCTAssertNoThrow(try file.verify(), choice)
        }
        let auto = try roundTrip(tensors) { AlloyCodec.automatic(for: $0) }
        XCTAssertEqual(auto.entry("delta.sparse")?.codec, .sparse)
        XCTAssertEqual(auto.entry("F32.3")?.codec, .float)
        XCTAssertEqual(auto.entry("I64.3")?.codec, .raw)
        XCTAssertTrue(try auto.tensor("I64.3").isMapped, "raw tensors are zero-copy views")
    }

    func testWriterIsDeterministicAndHashIsCodecIndependent() throws {
        let tensors = try sampleTensors(seed: 2)
        let a = try AlloyWriter.encode(tensors.map { .init(name: $0.0, tensor: $0.1, codec: AlloyCodec.automatic(for: $0.1)) }, metadata: [("kind", .string("base"))]).bytes
        let b = try AlloyWriter.encode(tensors.reversed().map { .init(name: $0.0, tensor: $0.1, codec: AlloyCodec.automatic(for: $0.1)) }, metadata: [("kind", .string("base"))]).bytes
        XCTAssertEqual(a, b)
        let raw = try roundTrip(tensors) { _ in .raw }
        let auto = try roundTrip(tensors) { AlloyCodec.automatic(for: $0) }
        XCTAssertEqual(raw.contentHash, auto.contentHash)
        XCTAssertNotEqual(raw.mapping.size, auto.mapping.size)
    }

    func testLossyCodecsAreBoundedAndRecorded() throws {
        var rng = SeededRNG(seed: 3)
        let values = (0..<(64 * 300)).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
        let t = try Tensor(values, shape: Shape([64, 300]))
        for (codec, tolerance) in [(AlloyCodec.f16, Float(2.5e-4)), (.bf16, 2e-3), (.int8Row, 0.5 / 127 * 0.51)] {
            let file = try roundTrip([("w", t)]) { _ in codec }
            let back = try file.tensor("w").floats()
            XCTAssertEqual(back.count, values.count)
            let err = zip(back, values).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(err, tolerance, "\(codec)")
            XCTAssertEqual(file.metadata["lossy"], .object([("w", .string(codec.description))]))
            XCTAssertNoThrow(try file.verify(), "the hash covers the decoded lossy values")
        }
        XCTAssertThrowsError(try roundTrip([("w", try Tensor(zeros: .i32, shape: Shape([4])))]) { _ in .f16 })
    }

    /// A 10%-density sparse delta stays within 10% of the order-0 entropy bound of its index
    /// gaps plus its values' byte planes (docs/FORMAT.md, "Entropy bound").
    func testSparseCodecIsWithinTenPercentOfEntropyBound() throws {
        var rng = SeededRNG(seed: 4)
        let n = 2_000_000
        var dense = [Float](repeating: 0, count: n)
        var indices: [Int] = []
        for i in 0..<n where Double.random(in: 0..<1, using: &rng) < 0.1 {
            // Box–Muller normal values, as in a fine-tuning delta.
            let u1 = Double.random(in: Double.ulpOfOne..<1, using: &rng), u2 = Double.random(in: 0..<1, using: &rng)
            dense[i] = Float(1e-3 * (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
            if dense[i].bitPattern != 0 { indices.append(i) }
        }
        let file = try roundTrip([("delta", try Tensor(dense, shape: Shape([n])))]) { _ in .sparse }
        let stored = file.entry("delta")!.storedBytes
        func entropy(_ counts: [Int: Int], total: Int) -> Double {
            counts.values.reduce(0.0) { let p = Double($1) / Double(total); return $0 - p * log2(p) }
        }
        var gapCounts: [Int: Int] = [:]
        var last = -1
        for i in indices { gapCounts[i - last - 1, default: 0] += 1; last = i }
        var bound = Double(indices.count) * entropy(gapCounts, total: indices.count) / 8
        for plane in 0..<4 {
            var counts: [Int: Int] = [:]
            for i in indices {
                let v = dense[i].bitPattern, r = (v << 1) | (v >> 31)
                counts[Int((r >> UInt32(24 - 8 * plane)) & 0xFF), default: 0] += 1
            }
            bound += Double(indices.count) * entropy(counts, total: indices.count) / 8
        }
        XCTAssertLessThanOrEqual(Double(stored), 1.10 * bound, "stored \(stored) bytes, bound \(Int(bound))")
        XCTAssertTrue(try file.tensor("delta").bitwiseEquals(try Tensor(dense, shape: Shape([n]))))
        print("sparse 10%: stored \(stored) B, entropy bound \(Int(bound)) B, ratio to bound \(String(format: "%.3f", Double(stored) / bound)), ×\(String(format: "%.1f", Double(n * 4) / Double(stored))) vs dense f32")
    }

    // MARK: corruption

    func smallFile() throws -> [UInt8] {
        var rng = SeededRNG(seed: 5)
        let a = try Tensor((0..<600).map { _ in Float.random(in: -1...1, using: &rng) }, shape: Shape([20, 30]))
        var s = [Float](repeating: 0, count: 800)
        for i in stride(from: 3, to: 800, by: 37) { s[i] = Float(i) / 100 }
        let ids = try (0..<40).map { Int64($0) }.withUnsafeBytes { try Tensor(dtype: .i64, shape: Shape([40]), bytes: $0) }
        return try AlloyWriter.encode([
            .init(name: "a", tensor: a, codec: .float),
            .init(name: "s", tensor: try Tensor(s, shape: Shape([800])), codec: .sparse),
            .init(name: "ids", tensor: ids, codec: .raw),
            .init(name: "q", tensor: a, codec: .int8Row),
        ], metadata: [("kind", .string("task-vector"))]).bytes
    }

    /// Opens `bytes` and decodes everything; returns the error, if any.
    func readAll(_ bytes: [UInt8], path: String) -> Error? {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let f = try AlloyFile(path: path)
            try f.verify()
            return nil
        } catch { return error }
    }

    func testEverySingleFlippedByteIsDetected() throws {
        let good = try smallFile()
        let path = temporaryDirectory(self) + "/f.alloy"
        XCTAssertNil(readAll(good, path: path))
        var rng = SeededRNG(seed: 6)
        var namedChunk = 0
        for i in 0..<good.count {
            var b = good
            b[i] ^= UInt8.random(in: 1...255, using: &rng)
            guard let e = readAll(b, path: path) else { return XCTFail("flip at byte \(i) of \(good.count) went unnoticed") }
            if case .chunkChecksum(_, let t, let c, _, _)? = e as? AlloyFormatError {
                XCTAssertTrue(["a", "s", "ids", "q"].contains(t) && c >= 0)
                namedChunk += 1
            }
        }
        XCTAssertGreaterThan(namedChunk, good.count / 2, "flips in chunk data are reported with tensor and chunk")
    }

    func testTruncationMagicVersionAndCapsAreRejected() throws {
        let good = try smallFile()
        let path = temporaryDirectory(self) + "/f.alloy"
        for cut in [0, 7, 31, 32, 100, good.count / 2, good.count - 1] {
            XCTAssertNotNil(readAll(Array(good.prefix(cut)), path: path), "truncated at \(cut)")
        }
        var b = good; b[1] = UInt8(ascii: "X")
        XCTAssertEqual(readAll(b, path: path) as? AlloyFormatError, .badMagic(path: path))
        b = good; b[8] = 2
        XCTAssertEqual(readAll(b, path: path) as? AlloyFormatError, .unsupportedVersion(path: path, version: 2))
        XCTAssertTrue("\(AlloyFormatError.unsupportedVersion(path: path, version: 2))".contains("upgrade Alloy"))
        b = good; b[16] = 0xFF; b[17] = 0xFF; b[18] = 0xFF; b[19] = 0x7F
        guard case .headerSize? = readAll(b, path: path) as? AlloyFormatError else { return XCTFail("oversized header accepted") }
        // A header with a huge tensor count, re-checksummed so only the cap can reject it.
        b = good
        let h = Int(b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self) })
        let m = Int(b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 32, as: UInt32.self) })
        b.replaceSubrange((36 + m)..<(40 + m), with: [0xFF, 0xFF, 0xFF, 0x0F])
        let crc = b[32..<(32 + h)].withUnsafeBytes { Deflate.crc32($0) }
        withUnsafeBytes(of: crc.littleEndian) { b.replaceSubrange(24..<28, with: $0) }
        guard case .malformedHeader(_, let reason)? = readAll(b, path: path) as? AlloyFormatError else { return XCTFail("count cap") }
        XCTAssertTrue(reason.contains("tensor count"), reason)
        b = good; b.append(0)
        XCTAssertNotNil(readAll(b, path: path), "trailing byte")
    }

    /// ≥ 10,000 random mutations (flips, overwrites, insertions, deletions, truncations) of
    /// valid files: every one is either read or rejected with an error, never a crash.
    func testFuzzedFilesNeverCrash() throws {
        let good = try smallFile()
        var rng = SeededRNG(seed: 7)
        var rejected = 0
        let trials = 10_000
        for _ in 0..<trials {
            var b = good
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<max(1, b.count), using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0 where !b.isEmpty: b[i] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                case 1 where !b.isEmpty: b[i] = UInt8.random(in: 0...255, using: &rng)
                case 2: b.insert(UInt8.random(in: 0...255, using: &rng), at: min(i, b.count))
                case 3 where !b.isEmpty: b.remove(at: i)
                default: b = Array(b.prefix(i))
                }
            }
            // Half the mutants get their header CRC fixed, so the header parser itself is fuzzed.
            if Bool.random(using: &rng), b.count >= 32 {
                let h = Int(b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self) }.littleEndian & 0xFFFF_FFFF)
                if h <= b.count - 32 {
                    let crc = b[32..<(32 + h)].withUnsafeBytes { Deflate.crc32($0) }
                    withUnsafeBytes(of: crc.littleEndian) { b.replaceSubrange(24..<28, with: $0) }
                }
            }
            let parsed: Bool = b.withUnsafeBytes { raw in
                guard let (_, entries) = try? AlloyFile.parse(raw, path: "fuzz") else { return false }
                // Decode each chunk directly (bypassing CRCs) to fuzz the codecs too.
                for e in entries {
                    let out = UnsafeMutableRawPointer.allocate(byteCount: max(1, e.rawBytes), alignment: 64)
                    defer { out.deallocate() }
                    for (c, ch) in e.chunks.enumerated() {
                        let r = e.chunkRange(c)
                        try? ChunkCodec.decode(e.codec, dtype: e.dtype, shape: e.shape,
                                               stored: UnsafeRawBufferPointer(rebasing: raw[ch.offset..<(ch.offset + ch.size)]),
                                               count: r.count, into: out + r.lowerBound * e.dtype.byteSize)
                    }
                }
                return true
            }
            if !parsed { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, trials / 4)
        XCTAssertLessThan(rejected, trials, "some mutants must reach the codecs")
        print("fuzz: \(trials) mutants, \(rejected) rejected at open, \(trials - rejected) parsed and decoded chunk by chunk")
    }
}
