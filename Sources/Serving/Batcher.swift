import Encoder
import Foundation
import Synchronization

/// Collects the pooled vectors of one request's sequences and resumes the request when the
/// last one arrives.
final class ResultSink: Sendable {
    private struct State {
        var results: [[Float]]
        var remaining: Int
        var continuation: CheckedContinuation<[[Float]], any Error>?
    }
    private let state: Mutex<State>

    init(count: Int, continuation: CheckedContinuation<[[Float]], any Error>) {
        state = Mutex(State(results: Array(repeating: [], count: count), remaining: count, continuation: continuation))
    }

    func deliver(_ index: Int, _ vector: [Float]) {
        let done: (CheckedContinuation<[[Float]], any Error>, [[Float]])? = state.withLock { s in
            s.results[index] = vector
            s.remaining -= 1
            guard s.remaining == 0, let c = s.continuation else { return nil }
            s.continuation = nil
            return (c, s.results)
        }
        if let done { done.0.resume(returning: done.1) }
    }

    func fail(_ error: any Error) {
        let c = state.withLock { s -> CheckedContinuation<[[Float]], any Error>? in
            defer { s.continuation = nil }
            return s.continuation
        }
        c?.resume(throwing: error)
    }
}

/// What a sequence's answer is: its sentence embedding (`SentenceEncoder.sentenceVector`, as
/// `alloy embed` computes it), or its states pooled for a classification head.
enum BatchOutput: Sendable {
    case sentence(normalize: Bool)
    case pooled(Pooling)
}

/// One sequence waiting for a forward pass.
struct BatchItem: Sendable {
    let ids: [Int32]
    let group: BatchGroup
    let output: BatchOutput
    let sink: ResultSink
    let index: Int
    let enqueued: ContinuousClock.Instant
}

/// Forms batches under a token budget and runs them, one at a time, on a dedicated thread (the
/// forward pass is CPU-bound and parallel inside; it never runs on Swift's cooperative pool).
///
/// The oldest waiting sequence always opens the next batch, which is then filled, in arrival
/// order, with the sequences that can share its forward pass (the base and unmerged LoRAs mix;
/// a patched adapter set only with itself) while they fit the budget. A long input therefore
/// delays the sequences behind it by one batch at most, and none waits behind a stream of
/// newer ones.
final class Batcher: @unchecked Sendable {
    // `queue`, `head`, `stopping` and `running` are guarded by `condition`'s lock.
    private let condition = NSCondition()
    private var queue: [BatchItem] = []
    private var stopping = false
    private var running = false
    private let finished = NSCondition()
    private var threadDone = false

    let encoder: SentenceEncoder
    let maxBatchTokens: Int
    let metrics: ServerMetrics
    /// How far past the head of the queue a batch looks for companions.
    let scanLimit = 4096

    init(encoder: SentenceEncoder, maxBatchTokens: Int, metrics: ServerMetrics) {
        self.encoder = encoder
        self.maxBatchTokens = max(1, maxBatchTokens)
        self.metrics = metrics
    }

    /// Starts the inference thread (once).
    func start() {
        condition.lock()
        defer { condition.unlock() }
        guard !running else { return }
        running = true
        let thread = Thread { [self] in self.loop() }
        thread.name = "alloy-serve-batcher"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Queues `ids` (one request's sequences) and returns their vectors, in order.
    func embed(_ ids: [[Int32]], group: BatchGroup, output: BatchOutput) async throws -> [[Float]] {
        if ids.isEmpty { return [] }
        return try await withCheckedThrowingContinuation { c in
            let sink = ResultSink(count: ids.count, continuation: c)
            let now = ContinuousClock.now
            condition.lock()
            guard !stopping, running else {
                condition.unlock()
                sink.fail(ServingError.shuttingDown)
                return
            }
            for (i, seq) in ids.enumerated() {
                queue.append(BatchItem(ids: seq, group: group, output: output, sink: sink, index: i, enqueued: now))
            }
            metrics.queueDepth.set(Double(queue.count))
            condition.signal()
            condition.unlock()
        }
    }

    /// Stops taking work; the thread finishes what is queued, then exits. Returns once it has.
    func drainAndStop() async {
        guard beginStop() else { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [self] in
                finished.lock()
                while !threadDone { finished.wait() }
                finished.unlock()
                c.resume()
            }
        }
    }

    /// Marks the batcher stopping; whether its thread was running.
    private func beginStop() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        stopping = true
        condition.signal()
        return running
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                break
            }
            let batch = takeBatch()
            metrics.queueDepth.set(Double(queue.count))
            condition.unlock()
            run(batch)
        }
        finished.lock()
        threadDone = true
        finished.broadcast()
        finished.unlock()
    }

    /// Removes and returns the next batch. Called with the lock held and `queue` not empty.
    private func takeBatch() -> [BatchItem] {
        let first = queue[0]
        let key = first.group.key
        var picked = [0]
        var tokens = first.ids.count
        var i = 1
        while i < queue.count, i < scanLimit, tokens < maxBatchTokens {
            let item = queue[i]
            if item.group.key == key, tokens + item.ids.count <= maxBatchTokens {
                picked.append(i)
                tokens += item.ids.count
            }
            i += 1
        }
        let batch = picked.map { queue[$0] }
        if picked.count == queue.count {
            queue.removeAll(keepingCapacity: true)
        } else {
            var keep: [BatchItem] = []
            keep.reserveCapacity(queue.count - picked.count)
            var p = 0
            for (j, item) in queue.enumerated() {
                if p < picked.count, picked[p] == j { p += 1 } else { keep.append(item) }
            }
            queue = keep
        }
        return batch
    }

    private func run(_ batch: [BatchItem]) {
        let start = ContinuousClock.now
        for item in batch { metrics.queueTime.record(start - item.enqueued) }
        let ids = batch.map(\.ids)
        let model = encoder.model
        let h: HiddenStates
        switch batch[0].group {
        case .exclusive(_, let set):
            h = model.hiddenStates(ids, adapters: set)
        case .shared:
            let per: [(adapter: LoRAAdapter, scale: Float)?] = batch.map { item in
                if case .shared(let l?) = item.group { return (l, 1) }
                return nil
            }
            h = model.hiddenStates(ids, perSequence: per.contains { $0 != nil } ? per : nil)
        }
        for (s, item) in batch.enumerated() {
            switch item.output {
            case .sentence(let normalize): item.sink.deliver(item.index, encoder.sentenceVector(h, sequence: s, normalized: normalize))
            case .pooled(let pooling): item.sink.deliver(item.index, pooling.pool(h, sequence: s))
            }
        }
        metrics.inferenceTime.record(ContinuousClock.now - start)
        metrics.batchSequences.record(Double(batch.count))
        metrics.batchTokens.record(Double(ids.reduce(0) { $0 + $1.count }))
    }
}
