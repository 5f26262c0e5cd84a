import Foundation
import Formats
import Tensors

extension ClassificationHead {
    /// Labels from the expert card (`card.json`, `labels`) in `dir` or its parent; empty when
    /// there is no card or it records none. A card that is not valid is an error naming it.
    public static func labels(near dir: String) throws -> [String] { try ExpertCard.near(dir)?.labels ?? [] }

    /// The token limit recorded in the card in `dir` or its parent (`head.max_length`), if any.
    public static func maxLength(near dir: String) throws -> Int? { try ExpertCard.near(dir)?.head?.maxLength }

    /// Loads a head from `path`: a transformers `*ForSequenceClassification` checkpoint (or its
    /// store checkout), a `head.safetensors` file (classifier.weight/bias), a directory holding
    /// one, or a PEFT folder whose modules_to_save hold the classifier.
    public static func load(path: String, model: EncoderModel) throws -> ClassificationHead {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw EncoderError.head(path: path, reason: "no such file or directory")
        }
        let dir = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
        if try transformersLayout(directory: dir) != nil {
            var head = try transformers(directory: dir)
            guard head.inputWidth == model.hidden else {
                throw EncoderError.head(path: dir, reason: "the head takes vectors of \(head.inputWidth), the encoder's hidden size is \(model.hidden)")
            }
            if let m = head.maxLength { head.maxLength = min(m, model.maxTokens) }
            return head
        }
        let labels = try labels(near: dir)
        if isDir.boolValue, FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("adapter_config.json")) {
            guard var h = try LoRAAdapter(peft: path, for: model, labels: labels).head else {
                throw EncoderError.head(path: path, reason: "the PEFT folder has no classifier in modules_to_save")
            }
            h.maxLength = try maxLength(near: dir)
            return h
        }
        let file = isDir.boolValue ? (path as NSString).appendingPathComponent("head.safetensors") : path
        let f = try SafetensorsFile(path: file)
        return try linear(names: f.names, tensor: f.tensor, labels: labels, maxLength: maxLength(near: dir), model: model, source: file)
    }

    /// The linear head held by `classifier.weight` and `classifier.bias` among `names` (a
    /// head.safetensors, or a store's head blob in memory), checked against `model`'s width
    /// and the `labels`' count; `source` names it in errors.
    public static func linear(names: [String], tensor: (String) throws -> Tensor, labels: [String], maxLength: Int?,
                              model: EncoderModel, source file: String) throws -> ClassificationHead {
        guard let w = names.first(where: { $0.hasSuffix("classifier.weight") }), let b = names.first(where: { $0.hasSuffix("classifier.bias") }) else {
            throw EncoderError.head(path: file, reason: "needs classifier.weight and classifier.bias")
        }
        var head = try ClassificationHead(weight: tensor(w), bias: tensor(b), labels: labels)
        head.maxLength = maxLength
        guard head.inputWidth == model.hidden else {
            throw EncoderError.shapeMismatch(source: file, tensor: w, expected: [head.count, model.hidden], found: head.weight.shape.dims)
        }
        if !labels.isEmpty, labels.count != head.count {
            throw EncoderError.head(path: file, reason: "card.json names \(labels.count) labels but the head has \(head.count) outputs")
        }
        return head
    }
}
