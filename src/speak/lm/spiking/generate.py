"""Sampling from the LMs: temperature, top-k, seeded. SpikeGPT uses its recurrent state (one token at a time);
the attention models (SpikeLM, the Transformer, the hourglass character LM) re-run the (truncated) context at each
step."""

from __future__ import annotations

import torch
import torch.nn as nn


def sample_next(logits: torch.Tensor, temperature: float, top_k: int, gen: torch.Generator) -> torch.Tensor:
    """logits [B, V] -> ids [B]; temperature 0 = greedy; top_k 0 = the whole vocabulary."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.double() / temperature  # [B, V]
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # [B, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # [B, V]
    return torch.multinomial(probs, 1, generator=gen)[:, 0]  # [B]


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
) -> torch.Tensor:
    """prompt [B, T0] (T0 >= 1) -> [B, T0 + max_new_tokens]."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    ids = prompt
    if hasattr(model, "step"):  # recurrent (SpikeGPT)
        logits, state = model.forward_with_state(prompt, None, recurrent=True)  # [B, T0, V]
        last = logits[:, -1]
        for i in range(max_new_tokens):
            nxt = sample_next(last, temperature, top_k, gen)  # [B]
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            if i + 1 < max_new_tokens:
                last, state = model.step(nxt, state)  # [B, V]
        return ids
    max_len = getattr(getattr(model, "config", None), "max_len", None)
    for _ in range(max_new_tokens):
        ctx = ids if max_len is None else ids[:, -max_len:]
        out = model(ctx)
        logits = getattr(out, "logits", out)  # [B, T, V]; the hourglass LM returns an output with .logits
        nxt = sample_next(logits[:, -1], temperature, top_k, gen)  # [B]
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    return ids
