"""SDLLM conversion of a trained token-LM run (speak train --model transformer ...): the BPC change and the
firing rate of the spike-driven copy, on the run's own test split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speak.atomic import atomic_write_json


def convert_run(run_dir: str | Path, *, time_steps: int = 4, max_windows: int | None = 64,
                calibration_windows: int = 8) -> dict[str, Any]:
    """Convert the run's model with SDLLM (`speak.lm.spiking.sdllm.convert`); evaluate both on the test split.

    Calibration uses windows of the TRAIN split only. Writes RUN/sdllm.json and returns the record.
    """
    from speak.lm.spiking.sdllm import SDLLMConfig, convert
    from speak.train import token_lm
    from speak.train.config import config_from_dict
    from speak.train.runs import load_splits

    run_dir = Path(run_dir)
    model, vocab, segmenter, info = token_lm.load_run(run_dir)
    cfg = config_from_dict(json.loads((run_dir / "config.json").read_text(encoding="utf-8")), validate_model=False)
    splits = load_splits(cfg.corpus, cfg.clean)
    test = token_lm.encode_text(vocab, segmenter, splits.test)
    train = token_lm.encode_text(vocab, segmenter, splits.train[: 200 * cfg.seq_len])
    L = min(cfg.seq_len, train.ids.size - 1)
    starts = np.linspace(0, train.ids.size - L - 1, calibration_windows).astype(np.int64)
    calib = torch.from_numpy(np.stack([train.ids[s : s + L] for s in starts]))  # [n, L]
    evaluate = dict(scored=cfg.scored, context=cfg.context, batch_size=cfg.eval_batch_size, max_windows=max_windows)
    before = token_lm.evaluate_token_bpc(model, test, **evaluate)
    spiking = convert(model, calib, SDLLMConfig(time_steps=time_steps)).eval()
    after = token_lm.evaluate_token_bpc(spiking, test, **evaluate)
    energy = token_lm.energy_metrics(spiking, test, seq_len=cfg.seq_len, batch_size=cfg.eval_batch_size,
                                     segmenter=segmenter, text=splits.test)
    record = {"run": str(run_dir), "model": info.get("model"), "time_steps": time_steps,
              "bpc_float": before["bpc"], "bpc_sdllm": after["bpc"], "bpc_change": after["bpc"] - before["bpc"],
              "firing_rate": energy["firing_rate"], "energy_pj_per_char": energy["energy_pj_per_char"],
              "test_windows": before["windows"]}
    atomic_write_json(run_dir / "sdllm.json", record)
    return record
