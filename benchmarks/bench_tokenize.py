"""Tokenizer throughput, one run on the same text: SPEAK (fast path) vs SentencePiece vs HF BPE (vocab 8000).

    .venv/bin/python benchmarks/bench_tokenize.py [CORPUS ...] [--json]

Default corpora: every *.txt.xz in ../shared/corpora (or $SPEAK_SHARED_CORPORA) when present, else the embedded corpus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from speak.integrations.bench import SHARED_CORPORA, default_corpus, run_tokenize_benchmark


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    paths = [Path(a) for a in argv if a != "--json"]
    if not paths:
        paths = sorted(SHARED_CORPORA.glob("*.txt.xz")) or [default_corpus()]
    results = []
    for p in paths:
        s = run_tokenize_benchmark(p).summary()
        results.append(s)
        if not as_json:
            print(f"{p.name:20s} {s['mb']:6.2f} MB  SPEAK {s['speak_mb_s']:6.1f} MB/s  SentencePiece "
                  f"{s['sentencepiece_mb_s']:5.1f} MB/s  HF BPE {s['hf_bpe_mb_s']:5.1f} MB/s  "
                  f"SPEAK/SP {s['speak_vs_sentencepiece']:.2f}x  SPEAK/BPE {s['speak_vs_hf_bpe']:.2f}x  "
                  f"peak RSS {s['peak_rss_mb']:.0f} MB", flush=True)
    if as_json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
