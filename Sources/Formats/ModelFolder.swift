import Foundation

/// The layout of a transformers / sentence-transformers model folder, in one place.
public enum ModelFolder {
    /// The files that travel with a model's weights: its config, tokenizer and sentence-
    /// transformers pooling (relative paths; any may be absent).
    public static let sideFiles = [
        "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
        "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
    ]

    /// Copies the side files present in `source` into `destination`, replacing what is there.
    public static func copySideFiles(from source: String, to destination: String) throws {
        let fm = FileManager.default
        for rel in sideFiles {
            let src = (source as NSString).appendingPathComponent(rel), dst = (destination as NSString).appendingPathComponent(rel)
            guard fm.fileExists(atPath: src) else { continue }
            try fm.createDirectory(atPath: (dst as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if fm.fileExists(atPath: dst) { try fm.removeItem(atPath: dst) }
            try fm.copyItem(atPath: src, toPath: dst)
        }
    }
}
