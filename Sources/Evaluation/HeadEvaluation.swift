import Encoder
import Foundation

/// The `head` protocol: an expert's own classification head on the (composed) encoder's
/// states, pooled as the head wants (mean for Alloy's heads, the first token for transformers'),
/// scored on a task split.
public enum HeadEvaluation {
    public static func run(encoder: SentenceEncoder, adapters: AdapterSet, head: ClassificationHead, task: TaskData,
                           batchSize: Int = 32, progress: ((Int) -> Void)? = nil) throws -> Metrics {
        let unknown = Set(task.labels).subtracting(head.labels)
        guard unknown.isEmpty else {
            throw TaskError(path: task.name, line: nil, reason: "labels \(unknown.sorted()) are not outputs of the head (\(head.labels.joined(separator: ", "))) — is this the right head for the task?")
        }
        let pooled = encoder.encode(task.texts, adapters: adapters, maxLength: head.maxLength, pooling: head.pooling, batchSize: batchSize, progress: progress)
        let predicted = pooled.map { head.predict($0) }
        return Metrics(predicted: predicted, gold: task.labels)
    }
}
