"""SpeakHFTokenizer throughput on 1000-line batches (target: >= 20 MB/s with padding, truncation, attention masks).

    NUMBA_NUM_THREADS=1 python benchmarks/bench_hf_tokenize.py [--corpus PATH] [--model DIR] [--max-mb 4]
        [--batch 1000] [--passes 5]

One thread, model load and vocabulary build excluded, one warm-up pass, median of ``--passes`` passes over all
batches. MB/s = UTF-8 bytes of the lines / seconds, by the wall clock and by this process's CPU time (the
second is the one to read on a shared, loaded machine). Rows, measured in the same run:

- ``speak ids``: the two-pass compiled path (spikes -> token ends -> ids_from_offsets), no transformers;
  ``speak fused ids``: the fused scan (n-gram tokenizers), what ``__call__`` runs.
- ``hf __call__``: ``tok(batch, padding=True, truncation=True, max_length=128)`` (lists; attention mask included),
  and the same with ``return_tensors="pt"`` and with ``return_offsets_mapping=True``.
- ``hf reference``: the same call through transformers' Python path (``reference_encode``) on the first batches
  only (it is slow); the ratio compiled / reference is printed.
- ``hf tokenizers unigram``: a HF ``tokenizers`` Unigram (vocab 8000) trained on the same lines, its
  ``PreTrainedTokenizerFast`` with the same call, for scale.

The reference and the ratio use CPU time.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _lines(path: Path, max_mb: float) -> list[str]:
    import lzma

    raw = lzma.open(path, "rb").read() if path.suffix == ".xz" else path.read_bytes()
    text = raw.decode("utf-8")[: int(max_mb * 2**20)]
    return [line for line in text.split("\n") if line]


def _time(fn, batches, passes: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process) of a pass over all batches, after a warm-up."""
    for b in batches:
        fn(b)
    wall, cpu = [], []
    for _ in range(passes):
        t, c = time.perf_counter(), time.process_time()
        for b in batches:
            fn(b)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    import torch

    from speak.integrations.bench import default_corpus
    from speak.integrations.hf import SpeakHFTokenizer
    from speak.text.token_ids import encode_texts
    from speak.tokenizer import SpeakTokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--max-mb", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)

    path = args.corpus or default_corpus()
    lines = _lines(path, args.max_mb)
    batches = [lines[i : i + args.batch] for i in range(0, len(lines), args.batch)]
    n_bytes = sum(len(x.encode("utf-8")) for x in lines)
    speak = SpeakTokenizer.from_pretrained(args.model) if args.model else SpeakTokenizer.default()
    tok = SpeakHFTokenizer(speak_tokenizer=speak) if speak.segment_vocab is not None else \
        SpeakHFTokenizer.build(speak, lines)
    call = dict(padding=True, truncation=True, max_length=args.max_length)

    rows = {}
    rows["speak ids"] = _time(lambda b: encode_texts(tok.speak, tok._table, b), batches, args.passes)
    fast = tok.speak._lookup()
    if hasattr(fast.tables, "scan"):  # n-gram tables: the fused scan, what __call__ runs
        rows["speak fused ids"] = _time(lambda b: fast.encode_ids(b, tok._table), batches, args.passes)
    rows["hf __call__"] = _time(lambda b: tok(b, **call), batches, args.passes)
    rows["hf __call__ pt"] = _time(lambda b: tok(b, return_tensors="pt", **call), batches, args.passes)
    rows["hf __call__ offsets"] = _time(lambda b: tok(b, return_offsets_mapping=True, **call), batches, args.passes)
    ref_batches = batches[:2]
    ref_bytes = sum(len(x.encode("utf-8")) for b in ref_batches for x in b)
    ref = _time(lambda b: tok.reference_encode(b, **call), ref_batches, 1)[1]
    fast_same = _time(lambda b: tok(b, **call), ref_batches, args.passes)[1]

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.train_from_iterator(lines, trainers.UnigramTrainer(vocab_size=8000, special_tokens=["<pad>", "<unk>"],
                                                           unk_token="<unk>"))
    hf_uni = PreTrainedTokenizerFast(tokenizer_object=uni, pad_token="<pad>", unk_token="<unk>")
    rows["hf tokenizers unigram __call__"] = _time(lambda b: hf_uni(b, **call), batches, args.passes)

    mb = n_bytes / 1e6
    print(json.dumps({
        "corpus": str(path), "mb": round(mb, 3), "lines": len(lines), "batch": args.batch,
        "max_length": args.max_length, "threads": 1,
        "mb_s_wall": {k: round(mb / v[0], 2) for k, v in rows.items()},
        "mb_s_cpu": {k: round(mb / v[1], 2) for k, v in rows.items()},
        "hf_reference_mb_s": round(ref_bytes / 1e6 / ref, 3),
        "compiled_vs_reference": round(ref / fast_same, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
