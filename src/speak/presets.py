"""Every named scale in one place (pure data, no imports): ``--preset NAME`` picks a row of each table.

- ``TRAINING``: the training protocol (``speak.train.config.TrainConfig`` fields). ``paper`` is DTP's protocol
  (SPEC section 4); ``configs/<name>.yaml`` are the same rows as files (a test keeps them in sync).
- ``HOURGLASS``: the hourglass LM's size (``speak.lm.hourglass.HourglassConfig`` fields).
- ``TOKEN_LM``: the size of a token-level LM trained on a tokenizer's segments (``speak.train.token_lm``).
"""

from __future__ import annotations

from typing import Any

TRAINING_PRESETS: dict[str, dict[str, Any]] = {
    "cpu-tiny": {
        "preset": "cpu-tiny", "steps": 200, "batch_size": 8, "seq_len": 128, "lr": 2e-3, "warmup": 20,
        "eval_every": 100, "eval_windows": 16, "eval_batch_size": 16, "test_windows": 64,
        "timing_batches": 5, "log_every": 10, "checkpoint_every": 100, "exemplar_vocab": 500,
    },
    "cpu-small": {
        "preset": "cpu-small", "steps": 2000, "batch_size": 8, "seq_len": 512, "lr": 1e-3, "warmup": 200,
        "eval_every": 500, "eval_windows": 32, "eval_batch_size": 8, "test_windows": 0,
        "timing_batches": 10, "log_every": 10, "checkpoint_every": 500, "exemplar_vocab": 1000,
    },
    "paper": {
        "preset": "paper", "steps": 200_000, "batch_size": 8, "seq_len": 2048, "lr": 2.5e-4, "warmup": 4000,
        "grad_clip": 0.25, "eval_every": 5000, "eval_windows": 64, "eval_scored": 512, "eval_context": 1536,
        "eval_batch_size": 8, "test_windows": 0, "timing_batches": 20, "log_every": 100,
        "checkpoint_every": 5000, "amp": "auto", "exemplar_vocab": 8000,
    },
}

HOURGLASS_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(d_model=512, n_heads=8, d_ff=2048, layers=(2, 8, 2), dropout=0.1, max_len=2048),
    # CPU presets run no dropout: their short runs are underfit, and attention dropout forces SDPA's math path,
    # which cost a third of a cpu-small step (measured with torch.profiler).
    "cpu-small": dict(d_model=128, n_heads=4, d_ff=512, layers=(1, 2, 1), dropout=0.0, max_len=2048),
    "cpu-tiny": dict(d_model=32, n_heads=2, d_ff=64, layers=(1, 1, 1), dropout=0.0, max_len=512),
}

TOKEN_LM_PRESETS: dict[str, dict[str, int]] = {
    "cpu-tiny": {"d_model": 32, "n_layers": 2, "n_heads": 2, "vocab_size": 1000},
    "cpu-small": {"d_model": 128, "n_layers": 4, "n_heads": 4, "vocab_size": 4000},
    "paper": {"d_model": 512, "n_layers": 12, "n_heads": 8, "vocab_size": 8000},
}
