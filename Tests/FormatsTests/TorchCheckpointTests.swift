import Foundation
import XCTest
import Tensors
@testable import Formats

/// `pytorch_model.bin` reading against the fixtures of Scripts/make-fixtures-torch.py: every
/// tensor must equal, bit for bit, the copy the `safetensors` library wrote from the same torch
/// tensors (exact: tolerance 0), and every hostile archive must be refused with an error naming
/// the file and the opcode or global.
final class TorchCheckpointTests: XCTestCase {
    func torch(_ rel: String) -> String { Fixtures.path("torch/" + rel) }

    /// Every tensor of `source` equals the reference file's tensor of that name: same name set,
    /// dtype, shape and bytes.
    func assertEqual(_ source: WeightSource, _ reference: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try SafetensorsFile(path: torch(reference))
        XCTAssertEqual(Set(source.names), Set(ref.names), file: file, line: line)
        XCTAssertEqual(source.count, ref.names.count, file: file, line: line)
        for name in ref.names {
            let a = try source.tensor(name), b = try ref.tensor(name)
            XCTAssertEqual(a.dtype, b.dtype, name, file: file, line: line)
            XCTAssertEqual(a.shape, b.shape, name, file: file, line: line)
            XCTAssertTrue(a.bitwiseEquals(b), "\(name) differs from \(reference)", file: file, line: line)
            let info = try XCTUnwrap(source.info(name), file: file, line: line)
            XCTAssertEqual(info.dtype, b.dtype, file: file, line: line)
            XCTAssertEqual(info.shape, b.shape, file: file, line: line)
            XCTAssertEqual(info.dataRange.count, b.byteCount, name, file: file, line: line)
        }
    }

    func testBinEqualsSafetensorsExactly() throws {
        let source = try WeightSource(path: torch("bert/pytorch_model.bin"))
        XCTAssertEqual(source.format, "pytorch")
        XCTAssertEqual(source.files.count, 1)
        XCTAssertNil(source.metadata)
        try assertEqual(source, "reference.safetensors")
        // State-dict order, as torch.save wrote it.
        XCTAssertEqual(source.names.prefix(4), ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                                                 "embeddings.token_type_embeddings.weight", "embeddings.position_ids"])
        // The old int64 position_ids buffer comes through as I64 [1, 32].
        let ids = try source.tensor("embeddings.position_ids")
        XCTAssertEqual(ids.dtype, .i64)
        XCTAssertEqual(ids.shape.dims, [1, 32])
        XCTAssertEqual(Array(ids.rawBytes.bindMemory(to: Int64.self)), (0..<32).map(Int64.init))
        // Contiguous tensors are views of the mapped file, nothing copied.
        for n in source.names { XCTAssertTrue(try source.tensor(n).isMapped, n) }
    }

    func testDirectoryAndShards() throws {
        let dir = try WeightSource(path: torch("bert"))
        XCTAssertEqual(dir.format, "pytorch")
        try assertEqual(dir, "reference.safetensors")

        let sharded = try WeightSource(path: torch("sharded"))
        XCTAssertEqual(sharded.files.count, 2)
        try assertEqual(sharded, "reference.safetensors")
        let viaIndex = try WeightSource(path: torch("sharded/pytorch_model.bin.index.json"))
        XCTAssertEqual(viaIndex.names, sharded.names)
        let oneShard = try WeightSource(path: torch("sharded/pytorch_model-00002-of-00002.bin"))
        XCTAssertLessThan(oneShard.count, sharded.count)
    }

    /// model.safetensors wins over pytorch_model.bin in one folder, as in transformers.
    func testSafetensorsPreferredInADirectory() throws {
        let dir = temporaryDirectory(self)
        try FileManager.default.createSymbolicLink(atPath: dir + "/pytorch_model.bin", withDestinationPath: torch("bert/pytorch_model.bin"))
        XCTAssertEqual(try WeightSource(path: dir).format, "pytorch")
        try FileManager.default.createSymbolicLink(atPath: dir + "/model.safetensors", withDestinationPath: torch("reference.safetensors"))
        let source = try WeightSource(path: dir)
        XCTAssertEqual(source.format, "safetensors")
        XCTAssertTrue(source.files.first is SafetensorsFile)
        XCTAssertThrowsError(try WeightSource(path: temporaryDirectory(self))) { XCTAssertTrue("\($0)".contains("pytorch_model.bin"), "\($0)") }
    }

    func testHalfAndBFloat16() throws {
        for tag in ["f16", "bf16"] {
            let source = try WeightSource(path: torch("bert_\(tag).bin"))
            try assertEqual(source, "reference_\(tag).safetensors")
            XCTAssertEqual(source.info("encoder.layer.0.attention.self.query.weight")?.dtype, tag == "f16" ? DType.f16 : DType.bf16)
            XCTAssertEqual(source.info("embeddings.position_ids")?.dtype, .i64)
        }
    }

    /// A transposed view, a column and a block are copied contiguous; a row at a storage offset
    /// stays a view; all share one storage.
    func testStridedViews() throws {
        let source = try WeightSource(path: torch("strided.bin"))
        try assertEqual(source, "strided.safetensors")
        XCTAssertTrue(try source.tensor("weight").isMapped)
        XCTAssertTrue(try source.tensor("row").isMapped)
        XCTAssertTrue(try source.tensor("rows").isMapped)
        XCTAssertFalse(try source.tensor("weight_t").isMapped)
        XCTAssertFalse(try source.tensor("column").isMapped)
        XCTAssertFalse(try source.tensor("block").isMapped)
        // The row view lies 5 floats into the matrix's storage.
        let w = try XCTUnwrap(source.info("weight")), row = try XCTUnwrap(source.info("row"))
        XCTAssertEqual(row.dataRange.lowerBound, w.dataRange.lowerBound + 5 * 4)
    }

    /// Pickle protocols 4 and 5 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL) read the same.
    func testPickleProtocols4And5() throws {
        for v in [4, 5] { try assertEqual(try WeightSource(path: torch("strided_protocol\(v).bin")), "strided.safetensors") }
    }

    /// The unpickler's caps, on pickles run directly: a stack, open marks and a container count
    /// beyond them are errors naming the cap; LONG1 is sign-extended as Python reads it.
    func testUnpicklerCaps() throws {
        let small = TorchUnpickler.Limits(stack: 100, marks: 10, memo: 5, objects: 50)
        func run(_ body: [UInt8], _ limits: TorchUnpickler.Limits = small) -> Result<PickleValue, Error> {
            var vm = TorchUnpickler(path: "caps.pkl")
            vm.limits = limits
            let bytes: [UInt8] = [0x80, 0x02] + body + [0x2E]
            return Result { try bytes.withUnsafeBytes { try vm.load($0) } }
        }
        func message(_ r: Result<PickleValue, Error>) -> String {
            if case .failure(let e) = r { return "\(e)" }
            return "accepted"
        }
        let standard = TorchUnpickler.Limits.standard
        XCTAssertTrue(message(run([UInt8](repeating: 0x4E, count: standard.stack + 1), standard)).contains("stack exceeds \(standard.stack) entries"))
        XCTAssertTrue(message(run([UInt8](repeating: 0x4E, count: 101))).contains("stack exceeds 100 entries"))
        XCTAssertTrue(message(run([UInt8](repeating: 0x28, count: 11))).contains("more than 10 open MARKs"))
        XCTAssertTrue(message(run([0x29, 0x30])).contains("stack holds 0 values"))
        XCTAssertTrue(message(run([UInt8](Array(repeating: [UInt8]([0x29, 0x30]), count: 51).joined()) + [0x4E])).contains("more than 50 tuples, lists and dicts"))
        // BINPUT at six distinct indices against a memo of five.
        XCTAssertTrue(message(run([0x4E] + (0..<6).flatMap { [0x71, UInt8($0)] })).contains("memo exceeds 5 entries"))
        XCTAssertEqual(try run([0x8A, 0x02, 0x00, 0x80]).get(), .int(-32768))
        XCTAssertEqual(try run([0x8A, 0x02, 0xFF, 0x7F]).get(), .int(32767))
        XCTAssertEqual(try run([0x4A, 0xFE, 0xFF, 0xFF, 0xFF]).get(), .int(-2))
    }

    func testTiedAndNestedStateDicts() throws {
        let tied = try WeightSource(path: torch("tied.bin"))
        try assertEqual(tied, "tied.safetensors")
        XCTAssertEqual(tied.info("embeddings.weight")?.dataRange, tied.info("decoder.weight")?.dataRange)

        let nested = try WeightSource(path: torch("nested.bin"))
        XCTAssertEqual(nested.names, ["a.weight", "a.bias"])
        XCTAssertEqual(try nested.tensor("a.bias").floats(), [0, 0])
    }

    /// The store hashes a .bin's content exactly as it hashes the same tensors in safetensors,
    /// so a base imported from either is the same base.
    func testContentHashMatchesSafetensors() throws {
        let bin = try WeightSource(path: torch("bert"))
        let st = try WeightSource(path: torch("reference.safetensors"))
        XCTAssertEqual(try AlloyFile.contentHash(of: bin), try AlloyFile.contentHash(of: st))
    }

    /// Each hand-assembled hostile pickle is refused; the message names the file and what was
    /// refused (opcode, global or tensor).
    func testHostileArchivesAreRefused() throws {
        let cases: [(String, [String])] = [
            ("global_os_system.bin", ["GLOBAL", "os.system", "offset 2"]),
            ("stack_global_popen.bin", ["STACK_GLOBAL", "subprocess.Popen"]),
            ("reduce_eval.bin", ["GLOBAL", "builtins.eval"]),
            ("reduce_storage.bin", ["REDUCE", "torch.FloatStorage"]),
            ("build_on_tensor.bin", ["BUILD", "refused on a tensor", "offset 157"]),
            ("inst.bin", ["INST", "offset 3"]),
            ("ext1.bin", ["EXT1", "offset 2"]),
            ("deep_nesting.bin", ["not a state dict", "list"]),
            ("huge_memo_get.bin", ["LONG_BINGET", "4294967295"]),
            ("storage_missing.bin", ["tensor \"w\"", "archive/data/7", "not in the archive"]),
            ("storage_path.bin", ["tensor \"w\"", "not a plain entry name"]),
            ("negative_size.bin", ["tensor \"w\"", "negative"]),
            ("overflowing_size.bin", ["tensor \"w\"", "overflow"]),
            ("offset_past_storage.bin", ["tensor \"w\"", "reach element 6 of a 4-element storage"]),
            ("storage_numel_mismatch.bin", ["tensor \"w\"", "holds 16 bytes"]),
            ("unknown_opcode.bin", ["0xFF", "offset 3"]),
            ("complex_dtype.bin", ["tensor \"w\"", "ComplexFloatStorage"]),
            ("compressed.bin", ["compressed", "method 8", "data.pkl"]),
            ("legacy.bin", ["legacy torch.save format"]),
            ("expanded.bin", ["tensor \"w\"", "stride [0, 1]", "expanded or overlapping"]),
            ("big_endian.bin", ["byteorder is \"big\""]),
        ]
        for (file, needles) in cases {
            let path = torch("hostile/" + file)
            XCTAssertThrowsError(try WeightSource(path: path), file) { error in
                XCTAssertTrue(error is TorchCheckpointError, "\(file): \(type(of: error))")
                let message = "\(error)"
                XCTAssertTrue(message.contains(path), "\(file): \(message)")
                for n in needles { XCTAssertTrue(message.contains(n), "\(file): expected \"\(n)\" in: \(message)") }
            }
        }
    }

    /// Cut anywhere, the archive is an error naming the file, never a crash or a short tensor.
    func testTruncatedArchiveIsAnError() throws {
        let bytes = try Fixtures.bytes("torch/bert/pytorch_model.bin")
        let dir = temporaryDirectory(self)
        for cut in [0, 3, 21, 22, 100, bytes.count / 2, bytes.count - 200, bytes.count - 22, bytes.count - 1] {
            let path = dir + "/cut\(cut).bin"
            try Data(bytes[0..<cut]).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try TorchCheckpoint(path: path), "cut at \(cut)") { error in
                XCTAssertTrue("\(error)".contains(path), "\(error)")
            }
        }
        // A cut that keeps the end records but drops a storage's bytes: the central directory
        // then points past the file.
        var shifted = bytes
        shifted.removeSubrange(1000..<2000)
        let path = dir + "/hole.bin"
        try Data(shifted).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TorchCheckpoint(path: path)) { XCTAssertTrue("\($0)".contains("hole.bin"), "\($0)") }
    }

    /// ZIP64: an archive whose central directory records saturate their 32-bit fields and carry
    /// the values in a ZIP64 extra field (as torch writes for entries past 4 GiB) reads the same.
    func testZip64ExtraFields() throws {
        let original = try Fixtures.bytes("torch/strided.bin")
        let rewritten = try Self.withZip64Extras(original)
        let dir = temporaryDirectory(self)
        try Data(rewritten).write(to: URL(fileURLWithPath: dir + "/zip64.bin"))
        let a = try TorchCheckpoint(path: dir + "/zip64.bin"), b = try TorchCheckpoint(path: torch("strided.bin"))
        XCTAssertEqual(a.names, b.names)
        for n in a.names { XCTAssertTrue(try a.tensor(n).bitwiseEquals(b.tensor(n)), n) }
    }

    /// Rewrites every central directory record with sizes and local offset 0xFFFFFFFF and a
    /// ZIP64 extra field (id 1) holding them, then fixes the end records' size and offset.
    static func withZip64Extras(_ b: [UInt8]) throws -> [UInt8] {
        func u16(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
        func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
        func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let eocd = try XCTUnwrap((0...(b.count - 22)).reversed().first { u32($0) == 0x0605_4B50 })
        let count = u16(eocd + 10), cdOffset = u32(eocd + 16)
        var out = Array(b[0..<cdOffset])
        var p = cdOffset
        for _ in 0..<count {
            let n = u16(p + 28), x = u16(p + 30), c = u16(p + 32)
            var rec = Array(b[p..<(p + 46 + n)])
            let csize = u32(p + 20), usize = u32(p + 24), local = u32(p + 42)
            rec.replaceSubrange(20..<28, with: [UInt8](repeating: 0xFF, count: 8))
            rec.replaceSubrange(42..<46, with: [UInt8](repeating: 0xFF, count: 4))
            let extra = le(1, 2) + le(24, 2) + le(usize, 8) + le(csize, 8) + le(local, 8) + Array(b[(p + 46 + n)..<(p + 46 + n + x)])
            rec.replaceSubrange(30..<32, with: le(extra.count, 2))
            out += rec + extra + Array(b[(p + 46 + n + x)..<(p + 46 + n + x + c)])
            p += 46 + n + x + c
        }
        let cdSize = out.count - cdOffset
        // A ZIP64 end record + locator, then the classic end record.
        let z64 = out.count
        out += le(0x0606_4B50, 4) + le(44, 8) + le(45, 2) + le(45, 2) + le(0, 4) + le(0, 4) + le(count, 8) + le(count, 8) + le(cdSize, 8) + le(cdOffset, 8)
        out += le(0x0706_4B50, 4) + le(0, 4) + le(z64, 8) + le(1, 4)
        out += le(0x0605_4B50, 4) + le(0, 4) + le(0xFFFF, 2) + le(0xFFFF, 2) + le(0xFFFF_FFFF, 4) + le(0xFFFF_FFFF, 4) + le(0, 2)
        return out
    }
}
