#!/usr/bin/env python3
"""Makes the encoder-family fixtures (Alloy issue 13) with transformers and PEFT.

For each family in mpnet, electra, modernbert, xlm-roberta it writes
Tests/EncoderTests/Fixtures/families/<family>/:

  config.json, model.safetensors  a seeded random base model (transformers' config class,
                                  hidden 32, 2–3 layers), saved by `save_pretrained` (transformers 5:
                                  no `embeddings.position_ids` buffer); for mpnet the buffer
                                  `embeddings.position_ids` is added back, as older checkpoints have it.
  lora/                           a PEFT LoRA folder (r=4, alpha 8, B randomised so it matters) on the
                                  family's attention projections (query/value, q/v, Wqkv).
  expected.safetensors            `ids.<n>` (int64) id sequences of lengths 1, 7, 23, 40 and
                                  `base.<n>` / `lora.<n>` (L × hidden, f32): transformers' and PEFT's
                                  last hidden states, each sequence run alone (no padding).
  seqcls/                         a tiny `*ForSequenceClassification` checkpoint as Trainer saves it
                                  (task prefix `mpnet.`, `electra.`, `model.`, `roberta.`, head
                                  tensors), with `embeddings.position_ids` / `token_type_ids` buffers
                                  added where the family has them.

ModernBERT: 3 layers, global_attn_every_n_layers 2, local_attention 8 (±4 tokens), so that the
sliding window matters on the longer sequences. Eager attention throughout.

Also writes families/bert-seqcls/ and families/distilbert-seqcls/ (tiny BERT / DistilBERT
sequence classifiers: the pooler and classifier, pre_classifier and classifier heads), and
families/mpnet_bucket.safetensors (transformers' relative-position buckets for
relative positions −600…600) and, when .assets/mpnet exists (all-mpnet-base-v2),
families/mpnet_real.json: 16 sentences, their ids from the `tokenizers` library
(.assets/mpnet/tokenizer.json) and transformers' sentence embeddings (mean pooling, L2 normalise).

Run: HF_HUB_OFFLINE=1 .venv/bin/python Scripts/make-fixtures-families.py
"""
import json, os, shutil
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
from safetensors.torch import save_file, load_file
from transformers import (MPNetConfig, MPNetModel, MPNetForSequenceClassification, ElectraConfig, ElectraModel,
                          ElectraForSequenceClassification, ModernBertConfig, ModernBertModel,
                          ModernBertForSequenceClassification, XLMRobertaConfig, XLMRobertaModel,
                          XLMRobertaForSequenceClassification, BertConfig, BertForSequenceClassification,
                          DistilBertConfig, DistilBertForSequenceClassification)
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder
from peft import LoraConfig, get_peft_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures", "families")
os.makedirs(OUT, exist_ok=True)
LENGTHS = [1, 7, 23, 40]


def ids_for(vocab, n, g):
    # ids from 3 up: never the padding index (1 for MPNet/RoBERTa), so positions are 0-based + offset.
    return torch.randint(3, vocab, (n,), generator=g)


def build(family, make_model, cfg, targets, make_seqcls, seqcls_cfg, buffers):
    d = os.path.join(OUT, family)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    torch.manual_seed(0)
    model = make_model(cfg).eval()
    # LayerNorm / norm weights random too, so a swapped γ/β would show; MPNet's bias table N(0, 1).
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n.lower():
                p.add_(torch.randn_like(p) * 0.1)
            if "relative_attention_bias" in n:  # MPNet: a bias large enough to matter
                p.copy_(torch.randn_like(p))
    model.save_pretrained(d, safe_serialization=True)
    if family == "mpnet":  # an older checkpoint: the position_ids buffer present
        t = load_file(os.path.join(d, "model.safetensors"))
        t["embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings).unsqueeze(0)
        save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    g = torch.Generator().manual_seed(1)
    expected = {}
    seqs = [ids_for(cfg.vocab_size, n, g) for n in LENGTHS]
    with torch.no_grad():
        for i, s in enumerate(seqs):
            expected[f"ids.{i}"] = s.clone()
            expected[f"base.{i}"] = model(input_ids=s.unsqueeze(0)).last_hidden_state[0].contiguous()
    lcfg = LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0)
    peft_model = get_peft_model(model, lcfg)
    torch.manual_seed(2)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn_like(p) * 0.2)
    peft_model.eval()
    peft_model.save_pretrained(os.path.join(d, "lora"))
    with torch.no_grad():
        for i, s in enumerate(seqs):
            expected[f"lora.{i}"] = peft_model(input_ids=s.unsqueeze(0)).last_hidden_state[0].contiguous()
    save_file(expected, os.path.join(d, "expected.safetensors"))
    # A Trainer-style sequence-classification checkpoint (tiny, its own config).
    torch.manual_seed(3)
    sc = make_seqcls(seqcls_cfg)
    sd = os.path.join(d, "seqcls")
    sc.save_pretrained(sd, safe_serialization=True)
    if buffers:
        t = load_file(os.path.join(sd, "model.safetensors"))
        for name in buffers:
            t[name] = torch.zeros(1, seqcls_cfg.max_position_embeddings, dtype=torch.long) if "token_type" in name \
                else torch.arange(seqcls_cfg.max_position_embeddings).unsqueeze(0)
        save_file(t, os.path.join(sd, "model.safetensors"), metadata={"format": "pt"})
    print(family, {k: tuple(v.shape) for k, v in load_file(os.path.join(sd, "model.safetensors")).items() if "layer" not in k})


small = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
             max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
tiny = dict(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
            max_position_embeddings=24, num_labels=3)

build("mpnet", MPNetModel, MPNetConfig(**small, layer_norm_eps=1e-5, attn_implementation="eager"), ["q", "v"],
      MPNetForSequenceClassification, MPNetConfig(**tiny), ["mpnet.embeddings.position_ids"])
build("electra", ElectraModel, ElectraConfig(**small, embedding_size=24, attn_implementation="eager"), ["query", "value"],
      ElectraForSequenceClassification, ElectraConfig(**tiny, embedding_size=12),
      ["electra.embeddings.position_ids", "electra.embeddings.token_type_ids"])
build("xlm-roberta", XLMRobertaModel, XLMRobertaConfig(**small, layer_norm_eps=1e-5, attn_implementation="eager"),
      ["query", "value"], XLMRobertaForSequenceClassification, XLMRobertaConfig(**tiny), [])
mb = dict(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=48,
          max_position_embeddings=64, global_attn_every_n_layers=2, local_attention=8, global_rope_theta=160000.0,
          local_rope_theta=1000.0, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
          attn_implementation="eager")
build("modernbert", ModernBertModel, ModernBertConfig(**mb), ["Wqkv"],
      ModernBertForSequenceClassification,
      ModernBertConfig(**{**mb, "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1, "intermediate_size": 24,
                          "num_labels": 3}), [])

# A BertForSequenceClassification (classifier + pooler) with both buffers.
d = os.path.join(OUT, "bert-seqcls")
shutil.rmtree(d, ignore_errors=True)
torch.manual_seed(4)
bcfg = BertConfig(**tiny)
BertForSequenceClassification(bcfg).save_pretrained(d, safe_serialization=True)
t = load_file(os.path.join(d, "model.safetensors"))
t["bert.embeddings.position_ids"] = torch.arange(24).unsqueeze(0)
t["bert.embeddings.token_type_ids"] = torch.zeros(1, 24, dtype=torch.long)
save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})

# A DistilBertForSequenceClassification (pre_classifier + classifier), transformers 5 style (no buffers).
d = os.path.join(OUT, "distilbert-seqcls")
shutil.rmtree(d, ignore_errors=True)
torch.manual_seed(5)
DistilBertForSequenceClassification(DistilBertConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2, hidden_dim=24,
                                                     max_position_embeddings=24, num_labels=3)).save_pretrained(d, safe_serialization=True)

# MPNet's relative-position buckets as transformers computes them (32 buckets, max distance 128).
rel = torch.arange(-600, 601)
save_file({"relative_position": rel, "bucket": MPNetEncoder.relative_position_bucket(rel, num_buckets=32, max_distance=128)},
          os.path.join(OUT, "mpnet_bucket.safetensors"))

# all-mpnet-base-v2 (real weights) on 16 sentences.
real = os.path.join(ROOT, ".assets", "mpnet")
if os.path.exists(os.path.join(real, "model.safetensors")):
    from tokenizers import Tokenizer
    sentences = [
        "This framework generates embeddings for each input sentence.",
        "Sentences are passed as a list of string.",
        "The quick brown fox jumps over the lazy dog.",
        "A man is eating food.", "A man is riding a white horse on an enclosed ground.",
        "Café crème brûlée à la mode, naïve résumé.", "中文分词测试 and 日本語のテキスト",
        "emoji 😀🎉 and ❤️ hearts", "Hi", "?",
        "MPNet combines masked and permuted language modelling to pre-train sentence encoders, "
        "and all-mpnet-base-v2 was fine-tuned on over a billion sentence pairs with a contrastive objective; "
        "this sentence is long on purpose so that positions beyond one hundred and twenty-eight tokens "
        "exercise the logarithmic buckets of the relative position bias, which saturate at a distance of "
        "one hundred and twenty-eight, and the absolute position table beyond its first rows as well, "
        "repeating: the relative attention bias is shared by all layers and added to every head's scores. "
        "A second paragraph keeps going, describing nothing in particular, only so that the sequence passes "
        "two hundred tokens and the farthest pairs of tokens fall in the last, saturated bucket of the bias.",
        "numbers 3.14159 1,000,000 42nd", "UPPER lower MiXeD case", "don't can't won't it's",
        "e-mail: someone@example.com, URL https://example.org/a?b=c",
        "The cat sat on the mat while the dog slept by the fire.",
    ]
    tok = Tokenizer.from_file(os.path.join(real, "tokenizer.json"))
    tok.enable_truncation(384)
    tok.no_padding()
    ids = [tok.encode(s).ids for s in sentences]
    model = MPNetModel.from_pretrained(real, attn_implementation="eager").eval()
    embs = []
    with torch.no_grad():
        for x in ids:
            h = model(input_ids=torch.tensor([x])).last_hidden_state[0]
            m = h.mean(0)
            embs.append((m / m.norm().clamp_min(1e-12)).tolist())
    with open(os.path.join(OUT, "mpnet_real.json"), "w") as f:
        json.dump({"sentences": sentences, "ids": ids, "embeddings": [[round(v, 7) for v in e] for e in embs]}, f)
    print("mpnet_real: lengths", [len(x) for x in ids])
else:
    print("skipped mpnet_real.json: .assets/mpnet missing")
