import CKernels
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The worker threads `Parallel` runs its tasks on: they poll for the next parallel loop for a
/// short while after finishing one, then sleep.
///
/// A forward pass over one sequence is ~40 parallel loops of 100–300 µs each. Waking a sleeping
/// worker (what `DispatchQueue.concurrentPerform` does at every loop) took 33–47 µs on this
/// project's 2-core VMs, measured: the worker started its share that late in every loop, and a
/// one-sequence pass ran 1.3× faster on two cores than on one. Keeping workers spinning between
/// the loops of one pass is what OpenMP runtimes (`KMP_BLOCKTIME`) and ONNX Runtime's thread pool
/// do; the spin ends after `spinNanoseconds`, so an idle process costs nothing.
///
/// One loop runs on the pool at a time; a loop started while another runs (another thread's, or
/// one nested in a task) runs on `concurrentPerform` instead.
final class SpinPool: @unchecked Sendable {
    /// How long a worker polls for the next loop before it sleeps: the loops of one forward pass
    /// follow each other within microseconds; between passes the cores are left to others.
    static let spinNanoseconds: UInt64 = 50_000
    /// How long the caller polls for the loop's last tasks before it sleeps until they finish:
    /// longer than a task normally runs, and short enough that a worker preempted mid-task (the
    /// cores shared with other processes) gets the caller's core instead of waiting behind it.
    static let waitNanoseconds: UInt64 = 200_000

    private let workers: Int
    /// The loop in one word: generation (bits 40…63), task count (20…39), next unclaimed task
    /// (0…19). A task is claimed by a compare-and-swap of the whole word, so a late worker never
    /// claims a task of a loop that has ended; once claimed, the loop cannot end before the task
    /// has run, and its body is read from `slot` only then.
    private let state = Atomic<UInt64>(0)
    static let maxTasks = 1 << 20
    /// Tasks of the current loop finished.
    private let finished = Atomic<Int>(0)
    /// Workers asleep (or about to be) on `wake`.
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    /// The current loop's body: written before the loop is published, cleared once all of its
    /// tasks have finished, read by a thread only while it holds a claimed task.
    private let slot: UnsafeMutablePointer<((Int) -> Void)?>
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    /// The caller sleeps on `done` (under `mutex`) while `callerWaits`.
    private var done = pthread_cond_t()
    private let callerWaits = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)

    init(workers: Int) {
        self.workers = workers
        slot = .allocate(capacity: 1)
        slot.initialize(to: nil)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        pthread_cond_init(&done, nil)
    }

    /// Runs `body(i)` for each `i` in `0..<count` on the calling thread and the workers; false
    /// (nothing run) when the pool is running another loop or `count` is too large for it.
    func run(count: Int, _ body: (Int) -> Void) -> Bool {
        guard count > 0 else { return true }
        guard count < Self.maxTasks, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        startWorkers()
        withoutActuallyEscaping(body) { body in
            slot.pointee = body
            finished.store(0, ordering: .relaxed)
            let generation = ((state.load(ordering: .relaxed) >> 40) &+ 1) & 0xFF_FFFF
            state.store(generation << 40 | UInt64(count) << 20, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&wake)
                pthread_mutex_unlock(&mutex)
            }
            work(generation: generation)
            if finished.load(ordering: .acquiring) < count {
                let deadline = Self.monotonicNanoseconds() + Self.waitNanoseconds
                var polls = 0
                while finished.load(ordering: .acquiring) < count {
                    alloy_cpu_relax()
                    polls += 1
                    if polls & 63 == 0, Self.monotonicNanoseconds() > deadline {
                        pthread_mutex_lock(&mutex)
                        callerWaits.store(true, ordering: .sequentiallyConsistent)
                        while finished.load(ordering: .sequentiallyConsistent) < count { pthread_cond_wait(&done, &mutex) }
                        callerWaits.store(false, ordering: .relaxed)
                        pthread_mutex_unlock(&mutex)
                    }
                }
            }
            slot.pointee = nil
        }
        return true
    }

    /// Claims and runs tasks of loop `generation` until none is left.
    private func work(generation: UInt64) {
        var current = state.load(ordering: .acquiring)
        while current >> 40 == generation {
            let count = (current >> 20) & 0xF_FFFF, index = current & 0xF_FFFF
            guard index < count else { return }
            let (exchanged, now) = state.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged {
                runTask(Int(index))
                if finished.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue == Int(count),
                   callerWaits.load(ordering: .sequentiallyConsistent) {
                    pthread_mutex_lock(&mutex)
                    pthread_cond_broadcast(&done)
                    pthread_mutex_unlock(&mutex)
                }
                current = state.load(ordering: .acquiring)
            } else {
                current = now
            }
        }
    }

    /// Runs a claimed task; its copy of the body is released on return, before the task counts
    /// as finished (the loop's `withoutActuallyEscaping` checks that no copy outlives it).
    @inline(never)
    private func runTask(_ index: Int) {
        slot.pointee!(index)
    }

    private func startWorkers() {
        guard !started.load(ordering: .acquiring) else { return }
        started.store(true, ordering: .releasing)
        for _ in 0..<workers {
            var thread = pthread_t()
            let context = Unmanaged.passRetained(self).toOpaque()
            pthread_create(&thread, nil, { raw in
                Unmanaged<SpinPool>.fromOpaque(raw!).takeRetainedValue().workerLoop()
                return nil
            }, context)
            pthread_detach(thread)
        }
    }

    private func workerLoop() -> Never {
        var seen: UInt64 = 0
        while true {
            // Poll for a new generation, then sleep until one is published.
            let deadline = Self.monotonicNanoseconds() + Self.spinNanoseconds
            var polls = 0
            while state.load(ordering: .acquiring) >> 40 == seen {
                alloy_cpu_relax()
                polls += 1
                if polls & 63 == 0, Self.monotonicNanoseconds() > deadline {
                    pthread_mutex_lock(&mutex)
                    sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
                    while state.load(ordering: .sequentiallyConsistent) >> 40 == seen { pthread_cond_wait(&wake, &mutex) }
                    sleepers.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                    pthread_mutex_unlock(&mutex)
                }
            }
            seen = state.load(ordering: .acquiring) >> 40
            work(generation: seen)
        }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}
