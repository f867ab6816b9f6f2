"""Tokenizer benchmark: mimic accuracy and single-thread throughput to ids, SPEAK against SentencePiece, HF
`tokenizers` (Unigram and BPE) and tiktoken, per corpus, all trained on the same train split.

    python benchmarks/bench_tokenize.py [--corpora ../shared/corpora] (--models DIR | --model DIR)
        [--passes 5] [--vocab 8000] [--markdown] [--json out.json]

Protocol: one thread (RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false for HF tokenizers and tiktoken,
SentencePiece's num_threads=1, numba's scan is serial), model loading and training excluded, one warm-up pass,
then the median of `passes` timed passes over every non-empty line of the corpus (UTF-8 MB/s of input, by CPU time
of the process: every engine runs one thread, and on a shared machine wall time mostly measures the other jobs;
wall-time MB/s are in the JSON too). Every engine produces token ids for every line:

- SPEAK: the fused compiled scan (code points -> n-gram table sums -> LIF -> ids; FastSpeakTokenizer.encode_ids)
  with the token vocabulary the tokenizer ships (8000 ids built from its train split, greedy longest-prefix and
  UTF-8 byte fallback; speak.text.token_ids). Before timing, its ids on 300 valid lines are checked against the
  reference network (the torch forward, tokens mapped by SegmentVocab.pieces_of in Python).
- SentencePiece Unigram (the exemplar SPEAK mimics): `encode(lines, out_type=int, num_threads=1)`.
- HF tokenizers Unigram (Metaspace) and byte-level BPE: `encode_batch_fast(lines, add_special_tokens=False)` (the
  batch call without offsets), `.ids` of each encoding.
- tiktoken (if installed): the byte-level BPE above converted to tiktoken ranks (tiktoken's own encodings need a
  download), `encode_ordinary` per line (its batch call goes through a thread pool even with one thread).

`--models DIR` reads DIR/<corpus>-standalone for each corpus (benchmarks/fit_per_language.py --save DIR; with
`--fit`, missing ones are fitted here first, against the SentencePiece model trained for the benchmark);
`--model DIR` uses one tokenizer for every corpus (e.g. the multilingual default). Accuracy: spike / non-spike
accuracy against the SentencePiece model trained here, on the corpus's valid split.
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers / tiktoken load their thread pools
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from speak.text.corpora import load_corpus  # noqa: E402
from speak.text.segment import segment  # noqa: E402
from speak.tokenizer.fast import FastSpeakTokenizer  # noqa: E402
from speak.train.mimic import corpus_lines  # noqa: E402


def median_mb_s(fn, n_bytes: int, passes: int) -> tuple[float, float]:
    """(MB/s by the median wall time, MB/s by the median CPU time of this process) over `passes` passes after a
    warm-up. Every engine runs one thread, so CPU time is its work; on a loaded machine it is the number to read."""
    fn()  # warm: compilation, caches
    wall, cpu = [], []
    for _ in range(passes):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return n_bytes / statistics.median(wall) / 1e6, n_bytes / statistics.median(cpu) / 1e6


def reference_ids(model_dir: Path, lines: list[str]) -> list[list[int]]:
    """The slow twin: spikes from the torch network, each token through SegmentVocab.pieces_of (Python)."""
    import torch

    from speak.tokenizer import SpeakTokenizer

    tok = SpeakTokenizer.from_pretrained(model_dir)
    vocab = tok.segment_vocab
    out = []
    for line in lines:
        with torch.no_grad():
            s = tok.trace(line).s[0].numpy() > 0.5
        out.append([pid for piece in segment(line, s) for pid, _, _ in vocab.pieces_of(piece)])
    return out


def engines(train: list[str], vocab: int) -> dict:
    """name -> encode(lines) producing ids, each trained on `train`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from speak.text.exemplar import HFTokenizersExemplar, SentencePieceExemplar

    sp = SentencePieceExemplar.train(train, vocab)
    proc = sp.processor
    out = {"SentencePiece": (lambda lines: proc.encode(lines, out_type=int, num_threads=1)), "_sp": sp}
    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.decoder = decoders.Metaspace()
    uni.train_from_iterator(train, trainers.UnigramTrainer(vocab_size=vocab, unk_token="<unk>",
                                                          special_tokens=["<unk>"], show_progress=False))
    # encode_batch_fast: the batch call without character offsets (ids are all that is compared)
    out["HF Unigram"] = lambda lines: [e.ids for e in uni.encode_batch_fast(lines, add_special_tokens=False)]
    bpe = HFTokenizersExemplar.train_bpe(train, vocab).tokenizer
    out["HF BPE"] = lambda lines: [e.ids for e in bpe.encode_batch_fast(lines, add_special_tokens=False)]
    try:
        import tiktoken
    except ImportError:
        return out
    byte_of = {ch: b for b, ch in enumerate_bytes()}
    ranks = {bytes(byte_of[c] for c in tok): i for tok, i in bpe.get_vocab().items()}
    enc = tiktoken.Encoding("speak-bench-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
    out["tiktoken"] = lambda lines: [enc.encode_ordinary(line) for line in lines]  # its batch call adds a pool
    return out


# GPT-2's pre-tokenisation pattern (what HF's ByteLevel pre-tokenizer splits on) and its byte <-> character map
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def enumerate_bytes() -> list[tuple[int, str]]:
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    extra = 0
    pairs = []
    for b in range(256):
        if b in keep:
            pairs.append((b, chr(b)))
        else:
            pairs.append((b, chr(256 + extra)))
            extra += 1
    return pairs


def bench_corpus(spec: str, model_dir: Path, vocab: int, passes: int, fit: bool = False) -> dict:
    from speak.text.segment import anchor_boundaries
    from speak.train.mimic import STANDALONE, MimicConfig, boundary_metrics, fit_tokenizer_lines

    text = load_corpus(spec)
    train, valid = corpus_lines(text)
    lines = [line for line in text.split("\n") if line]
    n_bytes = sum(len(line.encode("utf-8")) for line in lines)
    eng = engines(train, vocab)
    sp = eng.pop("_sp")
    if fit and not model_dir.exists():  # the standalone default, mimicking the SentencePiece model above
        tok, _, _ = fit_tokenizer_lines(train, valid, MimicConfig(**STANDALONE), exemplar=sp)
        tok.meta["corpus"] = Path(spec).name.split(".")[0]
        tok.save_pretrained(model_dir)
    fast = FastSpeakTokenizer.from_pretrained(model_dir)
    table = fast.id_table  # the token vocabulary the tokenizer ships
    check = valid[:300]
    got = fast.encode_ids(check, table).split()
    ref = reference_ids(model_dir, check)
    mismatched = sum(g.tolist() != r for g, r in zip(got, ref))
    pred = fast.spikes_many(valid)
    gold = [anchor_boundaries(sp.segment_spikes(line), "start") for line in valid]
    m = boundary_metrics(pred, gold)
    timed = {"SPEAK": median_mb_s(lambda: fast.encode_ids(lines, table), n_bytes, passes)}
    for name, fn in eng.items():
        timed[name] = median_mb_s(lambda fn=fn: fn(lines), n_bytes, passes)
    speeds = {name: cpu for name, (_, cpu) in timed.items()}
    n_ids = int(fast.encode_ids(lines, table).ids.shape[0])
    return {"corpus": Path(spec).name.split(".")[0], "mb": n_bytes / 1e6, "spike_acc": m.spike_acc,
            "nonspike_acc": m.nonspike_acc, "sf": m.sf, "exemplar_sf": m.exemplar_sf, "mb_s": speeds,
            "mb_s_wall": {name: wall for name, (wall, _) in timed.items()},
            "speak_vs_sentencepiece_wall": timed["SPEAK"][0] / timed["SentencePiece"][0],
            "speak_vs_sentencepiece": speeds["SPEAK"] / speeds["SentencePiece"],
            "speak_chars_per_id": sum(map(len, lines)) / max(n_ids, 1),
            "parity_lines": len(check), "parity_mismatches": mismatched,
            "tables_mb": sum(f.stat().st_size for f in model_dir.glob("*tables*")) / 1e6}


def markdown(rows: list[dict]) -> str:
    names = list(rows[0]["mb_s"])
    head = ("| corpus | MB | spike acc | non-spike acc | " + " | ".join(f"{n} MB/s" for n in names)
            + " | SPEAK / SP | parity |\n|" + "---|" * (len(names) + 6))
    body = [f"| {r['corpus']} | {r['mb']:.1f} | {r['spike_acc']:.3f} | {r['nonspike_acc']:.3f} | "
            + " | ".join(f"{r['mb_s'][n]:.1f}" for n in names)
            + f" | {r['speak_vs_sentencepiece']:.2f}x | {r['parity_lines'] - r['parity_mismatches']}/"
              f"{r['parity_lines']} |" for r in rows]
    return "\n".join([head, *body])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="../shared/corpora")
    ap.add_argument("--models", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--variant", default="standalone")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--fit", action="store_true", help="with --models: fit the missing tokenizers first")
    args = ap.parse_args()
    if (args.models is None) == (args.model is None):
        ap.error("give --models DIR or --model DIR")
    import torch

    torch.set_num_threads(1)
    folder = Path(args.corpora)
    specs = sorted(str(p) for p in folder.glob("*.txt.xz")) if folder.is_dir() else args.corpora.split(",")
    rows = []
    for spec in specs:
        name = Path(spec).name.split(".")[0]
        model = args.model or args.models / f"{name}-{args.variant}"
        r = bench_corpus(spec, model, args.vocab, args.passes, fit=args.fit and args.model is None)
        rows.append(r)
        if not args.markdown:
            print(json.dumps(r), flush=True)
    if args.markdown:
        print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
