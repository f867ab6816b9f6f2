"""Time training steps of two boundary sources on the same hourglass model, side by side (steps interleaved).

    python benchmarks/bench_boundaries.py --corpus embedded --a speak --b dtp-unigram --steps 20 --preset cpu-small

Prints ms/step for each source and the ratio a/b (target: speak <= 1.10x dtp-unigram). Same function as
`speak bench boundaries` (speak.experiments.pipeline.bench_boundaries).
"""

from __future__ import annotations

import argparse
import json

from speak.experiments.pipeline import bench_boundaries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="embedded")
    ap.add_argument("--a", default="speak")
    ap.add_argument("--b", default="dtp-unigram")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override key=value")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = bench_boundaries(args.corpus, args.a, args.b, steps=args.steps, preset=args.preset,
                           batch_size=args.batch_size, seq_len=args.seq_len, seed=args.seed, device=args.device,
                           sets=tuple(args.sets))
    if args.json:
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
