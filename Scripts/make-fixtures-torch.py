#!/usr/bin/env python3
"""Makes the `pytorch_model.bin` (torch.save zip archive) fixtures for the Swift tests.

Writes Tests/FormatsTests/Fixtures/torch/:
  bert/                 config.json + pytorch_model.bin: a seeded random BertModel (vocab 64,
                        hidden 32, 2 layers, 4 heads) saved with `torch.save(model.state_dict())`
                        as transformers < 4.31 did, `embeddings.position_ids` included as the
                        int64 buffer those versions kept (an expanded arange, shape [1, 32]).
  reference.safetensors the same tensors, made contiguous, written by the `safetensors` library:
                        what every tensor read from the .bin must equal byte for byte.
  bert_outputs.safetensors  transformers' last hidden states of that model for a padded batch
                        (input_ids, attention_mask, base).
  sharded/              the same state dict as two .bin shards + pytorch_model.bin.index.json,
                        as `save_pretrained(safe_serialization=False, max_shard_size=...)` wrote.
  bert_f16.bin, bert_bf16.bin and reference_f16.safetensors, reference_bf16.safetensors:
                        the model's floating-point tensors converted by torch (`.half()`,
                        `.bfloat16()`), saved both ways.
  strided.bin + strided.safetensors: a transposed (non-contiguous) view, a row view at a
                        storage offset and the matrix they share storage with; the safetensors
                        copy holds them made contiguous. strided_protocol4.bin and
                        strided_protocol5.bin: the same saved with pickle protocols 4 and 5.
  tied.bin + tied.safetensors: two names for one tensor (shared storage, as tied embeddings
                        are saved); the safetensors copy holds two copies.
  nested.bin            {"state_dict": {...}, "epoch": 3}, as non-HF trainers save checkpoints.
  hostile/*.bin         zip archives whose data.pkl is hand-assembled (never unpickled here):
                        GLOBAL os.system, STACK_GLOBAL subprocess.Popen, REDUCE of a storage
                        class, BUILD on a tensor, INST, EXT1, a 100 000-deep list nesting, a
                        memo get at 2^32 - 1, a storage key absent from the archive, a storage
                        key with "../", negative and overflowing sizes, an offset past the
                        storage, an unknown opcode; plus a torch.save archive with deflated
                        entries, an expanded view (stride 0), a big-endian archive and a legacy
                        (pre-1.6, non-zip) torch.save file.
  (The fuzz seed is Tests/FuzzTests/Seeds/torch/pytorch_model.bin: a two-tensor torch.save.)
Also writes Tests/EncoderTests/Fixtures/tiny/lora-bin/: the tiny LoRA (tiny/lora) as PEFT saved
adapters before safetensors became its default (PEFT < 0.7): adapter_model.bin, a torch.save of
the same factors under the same names, beside the same adapter_config.json.

Deterministic: seeded weights, and the random `.data/serialization_id` torch writes is
replaced by a fixed one before the archive is written (the zip is rewritten entry by entry with
the same layout, sizes and alignment padding torch uses).
Run: HF_HUB_OFFLINE=1 .venv/bin/python Scripts/make-fixtures-torch.py
"""
import io, json, os, pickle, struct, zipfile, zlib
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "FormatsTests", "Fixtures", "torch")
SEEDS = os.path.join(ROOT, "Tests", "FuzzTests", "Seeds", "torch")
for d in [OUT, os.path.join(OUT, "bert"), os.path.join(OUT, "sharded"), os.path.join(OUT, "hostile"), SEEDS]:
    os.makedirs(d, exist_ok=True)
torch.manual_seed(0)


def fixed_save(obj, path, **kwargs):
    """torch.save, then the archive's random serialization id replaced by a constant."""
    torch.save(obj, path, **kwargs)
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    z = zipfile.ZipFile(io.BytesIO(bytes(raw)))
    for info in z.infolist():
        if info.filename.endswith(".data/serialization_id"):
            # Same length, stored entry: patch the bytes in place and the CRC in both headers.
            old = z.read(info)
            new = b"0" * len(old)
            lh = info.header_offset
            nlen, xlen = struct.unpack("<HH", raw[lh + 26:lh + 30])
            start = lh + 30 + nlen + xlen
            assert raw[start:start + len(old)] == old
            raw[start:start + len(old)] = new
            crc = struct.pack("<I", zlib.crc32(new) & 0xFFFFFFFF)
            raw[lh + 14:lh + 18] = crc
            # Patch the central-directory record of this entry.
            pos = 0
            while True:
                pos = raw.find(b"PK\x01\x02", pos)
                assert pos >= 0
                n = struct.unpack("<H", raw[pos + 28:pos + 30])[0]
                if raw[pos + 46:pos + 46 + n] == info.filename.encode():
                    raw[pos + 16:pos + 20] = crc
                    break
                pos += 4
    with open(path, "wb") as f:
        f.write(raw)
    # Must still load with torch's own loader (weights_only, except for protocols 4–5 whose FRAME
    # opcode torch's weights_only unpickler refuses; those files are made just above from tensors).
    torch.load(path, weights_only="pickle_protocol" not in kwargs)


# 1. The tiny BERT.
config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=32, type_vocab_size=2)
model = BertModel(config).eval()
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.randn(p.shape) * 0.1)
sd = model.state_dict()
# transformers < 4.31 kept position_ids in the state dict: arange(max_pos).expand((1, -1)).
ordered = {}
for k, v in sd.items():
    ordered[k] = v
    if k == "embeddings.token_type_embeddings.weight":
        ordered["embeddings.position_ids"] = torch.arange(config.max_position_embeddings).expand((1, -1))
sd = type(sd)(ordered)
print("position_ids stride", sd["embeddings.position_ids"].stride())
config.save_pretrained(os.path.join(OUT, "bert"))
fixed_save(sd, os.path.join(OUT, "bert", "pytorch_model.bin"))
save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, "reference.safetensors"))
# transformers' last hidden states for a padded batch, to check a model loaded from the .bin.
seqs = [[2, 5, 17, 30, 42, 63, 7, 3], [2, 9, 3], [2] + list(range(10, 30)) + [3]]
L = max(map(len, seqs))
ids = torch.tensor([q + [0] * (L - len(q)) for q in seqs])
mask = torch.tensor([[1] * len(q) + [0] * (L - len(q)) for q in seqs])
with torch.no_grad():
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.contiguous()
save_file({"input_ids": ids.to(torch.int64), "attention_mask": mask.to(torch.int64), "base": hidden},
          os.path.join(OUT, "bert_outputs.safetensors"))

# 2. Sharded: two shards in state-dict order, and the index transformers wrote.
names = list(sd.keys())
half = len(names) // 2
shards = {"pytorch_model-00001-of-00002.bin": names[:half], "pytorch_model-00002-of-00002.bin": names[half:]}
weight_map = {}
for fname, keys in shards.items():
    fixed_save(type(sd)((k, sd[k]) for k in keys), os.path.join(OUT, "sharded", fname))
    weight_map.update({k: fname for k in keys})
total = sum(v.numel() * v.element_size() for v in sd.values())
with open(os.path.join(OUT, "sharded", "pytorch_model.bin.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)

# 3. f16 / bf16 variants (floating tensors converted; position_ids stays int64).
for tag, dt in [("f16", torch.float16), ("bf16", torch.bfloat16)]:
    conv = type(sd)((k, v.to(dt) if v.is_floating_point() else v) for k, v in sd.items())
    fixed_save(conv, os.path.join(OUT, f"bert_{tag}.bin"))
    save_file({k: v.contiguous() for k, v in conv.items()}, os.path.join(OUT, f"reference_{tag}.safetensors"))

# 4. Strided views sharing one storage.
w = torch.randn(3, 5)
strided = {"weight": w, "weight_t": w.t(), "row": w[1], "block": w[1:, 2:4], "column": w[:, 1:2], "rows": w[1:2]}
assert not strided["weight_t"].is_contiguous() and strided["row"].storage_offset() == 5
fixed_save(strided, os.path.join(OUT, "strided.bin"))
save_file({k: v.contiguous().clone() for k, v in strided.items()}, os.path.join(OUT, "strided.safetensors"))
# The same with pickle protocol 4 and 5 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL).
fixed_save(strided, os.path.join(OUT, "strided_protocol4.bin"), pickle_protocol=4)
fixed_save(strided, os.path.join(OUT, "strided_protocol5.bin"), pickle_protocol=5)

# 5. Tied weights and a nested checkpoint.
e = torch.randn(4, 2)
fixed_save({"embeddings.weight": e, "decoder.weight": e}, os.path.join(OUT, "tied.bin"))
save_file({"embeddings.weight": e, "decoder.weight": e.clone()}, os.path.join(OUT, "tied.safetensors"))
fixed_save({"state_dict": {"a.weight": torch.randn(2, 2), "a.bias": torch.zeros(2)}, "epoch": 3},
           os.path.join(OUT, "nested.bin"))

# 6. The fuzz seed: tiny, every opcode a state dict uses (OrderedDict + BUILD of _metadata).
lin = torch.nn.Linear(3, 2)
with torch.no_grad():
    lin.weight.copy_(torch.arange(6.0).reshape(2, 3) / 8)
    lin.bias.copy_(torch.tensor([0.5, -0.5]))
fixed_save(lin.state_dict(), os.path.join(SEEDS, "pytorch_model.bin"))


def entry(name, compression=zipfile.ZIP_STORED):
    """A zip entry with a fixed timestamp, so the archives are byte-for-byte reproducible."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compression
    return info


# 7. Hostile archives. The pickle bytes are assembled by hand and only written, never loaded.
def archive(name, pkl, storages=None, prefix="archive"):
    """A stored (uncompressed) zip laid out like torch's: data.pkl, data/<key>, version."""
    path = os.path.join(OUT, "hostile", name)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(entry(f"{prefix}/data.pkl"), pkl)
        for k, b in (storages or {}).items():
            z.writestr(entry(f"{prefix}/data/{k}"), b)
        z.writestr(entry(f"{prefix}/version"), b"3\n")
    # What torch's own weights_only loader says (reported, not required: Alloy is stricter
    # about storage sizes than torch, which only checks them when it builds the tensor).
    try:
        torch.load(path, weights_only=True)
        verdicts.append(f"  {name}: torch.load(weights_only=True) accepts it")
    except Exception as e:
        verdicts.append(f"  {name}: torch refuses it ({type(e).__name__})")


verdicts = []


def tensor_v2(key, size, stride, offset=0, numel=4, storage=b"torch\nFloatStorage\n"):
    """Opcodes of one `_rebuild_tensor_v2` call on the storage `key` (protocol 2 style)."""
    def tup(xs):
        return b"(" + b"".join(b"J" + struct.pack("<i", x) if -2**31 <= x < 2**31 else
                               b"\x8a\x08" + struct.pack("<q", x) for x in xs) + b"t"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" +
            b"(X\x07\x00\x00\x00storage" + b"c" + storage + b"X" + struct.pack("<I", len(key)) + key.encode() +
            b"X\x03\x00\x00\x00cpuJ" + struct.pack("<i", numel) + b"tQ" +
            b"J" + struct.pack("<i", offset) + tup(size) + tup(stride) + b"\x89" +
            b"ccollections\nOrderedDict\n)R" + b"tR")


def state_dict(entries):
    """`{name: value}` built with EMPTY_DICT/SETITEMS from already-encoded values."""
    body = b"".join(b"X" + struct.pack("<I", len(k)) + k.encode() + v for k, v in entries)
    return b"\x80\x02}(" + body + b"u."


four = struct.pack("<4f", 1, 2, 3, 4)
archive("global_os_system.bin", b"\x80\x02cos\nsystem\nX\x0b\x00\x00\x00echo pwned!\x85R.")
archive("stack_global_popen.bin", b"\x80\x04\x8c\nsubprocess\x8c\x05Popen\x93X\x02\x00\x00\x00id\x85R.")
archive("reduce_eval.bin", b"\x80\x02cbuiltins\neval\nX\x08\x00\x00\x00__file__\x85R.")
archive("reduce_storage.bin", b"\x80\x02ctorch\nFloatStorage\n)R.")
archive("build_on_tensor.bin", state_dict([("w", tensor_v2("0", [4], [1]) + b"}X\x01\x00\x00\x00xK\x01sb")]),
        {"0": four})
archive("inst.bin", b"\x80\x02(ios\nsystem\nX\x02\x00\x00\x00id.")
archive("ext1.bin", b"\x80\x02\x82\x01.")
archive("deep_nesting.bin", b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".")
archive("huge_memo_get.bin", b"\x80\x02}j\xff\xff\xff\xff.")
archive("storage_missing.bin", state_dict([("w", tensor_v2("7", [4], [1]))]), {"0": four})
archive("storage_path.bin", state_dict([("w", tensor_v2("../../../etc/passwd", [4], [1]))]), {"0": four})
archive("negative_size.bin", state_dict([("w", tensor_v2("0", [-1, 4], [4, 1]))]), {"0": four})
archive("overflowing_size.bin", state_dict([("w", tensor_v2("0", [2**62, 2**62], [1, 1]))]), {"0": four})
archive("offset_past_storage.bin", state_dict([("w", tensor_v2("0", [4], [1], offset=3))]), {"0": four})
archive("storage_numel_mismatch.bin", state_dict([("w", tensor_v2("0", [4], [1], numel=1 << 20))]), {"0": four})
archive("unknown_opcode.bin", b"\x80\x02}\xff.")
archive("complex_dtype.bin", state_dict([("w", tensor_v2("0", [2], [1], numel=2, storage=b"torch\nComplexFloatStorage\n"))]),
        {"0": four})

# Real torch.save archives Alloy refuses: an expanded view (stride 0 over a smaller storage,
# which Alloy does not copy), and a big-endian archive (byteorder "big").
fixed_save({"w": torch.arange(4.0).expand(3, 4)}, os.path.join(OUT, "hostile", "expanded.bin"))
src = zipfile.ZipFile(os.path.join(SEEDS, "pytorch_model.bin"))
with zipfile.ZipFile(os.path.join(OUT, "hostile", "big_endian.bin"), "w") as z:
    for info in src.infolist():
        z.writestr(entry(info.filename), b"big" if info.filename.endswith("/byteorder") else src.read(info))

# A torch.save archive whose entries are deflated (torch writes stored entries only).
src = zipfile.ZipFile(os.path.join(SEEDS, "pytorch_model.bin"))
with zipfile.ZipFile(os.path.join(OUT, "hostile", "compressed.bin"), "w", compression=zipfile.ZIP_DEFLATED) as z:
    for info in src.infolist():
        z.writestr(entry(info.filename, zipfile.ZIP_DEFLATED), src.read(info))
# The legacy format (PyTorch < 1.6) begins with pickles of its magic number, protocol version and
# sys info, back to back, no zip (torch/serialization.py `_legacy_save`); its head is enough here.
with open(os.path.join(OUT, "hostile", "legacy.bin"), "wb") as f:
    f.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2) +
            pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2))

# 8. A PEFT adapter saved as adapter_model.bin.
from safetensors.torch import load_file
lora = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures", "tiny", "lora")
lora_bin = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures", "tiny", "lora-bin")
os.makedirs(lora_bin, exist_ok=True)
fixed_save(load_file(os.path.join(lora, "adapter_model.safetensors")), os.path.join(lora_bin, "adapter_model.bin"))
with open(os.path.join(lora, "adapter_config.json"), "rb") as f, open(os.path.join(lora_bin, "adapter_config.json"), "wb") as g:
    g.write(f.read())

print("\n".join(verdicts))
for root, _, files in sorted(os.walk(OUT)):
    for fn in sorted(files):
        p = os.path.join(root, fn)
        print(f"{os.path.relpath(p, ROOT)}: {os.path.getsize(p)} bytes")
print(f"{os.path.relpath(os.path.join(SEEDS, 'pytorch_model.bin'), ROOT)}: {os.path.getsize(os.path.join(SEEDS, 'pytorch_model.bin'))} bytes")
