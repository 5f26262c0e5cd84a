#!/usr/bin/env python3
"""Makes the safetensors and dtype-conversion fixtures for the Swift tests.

Valid files come from the reference `safetensors` library; malformed files are crafted byte by
byte and each is checked to be rejected by the reference library too, so Alloy's reader is
tested to be at least as strict. f16 values come from numpy, bf16 from PyTorch.
Run with the dev venv: .venv/bin/python Scripts/make-fixtures-safetensors.py
"""
import json, os, struct
import numpy as np
import torch
from safetensors.torch import save, load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ST = os.path.join(ROOT, "Tests", "FormatsTests", "Fixtures", "safetensors")
TN = ST.rsplit("/", 1)[0]
os.makedirs(ST, exist_ok=True)
os.makedirs(TN, exist_ok=True)
g = torch.Generator().manual_seed(7)

# 1. A valid file with every supported dtype and metadata (keys inserted sorted, as Alloy writes).
tensors = {
    "embeddings.weight": torch.randn(4, 3, generator=g),
    "layer.0.f64": torch.randn(2, 2, generator=g, dtype=torch.float64),
    "layer.0.f16": torch.randn(5, generator=g).to(torch.float16),
    "layer.0.bf16": torch.randn(3, 2, generator=g).to(torch.bfloat16),
    "ids.i64": torch.arange(6, dtype=torch.int64).reshape(1, 6),
    "ids.i32": torch.tensor([-3, 0, 7], dtype=torch.int32),
    "ids.i16": torch.tensor([-300, 300], dtype=torch.int16),
    "ids.i8": torch.tensor([-1, 2, -3], dtype=torch.int8),
    "ids.u8": torch.tensor([0, 255], dtype=torch.uint8),
    "mask.bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(2.5),
    "empty": torch.zeros(0, 3),
}
meta = {"note": "quote \" and é"}  # one key: the reference orders metadata by HashMap
blob = save(tensors, metadata=dict(sorted(meta.items())))
open(os.path.join(ST, "all_dtypes.safetensors"), "wb").write(blob)
expect = {"metadata": meta, "tensors": {}}
for k, v in tensors.items():
    vals = v.to(torch.float64).flatten().tolist() if v.dtype != torch.bool else [float(x) for x in v.flatten().tolist()]
    expect["tensors"][k] = {"dtype": {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
                                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                                      torch.uint8: "U8", torch.bool: "BOOL"}[v.dtype],
                            "shape": list(v.shape), "values": vals}
json.dump(expect, open(os.path.join(ST, "all_dtypes.json"), "w"), indent=1)

# An empty file (no tensors) and a file without metadata.
open(os.path.join(ST, "empty.safetensors"), "wb").write(save({}))
open(os.path.join(ST, "no_metadata.safetensors"), "wb").write(save({"b": torch.ones(2, 2), "a": torch.zeros(3, dtype=torch.float16)}))


# 2. Malformed files: each must be rejected by the reference library as well.
def raw(header_obj_text, data=b"", declared=None, pad=True):
    h = header_obj_text.encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if declared is None else declared
    return struct.pack("<Q", n) + h + data


good = save({"a": torch.ones(2)})
cases = {
    "truncated": good[:-3],
    "too_small": b"\x08\x00\x00",
    "header_longer_than_file": struct.pack("<Q", 4096) + good[8:],
    "header_too_large": struct.pack("<Q", 200_000_000) + b"{}",
    "not_json": raw('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]', b"\0" * 8),
    "not_object": raw('[1, 2, 3]'),
    "overlapping": raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', b"\0" * 12),
    "gap": raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', b"\0" * 12),
    "size_mismatch": raw('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', b"\0" * 8),
    "shape_overflow": raw('{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}', b"\0" * 8),
    "duplicate_key": raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8),
    "unknown_dtype": raw('{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
    "trailing_bytes": raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 8),
    "negative_offset": raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', b"\0" * 4),
    "offsets_reversed": raw('{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}', b"\0" * 4),
    "bad_metadata": raw('{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
}
os.makedirs(os.path.join(ST, "malformed"), exist_ok=True)
for name, b in cases.items():
    try:
        load(b)
        accepted = True
    except Exception:
        accepted = False
    # The reference library tolerates a few of these (e.g. duplicate keys through serde); Alloy is
    # stricter there on purpose. Record which, so the test file documents it.
    open(os.path.join(ST, "malformed", name + ".safetensors"), "wb").write(b)
    print(f"{name:24} reference {'ACCEPTS' if accepted else 'rejects'}")

# 3. dtype conversions: f32 values incl. specials -> f16 (numpy) and bf16 (torch), and back.
specials = np.array([0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 1e-8, 6.1e-5, 5.96e-8, 2.98e-8, 3e-8,
                     np.inf, -np.inf, np.nan, 1.0 + 2**-11, 1.0 + 3 * 2**-11, 3.3895314e38, 1e-40, -1e-45,
                     float(np.float32(1.00390625)), float(np.float32(1.01171875))], dtype=np.float32)
rng = np.random.default_rng(11)
rand = np.concatenate([rng.standard_normal(2000).astype(np.float32) * 10 ** rng.uniform(-8, 6, 2000).astype(np.float32),
                       rng.standard_normal(2000).astype(np.float32)])
src = np.concatenate([specials, rand]).astype(np.float32)
f16 = src.astype(np.float16)
bf16 = torch.from_numpy(src).to(torch.bfloat16)
all_f16_bits = np.arange(65536, dtype=np.uint16)
all_bf16_bits = torch.from_numpy(np.arange(65536, dtype=np.int32).astype(np.int16))
blob = save({
    "src_f32": torch.from_numpy(src),
    "to_f16": torch.from_numpy(f16.view(np.int16)).view(torch.float16),
    "to_bf16": bf16,
    "all_f16_as_f32": torch.from_numpy(all_f16_bits.view(np.float16).astype(np.float32)),
    "all_bf16_as_f32": all_bf16_bits.view(torch.bfloat16).to(torch.float32),
})
open(os.path.join(TN, "conversions.safetensors"), "wb").write(blob)
print("fixtures written")
