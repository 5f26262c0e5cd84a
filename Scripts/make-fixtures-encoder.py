#!/usr/bin/env python3
"""Makes the encoder-runtime fixtures with the reference libraries.

  tokenizer_corpus.jsonl  ≥ 200 varied lines (Unicode, accents, CJK, emoji, controls, very long)
                          with the ids of the `tokenizers` library for MiniLM's tokenizer.json,
                          truncated at 256 as sentence-transformers does.
  tiny/                   a seeded random BertModel (vocab 1000, hidden 32, 2 layers, 4 heads):
                          model.safetensors + config.json, and outputs.safetensors with
                          transformers' last hidden states for a padded batch of id sequences;
                          lora/ and rslora/ PEFT folders (r=4 and r=6 on query/key/value/dense,
                          B randomised so they matter) with PEFT's outputs, and the outputs of
                          both adapters at once (PEFT merged both into the weights).
  minilm_embeddings.json  all-MiniLM-L6-v2 embeddings (mean pooling, L2 normalise, truncation
                          at 256) of 24 sentences, from transformers; needs .assets/minilm.
Run: .venv/bin/python Scripts/make-fixtures-encoder.py
"""
import json, os, random, unicodedata
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures")
BASE = os.path.join(ROOT, ".assets", "minilm")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
random.seed(0)

# 1. Tokenizer corpus.
lines = [
    "Hello, world!", "The quick brown fox jumps over the lazy dog.", "  leading and trailing spaces  ",
    "Café crème brûlée à la mode", "naïve résumé coöperate", "ÀÉÎÕÜ ÇÑ ß æ ø å", "Ångström and Øresund",
    "中文分词测试", "日本語のテキストです。", "한국어 문장입니다", "混合English和中文text", "𠀀𠀁 rare CJK ext B",
    "emoji 😀🎉👍🏽 and ❤️ hearts", "👨‍👩‍👧‍👦 family", "flags 🇫🇷🇩🇪", "math ∑∫√∞ ≤ ≥ ≠", "currency $100 €50 £20 ¥1000",
    "tabs\tand\nnewlines\r\nhere", "control\u0001chars\u0007removed\u0000", "zero\u200bwidth\u200dspace", "soft\u00adhyphen",
    "don't can't won't it's", "e-mail: someone@example.com", "URL https://example.org/a?b=c&d=e#f", "snake_case_and camelCase",
    "UPPER lower MiXeD", "numbers 3.14159 1,000,000 42nd 1st", "((nested [brackets] {braces}))", "quotes “curly” ‘single’ «guillemets»",
    "dashes – — - ‐", "ellipsis… and ...", "Ελληνικά κείμενα", "Русский текст с ударе́нием", "עברית טקסט", "العربية نص", "हिन्दी पाठ",
    "ภาษาไทย", "Tiếng Việt có dấu", "Dvořák Škoda Łódź", "supercalifragilisticexpialidocious", "antidisestablishmentarianism",
    "a" * 120, "word " * 10, "", " ", "\u3000ideographic space", "full-width ＡＢＣ１２３", "ﬁ ligature ﬂ", "Ⅻ roman numeral",
    "x²+y²=z²", "H₂O", "½ ¼ ¾", "°C °F", "©®™", "§¶†‡", "<html><body>tag</body></html>", "\\backslash\\ and /slash/",
    "#hashtag @mention", "combining e\u0301 a\u0300", "precomposed é à", "Turkish İstanbul ı", "German Straße", "ＡＢＣ ｄｅｆ",
]
words = ["model", "merge", "expert", "délta", "tâche", "übung", "naïve", "LoRA", "TIES", "DARE", "ñandú", "東京", "😀", "!!!", "3.5",
         "pre-trained", "fine-tuned", "task-vector", "Zürich", "façade", "jalapeño", "smörgåsbord", "coöperation", "泰國", "ok"]
rng = random.Random(1)
while len(lines) < 230:
    lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))))
lines.append(" ".join(rng.choice(words) for _ in range(400)))  # very long: truncated at 256
lines.append("unbelievably " * 300)
tok = Tokenizer.from_file(os.path.join(BASE, "tokenizer.json"))
tok.no_padding()
tok.enable_truncation(256)
with open(os.path.join(OUT, "tokenizer_corpus.jsonl"), "w") as f:
    for line in lines:
        enc = tok.encode(line)
        f.write(json.dumps({"text": line, "ids": enc.ids}, ensure_ascii=False) + "\n")

# 2. Tiny BERT with transformers.
cfg = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12)
tiny = BertModel(cfg).eval()
with torch.no_grad():
    for p in tiny.parameters():
        p.add_(torch.randn_like(p) * 0.02)
tdir = os.path.join(OUT, "tiny")
os.makedirs(tdir, exist_ok=True)
tiny.save_pretrained(tdir, safe_serialization=True)
seqs = [[101, 5, 17, 300, 42, 999, 7, 102], [101, 64, 2, 102], [101] + list(range(200, 230)) + [102]]
L = max(map(len, seqs))
ids = torch.tensor([s + [0] * (L - len(s)) for s in seqs])
mask = torch.tensor([[1] * len(s) + [0] * (L - len(s)) for s in seqs])


def outputs(model):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state.contiguous()


ref = {"input_ids": ids.to(torch.int64), "attention_mask": mask.to(torch.int64), "base": outputs(tiny)}

from peft import LoraConfig, get_peft_model
import copy

def lora(r, alpha, rslora, seed, name):
    torch.manual_seed(seed)
    m = get_peft_model(copy.deepcopy(tiny), LoraConfig(r=r, lora_alpha=alpha, use_rslora=rslora, lora_dropout=0.0,
                                                       target_modules=["query", "key", "value", "dense"]))
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn_like(p) * 0.1)
    m.eval()
    m.save_pretrained(os.path.join(tdir, name))
    return m

a = lora(4, 8, False, 1, "lora")
ref["lora"] = outputs(a)
b = lora(6, 12, True, 2, "rslora")
ref["rslora"] = outputs(b)
# Both at once: merge each into a copy of the base and compare (deltas add).
both = copy.deepcopy(tiny)
with torch.no_grad():
    for m in (a, b):
        merged = copy.deepcopy(m).merge_and_unload()
        for (n, p), (_, q) in zip(both.named_parameters(), merged.named_parameters()):
            p.add_(q - dict(tiny.named_parameters())[n])
ref["lora_plus_rslora"] = outputs(both.eval())
save_file(ref, os.path.join(tdir, "outputs.safetensors"))

# 3. MiniLM embeddings, sentence-transformers style.
sentences = lines[:22] + [lines[-2], lines[-1]]
hf_tok = AutoTokenizer.from_pretrained(BASE)
model = BertModel.from_pretrained(BASE).eval()
enc = hf_tok(sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
with torch.no_grad():
    h = model(**enc).last_hidden_state
m = enc["attention_mask"].unsqueeze(-1).float()
emb = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
json.dump({"sentences": sentences, "embeddings": [[round(float(x), 7) for x in e] for e in emb]},
          open(os.path.join(OUT, "minilm_embeddings.json"), "w"), ensure_ascii=False)
print("encoder fixtures written")
