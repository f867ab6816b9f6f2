"""Synthetic experiment records and run folders (no training)."""

from __future__ import annotations

import json
from pathlib import Path


def write_log(path: Path, steps, bpc, sf, reject=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["step", "bpc", "sf"] + (["proxy_reject_rate", "proxy_epoch"] if reject is not None else [])
    lines = [",".join(cols)]
    for i, st in enumerate(steps):
        row = [st, bpc[i], sf[i]] + ([reject[i], 0.5 * i] if reject is not None else [])
        lines.append(",".join(str(x) for x in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# BPC per (method, corpus) over seeds 0, 1, 2
BPC = {
    ("vanilla", "a"): [1.30, 1.32, 1.31], ("magnet", "a"): [1.20, 1.22, 1.21], ("speak", "a"): [1.10, 1.11, 1.12],
    ("vanilla", "b"): [1.50, 1.52, 1.55], ("magnet", "b"): [1.42, 1.40, 1.43], ("speak", "b"): [1.41, 1.44, 1.40],
}
SF = {("vanilla", c): [1.0, 1.0, 1.0] for c in "ab"}
SF.update({("magnet", c): [4.0, 4.2, 4.4] for c in "ab"})
SF.update({("speak", c): [4.5, 4.6, 4.7] for c in "ab"})


def fake_metrics(run_dir: Path, method: str, corpus: str, seed: int, bpc: float = 1.0) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    m = {"bpc": bpc, "sf": 2.0, "lm_params": 10, "tokenizer_params": 1, "tokenize_ms_per_batch": 1.0,
         "infer_ms_per_batch": 2.0, "steps": 3, "boundary": method, "corpus": corpus, "seed": seed}
    (run_dir / "metrics.json").write_text(json.dumps(m), encoding="utf-8")
    write_log(run_dir / "train_log.csv", [1, 2, 3], [3.0, 2.0, bpc], [1.0, 2.0, 2.0])
    return m
