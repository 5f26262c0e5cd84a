#!/usr/bin/env python3
"""Time to the first embedding: `alloy embed` of one sentence, whole process (spawn to exit), for
each precision, without the packed-weight cache (ALLOY_PACK_CACHE=off: the weights are packed in
memory, as every run did before the cache) and with a warm one (the packed file is mapped), plus
the one run that builds the cache. Runs interleaved rep by rep; medians.

    startup.py ALLOY MODEL_DIR REPS
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

alloy, model, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
cache = tempfile.mkdtemp(prefix="alloy-startup-")
sentence = os.path.join(cache, "one.txt")
with open(sentence, "w") as f:
    f.write("The first embedding of the day arrives as soon as the weights are in memory.\n")


def run(precision, env_extra):
    env = dict(os.environ, ALLOY_CACHE_DIR=cache, **env_extra)
    t = time.perf_counter()
    subprocess.run([alloy, "embed", "--model", model, "--input", sentence, "--precision", precision],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


precisions = ["f32", "int8", "bf16"]
rows = {}
try:
    run("f32", {"ALLOY_PACK_CACHE": "off"})   # page cache warm for the model's files
    for p in precisions:
        rows[p] = {"cold": [], "warm": [], "build": run(p, {})}
    for _ in range(reps):
        for p in precisions:
            rows[p]["cold"].append(run(p, {"ALLOY_PACK_CACHE": "off"}))
            rows[p]["warm"].append(run(p, {}))
    for p in precisions:
        r = rows[p]
        cold, warm = statistics.median(r["cold"]), statistics.median(r["warm"])
        print(json.dumps({"model": os.path.basename(model.rstrip("/")), "precision": p, "no_cache_s": round(cold, 3),
                          "cache_build_s": round(r["build"], 3), "mapped_s": round(warm, 3), "speedup": round(cold / warm, 2)}))
finally:
    shutil.rmtree(cache, ignore_errors=True)
