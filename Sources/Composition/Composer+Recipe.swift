import Foundation

extension Composer {
    /// How `alloy compose` finds the weights.
    public enum Method: String, CaseIterable, Sendable {
        /// LoraHub-style CMA-ES on a few labelled examples (`learn`).
        case learned
        /// ELM-style nearest expert (`retrieve`).
        case retrieval
    }

    /// A recipe for `task` over the bench's experts, with a comment saying how it was found:
    /// what `alloy compose` writes.
    /// - Parameters:
    ///   - base: the base model as the recipe names it.
    ///   - shots, budget, l1, seed: the learned method's settings (see `learn`).
    public static func composeRecipe(_ bench: Workbench, base: String, task: String, method: Method,
                                     shots: Int = 5, budget: Int = 40, l1: Double = 0.05, seed: UInt64 = 0) throws -> String {
        let names = bench.experts.map(\.name)
        switch method {
        case .learned:
            let l = try learn(bench, task: task, shots: shots, budget: budget, l1: l1, seed: seed)
            return recipe(base: base, experts: names, weights: l.weights, comment: """
                alloy compose --method learned --task \(task): CMA-ES, \(l.evaluations) evaluations, \(l.examples) training examples (\(shots)/label), L1 \(l1), seed \(seed)
                objective \(bench.expert(for: task)?.head != nil ? "head cross-entropy" : "leave-one-out prototype cross-entropy") + L1 = \(String(format: "%.4f", l.loss))
                """)
        case .retrieval:
            let ranked = try retrieve(bench, task: task)
            let pick = ranked.first?.expert
            return recipe(base: base, experts: names, weights: names.map { $0 == pick ? 1 : 0 }, comment: """
                alloy compose --method retrieval --task \(task): votes of 32 unlabelled inputs for the expert owning their nearest training input (base encoder)
                \(ranked.map { "\($0.expert) \(String(format: "%.4f", $0.score))" }.joined(separator: ", "))
                """)
        }
    }
}
