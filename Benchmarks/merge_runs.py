#!/usr/bin/env python3
"""Times `alloy merge` against `mergekit-yaml` (whole processes) on the recipes that
make_merge_inputs.py wrote: per method REPS runs of each, interleaved (Alloy first in even reps,
mergekit first in odd ones), wall time from spawn to exit and peak RSS (GNU time's %M), medians;
the speed-up is the median over reps of mergekit's time ÷ Alloy's in the same rep.

Checks that mergekit wrote every tensor Alloy wrote (mergekit 0.1.5 silently writes a
model without weights when its architecture inference names no tensor of the checkpoint) and,
for the deterministic methods (not DARE), how far the two outputs are apart: the share of
entries that differ and the largest absolute difference.

Usage: merge_runs.py DIR REPS ALLOY MERGEKIT_YAML OUT.jsonl METHOD... (an aligned table on
stdout, per-rep progress on stderr, one JSON line per method appended to OUT.jsonl)
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time


def timed(cmd, env=None):
    with tempfile.NamedTemporaryFile() as t, tempfile.TemporaryFile() as err:
        s = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", t.name] + cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        wall = time.perf_counter() - s
        if p.returncode != 0:
            err.seek(0)
            sys.exit(f"{cmd[0]} exited {p.returncode}: {err.read().decode(errors='replace')[-600:]}")
        return wall, int(open(t.name).read().split()[-1]) / 1024, p.stdout


def compare(a_path, b_path, exact):
    import numpy as np
    from safetensors.numpy import load_file
    a, b = load_file(a_path), load_file(b_path)
    out = {"tensors_alloy": len(a), "tensors_mergekit": len(b), "missing_in_mergekit": sorted(set(a) - set(b))[:5]}
    if exact:
        diff, total, worst = 0, 0, 0.0
        for k in set(a) & set(b):
            x, y = a[k].astype(np.float64), b[k].astype(np.float64)
            if x.shape != y.shape:
                out.setdefault("shape_mismatch", []).append(k)
                continue
            d = np.abs(x - y)
            diff += int((d > 0).sum())
            total += d.size
            worst = max(worst, float(d.max()) if d.size else 0.0)
        out.update({"differing_entries_share": diff / max(total, 1), "max_abs_diff": worst})
    return out


def main():
    d, reps, alloy, mk, jsonl, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    print(f"{'method':16} {'alloy s':>8} {'mergekit s':>10} {'speed-up':>9} {'alloy RSS':>10} {'mk RSS':>10} {'alloy GB/s':>10}   parity vs mergekit (entries differing, max |Δ|)",
          flush=True)
    for m in methods:
        recipe = os.path.join(d, f"{m}.yaml")
        oa, ok = os.path.join(d, "out-alloy"), os.path.join(d, "out-mk")
        ta, tk, ra, rk, gbps = [], [], [], [], []
        for rep in range(reps):
            runs = [("alloy", [alloy, "merge", recipe, "-o", oa, "--json"]),
                    ("mk", [mk, recipe, ok, "--no-copy-tokenizer", "--quiet"])]
            for who, cmd in (runs if rep % 2 == 0 else runs[::-1]):
                shutil.rmtree(oa if who == "alloy" else ok, ignore_errors=True)
                wall, rss, out = timed(cmd, env)
                if who == "alloy":
                    ta.append(wall); ra.append(rss)
                    try:
                        gbps.append(json.loads(out.decode())["memory_GBps"])
                    except (ValueError, KeyError):
                        pass
                else:
                    tk.append(wall); rk.append(rss)
            print(f"  {m} rep {rep + 1}/{reps}: alloy {ta[-1]:.2f} s, mergekit {tk[-1]:.2f} s", file=sys.stderr, flush=True)
        row = {"method": m, "reps": reps, "alloy_median_s": statistics.median(ta), "mergekit_median_s": statistics.median(tk),
               "speedup_paired_median": statistics.median([k / a for a, k in zip(ta, tk)]),
               "alloy_peak_rss_MiB": statistics.median(ra), "mergekit_peak_rss_MiB": statistics.median(rk),
               "alloy_GBps_median": statistics.median(gbps) if gbps else None, "alloy_s": ta, "mergekit_s": tk}
        mk_model = os.path.join(ok, "model.safetensors")
        if not os.path.exists(mk_model):
            row["error"] = "mergekit wrote no model.safetensors (architecture not recognised?)"
        else:
            row["parity"] = compare(os.path.join(oa, "model.safetensors"), mk_model, exact="dare" not in m)
        with open(jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        p = row.get("parity", {})
        par = row.get("error") or (f"{p['differing_entries_share']:.2e}, {p['max_abs_diff']:.2g}" if "max_abs_diff" in p else "random masks: not compared")
        if p and (p.get("missing_in_mergekit") or p["tensors_alloy"] != p["tensors_mergekit"]):
            par += f"; tensors {p['tensors_alloy']} vs {p['tensors_mergekit']}"
        g = f"{row['alloy_GBps_median']:.1f}" if row["alloy_GBps_median"] is not None else "—"
        print(f"{m:16} {row['alloy_median_s']:8.2f} {row['mergekit_median_s']:10.2f} {row['speedup_paired_median']:8.1f}x "
              f"{row['alloy_peak_rss_MiB']:6.0f} MiB {row['mergekit_peak_rss_MiB']:6.0f} MiB {g:>10}   {par}", flush=True)


if __name__ == "__main__":
    main()
