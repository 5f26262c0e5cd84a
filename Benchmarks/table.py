#!/usr/bin/env python3
"""Tabulates benchmark JSON lines (first line = Alloy) with each row's ratio to Alloy.
Usage: table.py container|runtime < lines.jsonl (runtime: Benchmarks/runtime_peers.py's rows)"""
import json, statistics, sys
kind = sys.argv[1]
rows = [json.loads(l) for l in sys.stdin if l.strip().startswith("{")]
a = rows[0]
if kind == "container":
    print(f"{'tool':46} {'ratio':>7} {'comp MB/s':>10} {'decomp MB/s':>12} {'exact':>6}   vs Alloy: ratio, comp, decomp")
    for r in rows:
        if "error" in r:
            print(f"{r['tool']:46} error: {r['error']}")
            continue
        rel = f"{r['ratio'] / a['ratio']:.3f}  {r['compress_MBps'] / a['compress_MBps']:.2f}  {r['decompress_MBps'] / a['decompress_MBps']:.2f}"
        print(f"{r['tool'][:46]:46} {r['ratio']:7.4f} {r['compress_MBps']:10.0f} {r['decompress_MBps']:12.0f} {str(r.get('roundtrip_exact', True)):>6}   {rel}")
else:  # runtime: runtime_peers.py's rows (an "error" row where a tool could not run)
    ok = [r for r in rows if "error" not in r]
    print(f"{'tool':42} {'whole s':>8} {'loop s':>7} {'loop seq/s':>10} {'RSS MiB':>8} {'÷Alloy whole':>12} {'÷Alloy loop':>11}   min cos vs PyTorch")
    for r in rows:
        if "error" in r:
            print(f"{r['tool'][:42]:42} error: {r['error'][:200]}")
            continue
        def f(k, fmt):
            w = int(fmt.split(".")[0] or 0)
            return format(r[k], fmt) if r.get(k) is not None else "—".rjust(w)
        cos = r.get("min_cos_vs_torch")
        mark = "" if cos is None or "int8" in r["tool"] or "bf16" in r["tool"] else ("  ok" if cos >= 0.9999 else "  BELOW 0.9999")
        print(f"{r['tool'][:42]:42} {f('whole_median_s', '8.2f')} {f('loop_median_s', '7.2f')} {f('loop_seq_per_s', '10.1f')} "
              f"{f('peak_rss_MiB', '8.0f')} {f('vs_alloy_whole_paired_median', '12.2f')} {f('vs_alloy_loop_paired_median', '11.2f')}   "
              f"{f('min_cos_vs_torch', '.6f')}{mark}")
    if ok:
        r0 = ok[0]
        print(f"\n{r0['model']}, {r0['sequences']} sentences, {r0['reps']} reps interleaved, {r0['threads']} threads, medians; "
              "ratios: median over reps of tool's time ÷ Alloy's in the same rep (> 1: Alloy faster)")
    f32 = [r for r in ok if r["tool"].startswith("ORT") and "f32" in r["tool"] and r.get("loop_median_s")]
    if len(f32) > 1:
        fast = min(f32, key=lambda r: r["loop_median_s"])
        slow = max(f32, key=lambda r: r["loop_median_s"])
        print(f"faster ORT f32 variant (loop median): {fast['tool']}, {slow['loop_median_s'] / fast['loop_median_s']:.3f}× "
              f"(paired per rep: {statistics.median([b / a for a, b in zip(fast['loop_s'], slow['loop_s'])]):.3f}×)")
    for r in ok:
        if "loop_note" in r:
            print(f"{r['tool']}: loop = {r['loop_note']}")
        if "whole_start_to_loaded_median_s" in r:
            print(f"{r['tool']}: whole process spends {r['whole_start_to_loaded_median_s']:.2f} s before its first batch (start-up, imports, load)")
        if "min_cos_vs_sentence_transformers" in r:
            print(f"{r['tool']}: min cos vs sentence-transformers encode() {r['min_cos_vs_sentence_transformers']:.7f}")
        if "fused" in r:
            print(f"{r['tool']}: fused {r['fused']}")
        if "min_cos_vs_ort_f32" in r:
            print(f"{r['tool']}: cos vs ORT f32 min {r['min_cos_vs_ort_f32']:.5f}, mean {r['mean_cos_vs_ort_f32']:.5f}")
        if "min_cos_vs_alloy_f32" in r:
            print(f"{r['tool']}: cos vs alloy f32 min {r['min_cos_vs_alloy_f32']:.5f}, mean {r['mean_cos_vs_alloy_f32']:.5f}")
