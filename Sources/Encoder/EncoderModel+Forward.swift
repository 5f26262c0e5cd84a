import Tensors

/// Hidden states of a batch, packed without padding: sequence s owns rows
/// `offsets[s]..<offsets[s+1]` of a (tokens × hidden) row-major matrix.
public struct HiddenStates {
    public var values: [Float]
    public let offsets: [Int]
    public let width: Int
    public var count: Int { offsets.count - 1 }
}

extension EncoderModel {
    /// Runs the encoder on `batch` (token ids with special tokens).
    ///
    /// - Parameters:
    ///   - adapters: applied to every sequence.
    ///   - perSequence: optional LoRA (with scale) per sequence, for mixed-adapter batches
    ///     (PEFT's `adapter_names`): sequences are grouped by adapter so each group's low-rank
    ///     update is two small GEMMs on its contiguous rows, inside one pass over the base GEMMs.
    /// - Complexity: O(T·(4h² + 2hf) + Σ Lₛ²·h) for T tokens in all.
    /// - Note: the layers are the architecture's `structure` (post-norm BERT-like, or ModernBERT's
    ///   pre-norm GeGLU layers in `EncoderModel+ModernBERT.swift`).
    public func hiddenStates(_ batch: [[Int32]], adapters: AdapterSet = AdapterSet(),
                             perSequence: [(adapter: LoRAAdapter, scale: Float)?]? = nil) -> HiddenStates {
        // API contract, not input: `SentenceEncoder.tokenize` truncates every text to `maxTokens`
        // (position offset included), so no user input reaches these checks.
        for seq in batch {
            precondition(seq.count <= maxTokens, "a sequence of \(seq.count) tokens exceeds the model's \(maxTokens) positions; truncate when tokenizing")
        }
        // Order sequences so that equal per-sequence adapters are contiguous.
        var order = Array(batch.indices)
        if let per = perSequence {
            precondition(per.count == batch.count, "one adapter entry per sequence (API contract)")
            order.sort { (per[$0].map { ObjectIdentifier($0.adapter).hashValue } ?? 0, $0) < (per[$1].map { ObjectIdentifier($0.adapter).hashValue } ?? 0, $1) }
        }
        var offsets = [0], T = 0
        for i in order { T += batch[i].count; offsets.append(T) }
        let H = hidden
        guard T > 0 else { return HiddenStates(values: [], offsets: offsets, width: H) }
        var groups: [(rows: Range<Int>, lora: LoRAAdapter, scale: Float)] = []
        if let per = perSequence {
            var s = 0
            while s < order.count {
                var e = s + 1
                while e < order.count, per[order[e]]?.adapter === per[order[s]]?.adapter, per[order[e]]?.scale == per[order[s]]?.scale { e += 1 }
                if let p = per[order[s]] { groups.append((offsets[s]..<offsets[e], p.adapter, p.scale)) }
                s = e
            }
        }

        let seqs = order.map { batch[$0] }
        var x: [Float]
        switch architecture.structure {
        case .postNorm: x = postNormLayers(seqs, offsets: offsets, adapters: adapters, groups: groups)
        case .preNormGeGLU: x = preNormLayers(seqs, offsets: offsets, adapters: adapters, groups: groups)
        }
        // Restore the caller's order.
        guard perSequence != nil else { return HiddenStates(values: x, offsets: offsets, width: H) }
        var out = [Float](repeating: 0, count: T * H)
        var outOffsets = [0], total = 0
        for i in batch.indices { total += batch[i].count; outOffsets.append(total) }
        for (pos, i) in order.enumerated() {
            let n = (offsets[pos + 1] - offsets[pos]) * H
            out.withUnsafeMutableBufferPointer { o in
                x.withUnsafeBufferPointer { src in
                    (o.nonEmptyBase + outOffsets[i] * H).update(from: src.nonEmptyBase + offsets[pos] * H, count: n)
                }
            }
        }
        return HiddenStates(values: out, offsets: outOffsets, width: H)
    }

    typealias Groups = [(rows: Range<Int>, lora: LoRAAdapter, scale: Float)]

    /// BERT's post-norm layers (BERT, RoBERTa, DistilBERT, MPNet, ELECTRA) on the packed rows.
    func postNormLayers(_ seqs: [[Int32]], offsets: [Int], adapters: AdapterSet, groups: Groups) -> [Float] {
        let T = offsets.last ?? 0, H = hidden, F = config.intermediateSize
        var x = [Float](repeating: 0, count: T * H)
        embed(seqs, offsets: offsets, into: &x, adapters: adapters, groups: groups)
        // MPNet: the relative-position bias, once per sequence, shared by every layer.
        let bias = architecture.relativeAttentionBias.map { relativePositionBias(table: $0, offsets: offsets, adapters: adapters) }
        var q = [Float](repeating: 0, count: T * H), k = q, v = q, ctx = q, tmp = q
        var inter = [Float](repeating: 0, count: T * F)
        for l in 0..<layers {
            linear(.query, layer: l, x, rows: T, into: &q, adapters, groups)
            linear(.key, layer: l, x, rows: T, into: &k, adapters, groups)
            linear(.value, layer: l, x, rows: T, into: &v, adapters, groups)
            attention(q, k, v, offsets: offsets, bias: bias, into: &ctx)
            x.withUnsafeBufferPointer { residual in
                linear(.attentionOutput, layer: l, ctx, rows: T, into: &tmp, adapters, groups,
                       then: .residualNorm(residual.nonEmptyBase, norm: layerPaths[l].attentionNorm))
            }
            swap(&x, &tmp)
            linear(.intermediate, layer: l, x, rows: T, into: &inter, adapters, groups, then: .gelu)
            x.withUnsafeBufferPointer { residual in
                linear(.output, layer: l, inter, rows: T, into: &tmp, adapters, groups,
                       then: .residualNorm(residual.nonEmptyBase, norm: layerPaths[l].outputNorm))
            }
            swap(&x, &tmp)
        }
        return x
    }

    func tensor(_ name: String, _ adapters: AdapterSet) -> UnsafePointer<Float> {
        // Names come from the architecture table that `bind` checked every weight against.
        (adapters.patched[name] ?? weights[name]!).rawBytes.nonEmptyBase.assumingMemoryBound(to: Float.self)
    }

    /// A tensor that the architecture may lack (biases of ModernBERT's linear layers and norms).
    func optionalTensor(_ name: String, _ adapters: AdapterSet) -> UnsafePointer<Float>? {
        (adapters.patched[name] ?? weights[name]).map { $0.rawBytes.nonEmptyBase.assumingMemoryBound(to: Float.self) }
    }

    /// A norm's γ and β (zeros when the norm has no bias).
    func normParameters(_ name: String, _ adapters: AdapterSet) -> (gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>) {
        (tensor(name + ".weight", adapters),
         optionalTensor(name + ".bias", adapters) ?? zeroRow.rawBytes.nonEmptyBase.assumingMemoryBound(to: Float.self))
    }

    /// Word (+ position, + token type 0) embeddings, LayerNorm; ELECTRA's projection to the hidden
    /// width when its embeddings are narrower.
    func embed(_ seqs: [[Int32]], offsets: [Int], into x: inout [Float], adapters: AdapterSet, groups: Groups) {
        let a = architecture, E = embeddingWidth, T = offsets.last ?? 0
        let word = tensor(a.wordEmbeddings + ".weight", adapters)
        let pos = a.positionEmbeddings.map { tensor($0 + ".weight", adapters) }
        let type = a.tokenTypeEmbeddings.map { tensor($0 + ".weight", adapters) }
        let vocab = config.vocabSize
        var e = E == hidden ? [] : [Float](repeating: 0, count: T * E)
        func fill(_ xp: UnsafeMutablePointer<Float>) {
            for (s, seq) in seqs.enumerated() {
                for (j, id) in seq.enumerated() {
                    let row = xp + (offsets[s] + j) * E
                    let w = word + Int(min(max(id, 0), Int32(vocab - 1))) * E
                    if let pos {
                        let p = pos + (j + a.positionOffset) * E
                        for c in 0..<E { row[c] = w[c] + p[c] }
                    } else {
                        for c in 0..<E { row[c] = w[c] }
                    }
                    if let type { for c in 0..<E { row[c] += type[c] } }
                }
            }
            let (gamma, beta) = normParameters(a.embeddingNorm, adapters)
            let box = UnsafeSendableBox((xp, gamma, beta))
            Parallel.forChunks(count: T, minChunk: 64) { r in
                let (xp, gamma, beta) = box.value
                Kernels.layerNorm(xp + r.lowerBound * E, rows: r.count, width: E, gamma: gamma, beta: beta, eps: eps)
            }
        }
        if E == hidden {
            x.withUnsafeMutableBufferPointer { fill($0.nonEmptyBase) }
        } else if let projection = a.embeddingProjection {
            e.withUnsafeMutableBufferPointer { fill($0.nonEmptyBase) }
            linear(path: projection, e, rows: T, into: &x, adapters, groups)
        }
    }

    /// What a linear layer does to its rows after x Wᵀ + b and the LoRA updates.
    enum Epilogue {
        case none
        case gelu
        /// y = LayerNorm(y + residual) with the named norm's γ, β (BERT's Add & Norm).
        case residualNorm(UnsafePointer<Float>, norm: String)
        /// y += residual (a pre-norm layer's residual connection).
        case residual(UnsafePointer<Float>)
    }

    /// y = x Wᵀ + b plus every active LoRA update (all rows, then per-group rows), then the
    /// epilogue. W is packed once, on first use (base weights by the model, patched ones by the
    /// adapter set); blocks of rows (`rowBlocks`) go to the cores as they free up, and each core
    /// finishes its rows (LoRA, epilogue) while they are in its cache.
    func linear(_ which: Architecture.Linear, layer l: Int, _ x: [Float], rows T: Int, into y: inout [Float],
                _ adapters: AdapterSet, _ groups: Groups, then epilogue: Epilogue = .none) {
        linear(path: layerPaths[l].linear[which.rawValue], x, rows: T, into: &y, adapters, groups, then: epilogue)
    }

    /// `linear` for the layer at `path` (canonical name without `.weight`).
    func linear(path: String, _ x: [Float], rows T: Int, into y: inout [Float],
                _ adapters: AdapterSet, _ groups: Groups, then epilogue: Epilogue = .none) {
        let name = path + ".weight"
        let weight = adapters.patched[name].map { adapters.packed.weights(name, $0, precision: precision) } ?? packedBase(name)
        let (N, K) = (weight.n, weight.k)
        let bias = optionalTensor(path + ".bias", adapters)
        let loras = adapters.loras.compactMap { l in l.adapter.layers[path].map { ($0, l.scale) } }
        let grouped = groups.compactMap { g in g.lora.layers[path].map { (g.rows, $0, g.scale) } }
        var norm: (residual: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>)?
        if case .residualNorm(let r, let name) = epilogue { let (g, b) = normParameters(name, adapters); norm = (r, g, b) }
        let gelu = if case .gelu = epilogue { true } else { false }
        var residual: UnsafePointer<Float>?
        if case .residual(let r) = epilogue { residual = r }
        if let parts = Self.columnBlocks(rows: T, n: N) {
            linearByColumns(weight, parts, bias: bias, x, rows: T, into: &y, loras: loras, grouped: grouped, gelu: gelu, residual: residual, norm: norm)
            return
        }
        let blocks = Self.rowBlocks(T), eps = eps
        y.withUnsafeMutableBufferPointer { yb in
            x.withUnsafeBufferPointer { xb in
                let box = UnsafeSendableBox((yb.nonEmptyBase, xb.nonEmptyBase, norm, residual))
                Parallel.forEach(count: blocks.count) { b in
                    let (yp, xp, norm, residual) = box.value
                    let rows = blocks[b]
                    let yr = yp + rows.lowerBound * N
                    weight.linear(x: xp + rows.lowerBound * K, ldx: K, bias: bias, y: yr, ldy: N, m: rows.count)
                    for (lw, scale) in loras { applyLoRA(lw, scale: scale, x: xp, rows: rows, k: K, y: yp, n: N) }
                    for (g, lw, scale) in grouped {
                        let part = g.clamped(to: rows)
                        if !part.isEmpty { applyLoRA(lw, scale: scale, x: xp, rows: part, k: K, y: yp, n: N) }
                    }
                    if gelu { Kernels.gelu(yr, count: rows.count * N) }
                    if let residual {
                        let r = residual + rows.lowerBound * N
                        for i in 0..<(rows.count * N) { yr[i] += r[i] }
                    }
                    if let (residual, gamma, beta) = norm {
                        Kernels.layerNorm(yr, rows: rows.count, width: N, residual: residual + rows.lowerBound * N,
                                          gamma: gamma, beta: beta, eps: eps)
                    }
                }
            }
        }
    }

    /// The row blocks of a linear layer's tasks, in the order the cores take them: guided
    /// self-scheduling (Polychronopoulos & Kuck 1987) — each block a share 1/(2·cores) of the
    /// rows left, between 24 and 192 rows and a multiple of the kernel's 6 — so early blocks
    /// are long (the packed weights stream once per block) and the last ones short (the cores
    /// finish together).
    static func rowBlocks(_ rows: Int) -> [Range<Int>] {
        var blocks: [Range<Int>] = []
        var start = 0
        while start < rows {
            let share = (rows - start) / (2 * Parallel.threadCount)
            let size = min(rows - start, max(24, min(192, share / 6 * 6)))
            blocks.append(start..<(start + size))
            start += size
        }
        return blocks
    }

    /// The column blocks (whole 16-channel strips) of a linear layer over few rows, or nil when
    /// blocks of rows share the work well. Below 48 rows per core, row blocks (at least 24
    /// rows each, to stream the weight once per block) leave a core idle: one 65-token
    /// sequence makes blocks of 24, 24 and 17 rows, 41 rows on one core and 24 on the other.
    /// Columns split evenly, each core streams only its share of the weight, and every value
    /// is computed as in the row blocks (the kernel's sums do not depend on the block).
    static func columnBlocks(rows: Int, n: Int) -> [Range<Int>]? {
        let cores = Parallel.threadCount
        guard cores > 1, rows < 48 * cores, n >= 32 else { return nil }
        let strips = (n + 15) / 16, parts = min(strips, 2 * cores)
        let bounds = (0...parts).map { min(n, strips * $0 / parts * 16) }
        return (0..<parts).map { bounds[$0]..<bounds[$0 + 1] }.filter { !$0.isEmpty }
    }

    /// `linear` over column blocks: the LoRA factors' first products (x Aᵀ, a few columns) are
    /// computed once, then each block adds its columns of the second; GELU and a residual apply
    /// per block, the Add & Norm to whole rows once every block is done.
    private func linearByColumns(_ weight: PackedLinear, _ parts: [Range<Int>], bias: UnsafePointer<Float>?, _ x: [Float], rows T: Int,
                                 into y: inout [Float], loras: [(LoRAWeights, Float)], grouped: [(Range<Int>, LoRAWeights, Float)], gelu: Bool,
                                 residual: UnsafePointer<Float>?,
                                 norm: (residual: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>)?) {
        let (N, K) = (weight.n, weight.k)
        // (rows, t = scale·x[rows]Aᵀ, B) per update, in `linear`'s order: every-row LoRAs, then groups.
        let updates: [(rows: Range<Int>, t: [Float], lw: LoRAWeights)] = x.withUnsafeBufferPointer { xb in
            (loras.map { (0..<T, $0.0, $0.1) } + grouped).map { rows, lw, scale in
                (rows, lowRankProjection(lw, scale: scale, x: xb.nonEmptyBase, rows: rows, k: K), lw)
            }
        }
        y.withUnsafeMutableBufferPointer { yb in
            x.withUnsafeBufferPointer { xb in
                let box = UnsafeSendableBox((yb.nonEmptyBase, xb.nonEmptyBase, residual))
                Parallel.forEach(count: parts.count) { p in
                    let (yp, xp, residual) = box.value
                    let c = parts[p], width = c.count
                    weight.linear(x: xp, ldx: K, bias: bias, y: yp, ldy: N, m: T, columns: c)
                    for u in updates where !u.rows.isEmpty {
                        u.t.withUnsafeBufferPointer { t in
                            u.lw.packedB.linear(x: t.nonEmptyBase, ldx: u.lw.rank, bias: nil, y: yp + u.rows.lowerBound * N, ldy: N,
                                                m: u.rows.count, accumulate: true, columns: c)
                        }
                    }
                    for i in 0..<T {
                        let yr = yp + i * N + c.lowerBound
                        if gelu { Kernels.gelu(yr, count: width) }
                        if let residual {
                            let r = residual + i * N + c.lowerBound
                            for j in 0..<width { yr[j] += r[j] }
                        }
                    }
                }
                if let (residual, gamma, beta) = norm {
                    Kernels.layerNorm(yb.nonEmptyBase, rows: T, width: N, residual: residual, gamma: gamma, beta: beta, eps: eps)
                }
            }
        }
    }

    /// scale · x[rows] Aᵀ (rows × rank), the first product of a LoRA update.
    func lowRankProjection(_ lw: LoRAWeights, scale: Float, x: UnsafePointer<Float>, rows: Range<Int>, k K: Int) -> [Float] {
        let r = lw.rank, M = rows.count
        var t = [Float](repeating: 0, count: M * r)
        guard M > 0 else { return t }
        t.withUnsafeMutableBufferPointer { tb in
            lw.packedA.linear(x: x + rows.lowerBound * K, ldx: K, bias: nil, y: tb.nonEmptyBase, ldy: r, m: M)
            let s = lw.scale * scale
            for i in 0..<(M * r) { tb[i] *= s }
        }
        return t
    }

    /// y[rows] += scale · (x[rows] Aᵀ) Bᵀ, on the calling thread, with the packed linear kernel.
    func applyLoRA(_ lw: LoRAWeights, scale: Float, x: UnsafePointer<Float>, rows: Range<Int>, k K: Int, y: UnsafeMutablePointer<Float>, n N: Int) {
        guard !rows.isEmpty else { return }
        let t = lowRankProjection(lw, scale: scale, x: x, rows: rows, k: K)
        t.withUnsafeBufferPointer { t in
            lw.packedB.linear(x: t.nonEmptyBase, ldx: lw.rank, bias: nil, y: y + rows.lowerBound * N, ldy: N, m: rows.count, accumulate: true)
        }
    }

    /// Scaled dot-product attention, one sequence (all its heads) per task on both cores
    /// (`Kernels.attentionHead`: no GEMM calls, no padding), longest sequences first; with
    /// fewer sequences than two per core, each sequence's heads are split into that many tasks.
    func attention(_ q: [Float], _ k: [Float], _ v: [Float], offsets: [Int], bias: ScoreBias? = nil, into ctx: inout [Float]) {
        let H = hidden, nh = heads, d = H / nh
        let scale = 1 / Float(d).squareRoot()
        q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
            ctx.withUnsafeMutableBufferPointer { cb in
                let p = UnsafeSendableBox((qb.nonEmptyBase, kb.nonEmptyBase, vb.nonEmptyBase, cb.nonEmptyBase))
                // Longest sequences first, so that no long one is left for the end.
                let length = { (s: Int) -> Int in offsets[s + 1] - offsets[s] }
                let longestFirst = (0..<(offsets.count - 1)).sorted { length($0) > length($1) }
                let split = max(1, min(nh, (2 * Parallel.threadCount) / max(1, longestFirst.count)))
                Parallel.forEach(count: longestFirst.count * split) { job in
                    let s = longestFirst[job / split], part = job % split
                    let off = offsets[s], L = offsets[s + 1] - off
                    let (qp, kp, vp, cp) = p.value
                    for h in (nh * part / split)..<(nh * (part + 1) / split) {
                        let at = off * H + h * d
                        // A bias of j − i: the middle of its 2L − 1 values, read backwards row by row.
                        Kernels.attentionHead(q: qp + at, k: kp + at, v: vp + at, context: cp + at, length: L, headDim: d,
                                              stride: H, scale: scale, bias: bias?.middle(sequence: s, head: h, length: L), biasRowStep: -1)
                    }
                }
            }
        } } }
    }
}
