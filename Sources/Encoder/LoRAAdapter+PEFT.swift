import Foundation
import Formats
import Tensors

extension LoRAAdapter {
    /// Loads a PEFT LoRA folder for `model`: module paths are mapped to the base's names and
    /// every A/B shape is checked against the base weight it updates. A `classifier` in
    /// `modules_to_save` becomes the adapter's head, labelled with `labels`.
    public convenience init(peft directory: String, for model: EncoderModel, labels: [String] = []) throws {
        try self.init(peft: PEFTAdapter(directory: directory), name: (directory as NSString).lastPathComponent,
                      card: ExpertCard.near(directory), for: model, labels: labels)
    }

    /// Builds the adapter from a PEFT LoRA already read (from a folder, or a store's blobs held
    /// in memory); `card` is the expert card that goes with it, if any (head pooling and
    /// token limit).
    public convenience init(peft: PEFTAdapter, name: String, card: ExpertCard?, for model: EncoderModel, labels: [String] = []) throws {
        let directory = peft.directory
        var layers: [String: LoRAWeights] = [:]
        for m in peft.modules {
            let path = model.architecture.canonical(m.path)
            guard let w = model.weights[path + ".weight"] else {
                throw EncoderError.adapter(path: directory, reason: "targets \"\(m.path)\", which the base model has no weight for — was it made for another architecture?")
            }
            guard w.shape.rank == 2 else {
                throw EncoderError.adapter(path: directory, reason: "targets \"\(m.path)\", a \(w.shape.rank)-D weight (\(w.shape)); LoRA applies to matrices (Linear layers) only")
            }
            let (out, inp) = (w.shape.dims[0], w.shape.dims[1])
            guard m.a.shape.dims[1] == inp, m.b.shape.dims[0] == out else {
                throw EncoderError.shapeMismatch(source: directory, tensor: m.path + ".lora_A/lora_B",
                                                 expected: [out, inp], found: [m.b.shape.dims[0], m.a.shape.dims[1]])
            }
            layers[path] = LoRAWeights(a: m.a, b: m.b, scale: m.scale)
        }
        var head: ClassificationHead? = nil
        if ClassificationHead.isTransformersPEFTHead(peft, card: card) {
            head = try ClassificationHead.peft(peft, layers: layers, model: model, labels: labels, card: card)
        } else if let w = peft.savedTensors.first(where: { $0.key.hasSuffix("classifier.weight") })?.value,
           let b = peft.savedTensors.first(where: { $0.key.hasSuffix("classifier.bias") })?.value {
            guard w.shape.rank == 2, w.shape.dims[1] == model.hidden else {
                throw EncoderError.shapeMismatch(source: directory, tensor: "classifier.weight", expected: [w.shape.dims[0], model.hidden], found: w.shape.dims)
            }
            guard labels.isEmpty || labels.count == w.shape.dims[0] else {
                throw EncoderError.head(path: directory, reason: "\(labels.count) labels given but the classifier has \(w.shape.dims[0]) outputs")
            }
            head = try ClassificationHead(weight: w, bias: b, labels: labels)
            head?.maxLength = card?.head?.maxLength
        }
        self.init(name: name, layers: layers, head: head)
    }
}
