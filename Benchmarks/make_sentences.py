#!/usr/bin/env python3
"""Writes 256 sentences of 40–60 words (seeded) cut from the BBC task's training texts."""
import json, random, sys
rows = [json.loads(l)["text"] for l in open(sys.argv[1])]
words = " ".join(rows).split()
rng = random.Random(0)
out = []
for _ in range(256):
    n = rng.randint(40, 60)
    s = rng.randint(0, len(words) - n)
    out.append(" ".join(words[s:s + n]))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
