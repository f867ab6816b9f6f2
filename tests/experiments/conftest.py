"""Fixtures: synthetic experiment records."""

from __future__ import annotations

import pytest

from ._helpers import BPC, SF, write_log


@pytest.fixture
def records(tmp_path):
    recs = []
    for (method, corpus), values in BPC.items():
        for seed, v in enumerate(values):
            log = write_log(tmp_path / "logs" / f"{method}-{corpus}-{seed}.csv", [10, 20, 30], [3.0, 2.0, v],
                            [2.0, 3.0, SF[(method, corpus)][seed]],
                            reject=[0.1, 0.5, 0.9] if method == "speak" else None)
            recs.append({"method": method, "corpus": f"/data/{corpus}.txt.xz", "corpus_name": corpus, "seed": seed,
                         "bpc": v, "sf": SF[(method, corpus)][seed], "train_log": str(log),
                         "lm_params": 1_000_000, "tokenizer_params": 50_000 if method == "speak" else 150_000,
                         "tokenize_ms_per_batch": 6.0 if method == "speak" else 8.0,
                         "infer_ms_per_batch": 9.0 if method == "speak" else 10.0})
    return recs
