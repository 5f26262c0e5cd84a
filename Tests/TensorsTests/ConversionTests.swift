import XCTest
import Foundation
import Formats
@testable import Tensors

/// f16 (numpy) and bf16 (PyTorch) conversions, from Scripts/make-fixtures-safetensors.py.
final class ConversionTests: XCTestCase {
    var fixture: SafetensorsFile!

    override func setUpWithError() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../FormatsTests/Fixtures/conversions.safetensors").standardized
        fixture = try SafetensorsFile(path: url.path)
    }

    func bits(_ t: Tensor) -> [UInt16] { Array(t.rawBytes.bindMemory(to: UInt16.self)) }

    func testF32ToF16MatchesNumpy() throws {
        let src = try fixture.tensor("src_f32")
        let ours = bits(try src.converted(to: .f16))
        let numpy = bits(try fixture.tensor("to_f16"))
        XCTAssertEqual(ours.count, 4021)
        for i in ours.indices {
            let o = Float16(bitPattern: ours[i]), n = Float16(bitPattern: numpy[i])
            if n.isNaN { XCTAssertTrue(o.isNaN, "index \(i)") } else { XCTAssertEqual(ours[i], numpy[i], "index \(i)") }
        }
    }

    func testF32ToBF16MatchesTorch() throws {
        let ours = bits(try fixture.tensor("src_f32").converted(to: .bf16))
        let torch = bits(try fixture.tensor("to_bf16"))
        for i in ours.indices {
            if DTypeConversion.bf16ToFloat(torch[i]).isNaN {
                XCTAssertTrue(DTypeConversion.bf16ToFloat(ours[i]).isNaN, "index \(i)")
            } else {
                XCTAssertEqual(ours[i], torch[i], "index \(i)")
            }
        }
    }

    func testEveryF16AndBF16BitPatternWidensExactly() throws {
        for (name, dtype) in [("all_f16_as_f32", DType.f16), ("all_bf16_as_f32", DType.bf16)] {
            let reference = try fixture.tensor(name).floats()
            let pattern = (0..<65536).map { UInt16($0) }
            let ours = try pattern.withUnsafeBytes { try Tensor(dtype: dtype, shape: Shape([65536]), bytes: $0).floats() }
            for i in 0..<65536 {
                if reference[i].isNaN { XCTAssertTrue(ours[i].isNaN) } else { XCTAssertEqual(ours[i].bitPattern, reference[i].bitPattern, "\(dtype) bits \(i)") }
            }
        }
    }
}
