#!/usr/bin/env python3
"""Tabulates benchmark JSON lines (first line = Alloy) with each row's ratio to Alloy.
Usage: table.py container|runtime < lines.jsonl"""
import json, sys
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
else:
    print(f"{'tool':40} {'seq/s':>8} {'best s':>8} {'median s':>9}   Alloy / tool (best)  paired median")
    paired = a.get("paired_speedup_median", {})
    for r in rows:
        p = f"{paired[r['tool']]:.2f}" if r["tool"] in paired else "—"
        print(f"{r['tool']:40} {r['seq_per_s']:8.1f} {r['seconds']:8.2f} {r.get('median_seconds', r['seconds']):9.2f}   {a['seq_per_s'] / r['seq_per_s']:19.2f}  {p:>13}")
