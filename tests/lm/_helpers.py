"""Shared helpers for the hourglass LM tests: a tiny multi-script alphabet and model factory."""

from __future__ import annotations

import torch

from speak.lm.hourglass import BoundaryConfig, HourglassConfig, HourglassLM

TEXT = (
    "the quick brown fox jumps over the lazy dog. a dog, a fox and 42 cats sleep. "
    "привет мир. שלום עולם. مرحبا. नमस्ते दुनिया. 你好世界. "
)
ALPHABET: tuple[str, ...] = ("<pad>", "<unk>") + tuple(sorted(set(TEXT)))
INDEX = {c: i for i, c in enumerate(ALPHABET)}
SOURCES = ("none", "fixed", "whitespace", "dtp-entropy", "dtp-unigram", "dtp-gumbel", "magnet", "hnet", "blt")


def encode(text: str) -> torch.Tensor:
    return torch.tensor([INDEX.get(c, 1) for c in text], dtype=torch.long)


def tiny_config(name: str, **boundary_opts) -> HourglassConfig:
    return HourglassConfig.from_preset(
        "cpu-tiny", len(ALPHABET), alphabet=ALPHABET, boundary=BoundaryConfig(name=name, **boundary_opts)
    )


def tiny_model(name: str, seed: int = 0, **boundary_opts) -> HourglassLM:
    torch.manual_seed(seed)
    return HourglassLM(tiny_config(name, **boundary_opts))


def all_sources() -> list:
    return [*SOURCES, "speak"]
