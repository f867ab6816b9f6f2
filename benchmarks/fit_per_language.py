"""Stage-1 mimic accuracy per language (issue: standalone tokenizer; paper Table 7 metrics).

For each corpus: train SentencePiece Unigram (vocab 8000) on its train split, fit a SPEAK tokenizer to mimic it,
report spike / non-spike accuracy, F1 and SF on the held-out valid split, for each Linear1 variant asked for.

    python benchmarks/fit_per_language.py --corpora ../shared/corpora --steps 600 [--variants tanh,no-tanh,ngram] \
        [--set mem_alpha=1.4 ...] [--json out.json]

Variants: `tanh` / `no-tanh` (the paper's per-character encoder with / without tanh), `ngram` (the hashed causal
n-gram encoder with balanced L_mem, tanh) and `ngram-ahead` (the same reading n-grams up to 2 characters ahead);
`--set` overrides MimicConfig fields for every variant.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from speak.text.corpora import load_corpus, split_corpus
from speak.text.exemplar import load_exemplar
from speak.train.mimic import MimicConfig, _lines, fit_tokenizer


VARIANTS = {
    "tanh": {"tanh": True},
    "no-tanh": {"tanh": False},
    "ngram": {"encoder": "char-ngram", "mem_balanced": True, "tanh": True},
    "ngram-ahead": {"encoder": "char-ngram", "mem_balanced": True, "tanh": True, "ngram_lookahead": 2},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="../shared/corpora", help="a folder of *.txt.xz files, or a comma list of specs")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--variants", default="tanh,no-tanh")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--set", action="append", default=[], help="MimicConfig field=value for every variant")
    args = ap.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        kind = type(getattr(MimicConfig, key))
        overrides[key] = value.lower() in ("true", "1", "yes") if kind is bool else kind(value)
    folder = Path(args.corpora)
    specs = sorted(str(p) for p in folder.glob("*.txt.xz")) if folder.is_dir() else args.corpora.split(",")
    rows = []
    print(f"{'corpus':16s} {'variant':11s} {'spike':>6s} {'non':>6s} {'F1':>6s} {'SF':>5s} {'SF ex':>5s} {'s':>4s}")
    for spec in specs:
        text = load_corpus(spec)
        train_lines, _ = _lines(split_corpus(text).train)
        exemplar = load_exemplar(f"sentencepiece:{args.vocab}", texts=train_lines)
        for variant in args.variants.split(","):
            cfg = replace(MimicConfig(steps=args.steps, **overrides), **VARIANTS[variant])
            t0 = time.time()
            _, m, _ = fit_tokenizer(text, cfg, exemplar=exemplar)
            name = Path(spec).name.split(".")[0]
            rows.append({"corpus": name, "variant": variant, **asdict(m), "seconds": time.time() - t0})
            print(f"{name:16s} {variant:11s} {m.spike_acc:6.3f} {m.nonspike_acc:6.3f} {m.f1:6.3f} {m.sf:5.2f} "
                  f"{m.exemplar_sf:5.2f} {time.time() - t0:4.0f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
