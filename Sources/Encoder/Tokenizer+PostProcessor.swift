import Foundation
import Formats

/// The special tokens a `tokenizer.json` post-processor puts around a single sequence, as the
/// `tokenizers` library's `BertProcessing` (`[CLS] $A [SEP]`), `RobertaProcessing`
/// (`<s> $A </s>`), `TemplateProcessing` (its `single` template: special tokens, which may
/// stand for several ids, around one `$A`) and `ByteLevel` (offsets only; no ids) do, also
/// inside a `Sequence`. Truncation keeps room for them (`TokenizerImpl::post_process` lowers
/// `max_length` by `added_tokens(false)`).
struct SpecialTokens: Sendable, Equatable {
    var prefix: [Int32]
    var suffix: [Int32]

    static let none = SpecialTokens(prefix: [], suffix: [])

    /// Ids left for the text under a `maxLength` limit on the whole sequence.
    func budget(_ maxLength: Int) -> Int {
        let fixed = prefix.count + suffix.count
        return maxLength > fixed ? maxLength - fixed : 0
    }

    /// Reads `post_processor`; `null` means no special tokens. (A file without the key —
    /// never written by `tokenizers` — is the caller's business.)
    static func parse(_ json: TokenizerJSON) throws -> SpecialTokens {
        try parse(json.root["post_processor"], json, field: "post_processor", depth: 0)
    }

    static func parse(_ value: JSONValue?, _ json: TokenizerJSON, field: String, depth: Int) throws -> SpecialTokens {
        if TokenizerJSON.isNull(value) { return .none }
        guard depth < 8, case .object? = value, let type = TokenizerJSON.string(value?["type"]) else {
            throw json.error("\(field) must be an object with a \"type\"")
        }
        func pair(_ key: String) throws -> Int32 {
            guard case .array(let p)? = value?[key], p.count == 2, TokenizerJSON.string(p[0]) != nil,
                  let i = TokenizerJSON.int(p[1]), let id = Int32(exactly: i), id >= 0 else {
                throw json.error("\(field).\(key) must be [token, non-negative id]")
            }
            return id
        }
        switch type {
        case "BertProcessing", "RobertaProcessing":
            return SpecialTokens(prefix: [try pair("cls")], suffix: [try pair("sep")])
        case "ByteLevel":
            return .none
        case "Sequence":
            guard case .array(let list)? = value?["processors"] else { throw json.error("\(field).processors must be an array") }
            var out = SpecialTokens.none
            for (i, p) in list.enumerated() {
                let s = try parse(p, json, field: "\(field).processors[\(i)]", depth: depth + 1)
                // Each processor wraps what the previous ones produced.
                out.prefix = s.prefix + out.prefix
                out.suffix += s.suffix
            }
            return out
        case "TemplateProcessing":
            guard case .array(let single)? = value?["single"] else { throw json.error("\(field).single must be an array") }
            let specials = value?["special_tokens"]
            var out = SpecialTokens.none
            var sawSequence = false
            for (i, piece) in single.enumerated() {
                if case .object? = piece["Sequence"] {
                    guard !sawSequence, TokenizerJSON.string(piece["Sequence"]?["id"]) == "A" else {
                        throw json.error("\(field).single[\(i)]: only a single-sequence template with one $A is supported")
                    }
                    sawSequence = true
                } else if let name = TokenizerJSON.string(piece["SpecialToken"]?["id"]) {
                    guard case .array(let ids)? = specials?[name]?["ids"] else {
                        throw json.error("\(field).special_tokens has no ids for \(name.debugDescription)")
                    }
                    let list = try ids.map { v -> Int32 in
                        guard let i = TokenizerJSON.int(v), let id = Int32(exactly: i), id >= 0 else {
                            throw json.error("\(field).special_tokens[\(name.debugDescription)].ids must be non-negative integers")
                        }
                        return id
                    }
                    guard list.count <= 64 else { throw json.error("\(field).special_tokens[\(name.debugDescription)] has more than 64 ids") }
                    if sawSequence { out.suffix += list } else { out.prefix += list }
                } else {
                    throw json.error("\(field).single[\(i)] is neither a Sequence nor a SpecialToken")
                }
            }
            guard sawSequence else { throw json.error("\(field).single has no $A") }
            return out
        default:
            throw json.error("\(field) type \"\(type)\" is not supported (BertProcessing, RobertaProcessing, TemplateProcessing, ByteLevel, Sequence are)")
        }
    }
}
