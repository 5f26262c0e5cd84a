#!/usr/bin/env python3
"""Compression peers for the .alloy container benchmark, on the same bytes as Alloy.

Reads a safetensors file, concatenates its tensors' bytes (the payload Alloy compresses), and
measures zlib-6, zstd-3 and ZipNN on 2 threads (chunks of 1 MiB over a 2-thread pool for zlib,
which releases the GIL; zstd's and ZipNN's own threading). Prints one JSON object per peer.
"""
import json, sys, time, zlib
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from safetensors.numpy import load_file

path = sys.argv[1]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
tensors = load_file(path)
data = b"".join(np.ascontiguousarray(v).tobytes() for _, v in sorted(tensors.items()))
raw = len(data)
CH = 1 << 20
chunks = [data[i:i + CH] for i in range(0, raw, CH)]


def best(fn):
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t)
    return min(times), out


def report(tool, c_secs, d_secs, size, ok):
    print(json.dumps({"tool": tool, "raw_bytes": raw, "stored_bytes": size, "ratio": raw / size,
                      "compress_MBps": raw / c_secs / 1e6, "decompress_MBps": raw / d_secs / 1e6,
                      "threads": 2, "roundtrip_exact": ok}), flush=True)


with ThreadPoolExecutor(2) as pool:
    ct, comp = best(lambda: list(pool.map(lambda c: zlib.compress(c, 6), chunks)))
    dt, back = best(lambda: list(pool.map(zlib.decompress, comp)))
    report("zlib-6 (1 MiB chunks)", ct, dt, sum(map(len, comp)), b"".join(back) == data)

import zstandard as zstd
cz = zstd.ZstdCompressor(level=3, threads=2)
ct, comp = best(lambda: cz.compress(data))
dz = zstd.ZstdDecompressor()
dt, back = best(lambda: dz.decompress(comp, max_output_size=raw))
report("zstd-3", ct, dt, len(comp), back == data)

import warnings
warnings.filterwarnings("ignore")
import zipnn
for kw in [dict(bytearray_dtype="float32", threads=2), dict(bytearray_dtype="float32", threads=2, input_format="byte")]:
    try:
        z = zipnn.ZipNN(**kw)
        ct, comp = best(lambda: z.compress(data))
        dt, back = best(lambda: z.decompress(comp))
        report("ZipNN 0.5.4 (float32, " + ", ".join(f"{k}={v}" for k, v in kw.items() if k != "bytearray_dtype") + ")", ct, dt, len(comp), bytes(back) == data)
    except Exception as e:
        print(json.dumps({"tool": f"ZipNN {kw}", "error": str(e)}), flush=True)
