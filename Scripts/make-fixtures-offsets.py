#!/usr/bin/env python3
"""Makes the tokenizer-offset fixture with the reference library (offline, deterministic).

Writes Tests/EncoderTests/Fixtures/tokenizers/offsets.jsonl: for MiniLM's tokenizer.json
(Tests/EncoderTests/Fixtures/minilm_tokenizer.json: BertNormalizer with lowercase and accent
stripping) and a cased variant of it (normalizer.lowercase and normalizer.strip_accents set to false,
so text keeps its accents and case; the test makes the same variant), every line of corpus.jsonl, untruncated and truncated at 16:
  {"tokenizer", "max_length" (null: untruncated), "text", "ids", "offsets": [[start, stop]...],
   "special": [0/1...]}
= tokenizers' Tokenizer.encode(text) ids, character offsets and special-tokens mask.
Run: HF_HUB_OFFLINE=1 .venv/bin/python Scripts/make-fixtures-offsets.py
"""
import json, os
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures")
lines = [json.loads(l)["text"] for l in open(os.path.join(FIX, "tokenizers", "corpus.jsonl"), encoding="utf-8")]
minilm = open(os.path.join(FIX, "minilm_tokenizer.json"), encoding="utf-8").read()
cased = json.loads(minilm)
cased["normalizer"]["lowercase"] = False
cased["normalizer"]["strip_accents"] = False
variants = {"minilm": Tokenizer.from_str(minilm), "minilm_cased": Tokenizer.from_str(json.dumps(cased))}
with open(os.path.join(FIX, "tokenizers", "offsets.jsonl"), "w", encoding="utf-8") as f:
    for name, tok in variants.items():
        tok.no_padding()
        for max_length in (None, 16):
            if max_length:
                tok.enable_truncation(max_length)
            else:
                tok.no_truncation()
            for text in lines:
                e = tok.encode(text)
                f.write(json.dumps({"tokenizer": name, "max_length": max_length, "text": text, "ids": e.ids,
                                    "offsets": [list(o) for o in e.offsets], "special": e.special_tokens_mask},
                                   ensure_ascii=False) + "\n")
