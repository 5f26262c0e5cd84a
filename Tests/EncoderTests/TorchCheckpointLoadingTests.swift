import XCTest
import Foundation
@testable import Encoder
import Formats
import Tensors

/// An encoder loads from a folder holding config.json + pytorch_model.bin (torch.save of the
/// state dict, as transformers < 4.31 wrote it) and reproduces transformers' hidden states.
final class TorchCheckpointLoadingTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../FormatsTests/Fixtures/torch").standardized.path

    /// Fixture: Scripts/make-fixtures-torch.py (seeded BertModel, hidden 32, 2 layers); reference:
    /// transformers' last_hidden_state in fp32. Tolerance 1e-5 absolute (values of magnitude ~1).
    func testEncoderLoadsPytorchModelBin() throws {
        let model = try EncoderModel(directory: Self.folder + "/bert")
        XCTAssertEqual(model.layers, 2)
        XCTAssertEqual(model.hidden, 32)
        let outputs = try SafetensorsFile(path: Self.folder + "/bert_outputs.safetensors")
        let ids = try outputs.tensor("input_ids"), mask = try outputs.tensor("attention_mask"), ref = try outputs.tensor("base")
        let (b, l, w) = (ref.shape.dims[0], ref.shape.dims[1], ref.shape.dims[2])
        let idv = Array(ids.rawBytes.bindMemory(to: Int64.self)), mv = Array(mask.rawBytes.bindMemory(to: Int64.self))
        let batch = (0..<b).map { s in (0..<l).filter { mv[s * l + $0] == 1 }.map { Int32(idv[s * l + $0]) } }
        let h = model.hiddenStates(batch)
        let rv = try ref.floats()
        var err: Float = 0
        for s in 0..<h.count {
            for j in 0..<(h.offsets[s + 1] - h.offsets[s]) {
                for c in 0..<w { err = max(err, abs(h.values[(h.offsets[s] + j) * w + c] - rv[(s * l + j) * w + c])) }
            }
        }
        XCTAssertLessThan(err, 1e-5)
        XCTAssertGreaterThan(rv.map(abs).max() ?? 0, 0.1)  // the reference is not all zeros
    }
}
