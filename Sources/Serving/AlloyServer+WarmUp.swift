import Encoder
import Formats
import Foundation
import Tensors

extension AlloyServer {
    /// Runs before the server listens, so that neither the first request nor the first adapter
    /// loaded pays for code, buffers and connections not touched yet (TEI warms up too): the
    /// store's catalog is opened, a PEFT config and a card are parsed, and two forward passes run
    /// over a short text, one of the base and one with a zero LoRA on the first layer's linear
    /// weights, grouped per sequence as a mixed batch is. Loads nothing that stays.
    func warmUp() throws {
        _ = try registry.store.store()
        let model = encoder.model
        let ids = encoder.tokenizer.encode("a warm-up sentence", maxLength: min(16, model.maxTokens))
        _ = model.hiddenStates([ids])

        // A rank-1 LoRA whose B is zero: the output is the base's, the code path the adapters'.
        var layers: [String: LoRAWeights] = [:]
        for (name, w) in model.weights where w.shape.rank == 2 && name.hasSuffix(".weight") && !name.contains("embeddings")
            && Self.isFirstLayer(name) {
            let (out, inp) = (w.shape.dims[0], w.shape.dims[1])
            let a = try Tensor([Float](repeating: 0.01, count: inp), shape: Shape([1, inp]))
            let b = try Tensor(zeros: .f32, shape: Shape([out, 1]))
            layers[String(name.dropLast(".weight".count))] = LoRAWeights(a: a, b: b, scale: 1)
        }
        let lora = LoRAAdapter(name: "warm-up", layers: layers, head: nil)
        _ = model.hiddenStates([ids, ids], perSequence: [(lora, 1), nil])

        // The parsers an adapter's first load runs.
        _ = try ExpertCard.decode(Data(#"{"task": "warm_up", "labels": ["a", "b"], "head": {"max_length": 16}}"#.utf8), path: "warm-up card")
        let config = Data(#"{"peft_type": "LORA", "r": 1, "lora_alpha": 1, "target_modules": ["query"]}"#.utf8)
        let zero = try Tensor(zeros: .f32, shape: Shape([1, 1]))
        _ = try PEFTAdapter(source: "warm-up", config: config) {
            (["base_model.model.query.lora_A.weight", "base_model.model.query.lora_B.weight"], { _ in zero })
        }
    }

    /// Whether a canonical weight name belongs to the encoder's first layer (`….0.…`).
    static func isFirstLayer(_ name: String) -> Bool {
        name.split(separator: ".").contains("0")
    }
}
