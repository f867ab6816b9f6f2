"""Segment text with a trained run's boundary source (e.g. a GTok SPEAK tokenizer living in the hourglass)."""

from __future__ import annotations

from pathlib import Path

import torch

from speak.text.segment import segment


def load_run_model(run_dir: str | Path):
    """(model in eval mode, its CharVocab) from a run folder's last checkpoint."""
    from speak.train.runs import load_run_model as load

    _, vocab, model, _ = load(run_dir)
    return model.eval(), vocab


def segment_with_run(model, vocab, texts: list[str]) -> list[list[str]]:
    """Tokens of each text under the model's boundary source (Eq. 5; each text scanned from rest)."""
    out = []
    with torch.no_grad():
        for text in texts:
            if not text:
                out.append([])
                continue
            ids = torch.as_tensor(vocab.encode_array(text))[None]  # [1, L]
            hard = model(ids).boundary.hard[0]  # [L]
            out.append(segment(text, hard.numpy() > 0.5))
    return out
