import XCTest
import Foundation
@testable import Formats
import Tensors

final class SafetensorsReaderTests: XCTestCase {
    func testReadsEveryDTypeAsTheReferenceWroteIt() throws {
        let file = try SafetensorsFile(path: Fixtures.path("safetensors/all_dtypes.safetensors"))
        // Parsed with Alloy's exact parser: Foundation's loses the last digit of some doubles.
        let expect = try Fixtures.bytes("safetensors/all_dtypes.json").withUnsafeBytes { try JSONValue.parse($0) }
        XCTAssertEqual(file.metadata, ["note": "quote \" and é"])
        guard case .object(let tensors)? = expect["tensors"] else { return XCTFail("fixture layout") }
        XCTAssertEqual(Set(file.names), Set(tensors.map(\.0)))
        for (name, e) in tensors {
            let t = try file.tensor(name)
            XCTAssertTrue(t.isMapped)
            XCTAssertEqual(e["dtype"], .string(t.dtype.rawValue), name)
            XCTAssertEqual(e["shape"], .array(t.shape.dims.map { .integer($0) }), name)
            guard case .array(let vs)? = e["values"] else { return XCTFail(name) }
            let values: [Double] = vs.map {
                switch $0 { case .number(let d): return d; case .integer(let i): return Double(i); default: return .nan }
            }
            XCTAssertEqual(Self.doubles(t), values, name)
        }
    }

    static func doubles(_ t: Tensor) -> [Double] {
        let b = t.rawBytes
        switch t.dtype {
        case .f32, .f16, .bf16: return try! t.floats().map(Double.init)
        case .f64: return Array(b.bindMemory(to: Double.self))
        case .i64: return b.bindMemory(to: Int64.self).map(Double.init)
        case .i32: return b.bindMemory(to: Int32.self).map(Double.init)
        case .i16: return b.bindMemory(to: Int16.self).map(Double.init)
        case .i8: return b.bindMemory(to: Int8.self).map(Double.init)
        case .u8, .bool: return b.bindMemory(to: UInt8.self).map(Double.init)
        }
    }

    func testEmptyAndMetadataFreeFiles() throws {
        let empty = try SafetensorsFile(path: Fixtures.path("safetensors/empty.safetensors"))
        XCTAssertEqual(empty.tensors.count, 0)
        XCTAssertNil(empty.metadata)
        let plain = try SafetensorsFile(path: Fixtures.path("safetensors/no_metadata.safetensors"))
        XCTAssertEqual(try plain.tensor("b").floats(), [1, 1, 1, 1])
        XCTAssertThrowsError(try plain.tensor("zzz")) { XCTAssertEqual($0 as? SafetensorsError, .tensorNotFound(path: plain.path, tensor: "zzz")) }
    }

    /// Every malformed fixture is rejected with its own error case, and the message names the file.
    func testMalformedFilesAreRejectedWithTheirOwnError() throws {
        func check(_ name: String, _ matches: (SafetensorsError) -> Bool) {
            let path = Fixtures.path("safetensors/malformed/\(name).safetensors")
            XCTAssertThrowsError(try SafetensorsFile(path: path), name) { error in
                guard let e = error as? SafetensorsError else { return XCTFail("\(name): \(error)") }
                XCTAssertTrue(matches(e), "\(name): got \(e)")
                XCTAssertTrue(e.description.contains(path), "\(name): message must name the file: \(e)")
            }
        }
        check("truncated") { if case .bufferSizeMismatch = $0 { return true }; return false }
        check("too_small") { if case .fileTooSmall = $0 { return true }; return false }
        check("header_longer_than_file") { if case .headerExceedsFile = $0 { return true }; return false }
        check("header_too_large") { if case .headerTooLarge = $0 { return true }; return false }
        check("not_json") { if case .headerNotJSON = $0 { return true }; return false }
        check("not_object") { if case .headerNotObject = $0 { return true }; return false }
        check("overlapping") { if case .overlappingOffsets(_, "b", "a", 4) = $0 { return true }; return false }
        check("gap") { if case .gapInOffsets(_, "b", 4, 8) = $0 { return true }; return false }
        check("size_mismatch") { if case .sizeMismatch(_, "a", 12, 8) = $0 { return true }; return false }
        check("shape_overflow") { if case .shapeOverflow(_, "a", _) = $0 { return true }; return false }
        check("duplicate_key") { if case .headerNotJSON(_, let r) = $0 { return r.contains("duplicate key \"a\"") }; return false }
        check("unknown_dtype") { if case .unknownDType(_, "a", "Q4") = $0 { return true }; return false }
        check("trailing_bytes") { if case .bufferSizeMismatch(_, 4, 8) = $0 { return true }; return false }
        check("negative_offset") { if case .invalidEntry(_, "a", _) = $0 { return true }; return false }
        check("offsets_reversed") { if case .offsetsOutOfOrder = $0 { return true }; return false }
        check("bad_metadata") { if case .invalidMetadata = $0 { return true }; return false }
    }

    /// Random single-byte mutations and truncations of a valid file: errors, never crashes.
    func testMutatedFilesNeverCrash() throws {
        let good = try Fixtures.bytes("safetensors/all_dtypes.safetensors")
        var rng = SeededRNG(seed: 42)
        var rejected = 0
        for trial in 0..<3000 {
            var b = good
            if trial % 5 == 0 {
                b = Array(b.prefix(Int.random(in: 0..<b.count, using: &rng)))
            } else {
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    b[Int.random(in: 0..<min(b.count, 8 + 700), using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            do {
                _ = try b.withUnsafeBytes { try SafetensorsFile.parseHeader($0, path: "mutant") }
            } catch { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 2000)
    }
}

final class SafetensorsWriterTests: XCTestCase {
    /// Alloy's writer reproduces the reference library's bytes exactly.
    func testWriterMatchesReferenceBytes() throws {
        for name in ["all_dtypes", "empty", "no_metadata"] {
            let path = Fixtures.path("safetensors/\(name).safetensors")
            let file = try SafetensorsFile(path: path)
            let tensors = try file.names.map { ($0, try file.tensor($0)) }
            XCTAssertEqual(SafetensorsWriter.serialize(tensors, metadata: file.metadata), try Fixtures.bytes("safetensors/\(name).safetensors"), name)
        }
    }

    func testRoundTripIsBitExactAndDeterministic() throws {
        var rng = SeededRNG(seed: 9)
        var tensors: [(String, Tensor)] = []
        for (i, dtype) in DType.allCases.enumerated() {
            let shape = try Shape([Int.random(in: 0...5, using: &rng), Int.random(in: 1...7, using: &rng)])
            let bytes = (0..<(try shape.byteCount(of: dtype))).map { _ in UInt8.random(in: 0...255, using: &rng) }
            tensors.append(("t\(i).\(dtype.rawValue)", try bytes.withUnsafeBytes { try Tensor(dtype: dtype, shape: shape, bytes: $0) }))
        }
        let dir = temporaryDirectory(self)
        try SafetensorsWriter.write(tensors, metadata: ["k": "v"], to: dir + "/a.safetensors")
        try SafetensorsWriter.write(tensors.reversed(), metadata: ["k": "v"], to: dir + "/b.safetensors")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/a.safetensors")), try Data(contentsOf: URL(fileURLWithPath: dir + "/b.safetensors")))
        let back = try SafetensorsFile(path: dir + "/a.safetensors")
        for (name, t) in tensors { XCTAssertTrue(try back.tensor(name).bitwiseEquals(t), name) }
        XCTAssertEqual(back.metadata, ["k": "v"])
    }

    func testShardedWriteAndRead() throws {
        let dir = temporaryDirectory(self)
        let tensors = try (0..<10).map { i in ("w\(i)", try Tensor((0..<100).map { Float($0 + i) }, shape: Shape([10, 10]))) }
        let files = try SafetensorsWriter.writeSharded(tensors, directory: dir, maxShardBytes: 1000)
        XCTAssertEqual(files.count, 6)
        let source = try WeightSource(path: dir)
        XCTAssertEqual(source.files.count, 5)
        XCTAssertEqual(Set(source.names), Set(tensors.map(\.0)))
        for (n, t) in tensors { XCTAssertTrue(try source.tensor(n).bitwiseEquals(t)) }
        // An index naming a tensor that no shard holds is rejected.
        let indexPath = dir + "/model.safetensors.index.json"
        var text = try String(contentsOfFile: indexPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"weight_map\":{", with: "\"weight_map\":{\"ghost\":\"model-00001-of-00005.safetensors\",")
        try text.write(toFile: indexPath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try WeightSource(path: dir)) { XCTAssertTrue("\($0)".contains("ghost"), "\($0)") }
    }
}

final class HFConfigTests: XCTestCase {
    func testParsesAndValidates() throws {
        let dir = temporaryDirectory(self)
        let good = #"{"architectures":["BertModel"],"model_type":"bert","hidden_size":384,"num_hidden_layers":6,"num_attention_heads":12,"intermediate_size":1536,"hidden_act":"gelu","layer_norm_eps":1e-12,"vocab_size":30522,"max_position_embeddings":512,"type_vocab_size":2}"#
        try good.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let c = try HFConfig.load(path: dir + "/config.json")
        XCTAssertEqual(c.hiddenSize, 384)
        XCTAssertEqual(c.summary, "bert (BertModel): 6 layers, hidden 384, 12 heads, FFN 1536, vocab 30522, act gelu")
        try good.replacingOccurrences(of: #""hidden_size":384,"#, with: "").write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HFConfig.load(path: dir + "/config.json")) { XCTAssertTrue("\($0)".contains("hidden_size"), "\($0)") }
        try good.replacingOccurrences(of: #""num_attention_heads":12"#, with: #""num_attention_heads":7"#).write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HFConfig.load(path: dir + "/config.json")) { XCTAssertTrue("\($0)".contains("multiple"), "\($0)") }
    }
}
