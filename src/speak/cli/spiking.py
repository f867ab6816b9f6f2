"""`speak energy` and `speak generate`: the spiking LMs' energy estimate and sampling (docs/spiking_lms.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _encode(text: str, vocab: list[str] | None, vocab_size: int) -> list[int]:
    from speak.errors import SpeakError

    if vocab is not None:
        index = {s: i for i, s in enumerate(vocab)}
        unk = index.get("<unk>")
        ids = []
        for ch in text:
            if ch in index:
                ids.append(index[ch])
            elif unk is not None:
                ids.append(unk)
            else:
                raise SpeakError(f"prompt character {ch!r} is not in the model's vocabulary")
        return ids
    ids = [ord(ch) for ch in text]
    bad = [ch for ch, i in zip(text, ids) if i >= vocab_size]
    if bad:
        raise SpeakError(f"prompt character {bad[0]!r} is outside the model's code-point vocabulary ({vocab_size})")
    return ids


def firing_rate_text(rate: float) -> str:
    """A firing rate for people: 'n/a' with the reason when no layer reads spikes (the rate is then undefined)."""
    import math

    return "n/a (no layer reads spikes)" if math.isnan(rate) else f"{rate:.4f}"


def _decode(ids: list[int], vocab: list[str] | None) -> str:
    if vocab is not None:
        return "".join(vocab[i] if len(vocab[i]) == 1 else "" for i in ids)
    return "".join(chr(i) for i in ids)


def _generate_hourglass(run: Path, prompt: str, max_tokens: int, temperature: float, top_k: int, seed: int) -> str:
    """Prompt + sampled continuation from an hourglass run's last checkpoint (one character per step; the model
    re-reads the context, truncated to its max_len, and makes its own boundaries at every step). An empty prompt
    starts from a newline (or the most frequent character when the vocabulary has none)."""
    import torch

    from speak.lm.spiking.generate import generate
    from speak.train.runs import load_run_model

    _, vocab, model, _ = load_run_model(run)
    start = prompt or ("\n" if "\n" in vocab else vocab.chars[0])
    ids = torch.tensor([[vocab.id_of(ch) for ch in start]], dtype=torch.long)  # [1, n]
    out = generate(model, ids, max_tokens, temperature, top_k, seed)  # [1, n + max_tokens]
    specials = {0: "", 1: "\ufffd"}  # <pad>, <unk>
    return prompt + "".join(specials[i] if i in specials else vocab.char_of(i) for i in out[0, ids.shape[1]:].tolist())


def sdllm(
    run: Path = typer.Argument(..., help="a token-LM run folder (speak train --model transformer ...)"),
    time_steps: int = typer.Option(4, help="spikes per activation at most (integer levels -T..T)"),
    windows: int = typer.Option(64, help="test windows evaluated (0 = all)"),
) -> None:
    """SDLLM: convert a trained LM into a spike-driven one; print the BPC change and the firing rate."""
    from speak.experiments.sdllm_run import convert_run

    r = convert_run(run, time_steps=time_steps, max_windows=windows or None)
    print(f"{r['model']} -> SDLLM (T={time_steps}): test BPC {r['bpc_float']:.4f} -> {r['bpc_sdllm']:.4f} "
          f"({r['bpc_change']:+.4f}); firing rate {r['firing_rate']:.3f}; "
          f"{r['energy_pj_per_char']:.0f} pJ/char; wrote {run / 'sdllm.json'}")

def energy(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="model dir (config.json + safetensors)"),
    preset: str = typer.Option("spikegpt-tiny", help="fresh model when no checkpoint is given"),
    batch: int = typer.Option(1, min=1),
    seq_len: int = typer.Option(128, min=1),
    constants: str = typer.Option("45nm-fp32", help="energy constants: 45nm-fp32, 45nm-fp16, 45nm-int32, 45nm-int8"),
    seed: int = typer.Option(0),
    scan_chars: int = typer.Option(0, help="also price the SPEAK tokenizer scan over this many characters"),
) -> None:
    """Count MACs / ACs / firing rates with run-time hooks on a forward pass over random ids; print a table."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from speak.errors import SpeakError
    from speak.lm.energy import ENERGY_CONSTANTS, measure_energy, tokenizer_scan_energy
    from speak.lm.spiking.io import load_model
    from speak.lm.spiking.presets import build_preset

    if constants not in ENERGY_CONSTANTS:
        raise SpeakError(f"unknown energy constants {constants!r}; known: {', '.join(ENERGY_CONSTANTS)}")
    torch.manual_seed(seed)
    if checkpoint is not None:
        model, _ = load_model(checkpoint)
        label = str(checkpoint)
    else:
        model, label = build_preset(preset), preset
    model.eval()
    V = model.config.vocab_size
    ids = torch.randint(0, V, (batch, seq_len), generator=torch.Generator().manual_seed(seed))
    if checkpoint is None and preset == "sdllm-tiny":
        from speak.lm.spiking.sdllm import convert

        model = convert(model, ids)
    rep = measure_energy(model, ids, constants)
    table = Table(title=f"energy: {label}  ({batch} x {seq_len} tokens, {constants})")
    for col in ("layer", "kind", "input", "MACs", "ACs", "firing rate", "energy (nJ)"):
        left = col in ("layer", "kind", "input")
        table.add_column(col, justify="left" if left else "right", overflow="fold", no_wrap=col != "layer")
    rows = list(rep.layers)
    if scan_chars:
        scan = tokenizer_scan_energy(scan_chars, constants=constants)
        rows += scan.layers
    for l in rows:
        fr = "-" if l.input_numel == 0 else f"{l.firing_rate:.3f}"
        if l.kind == "scan":
            inp = "-"
        else:
            inp = "spikes" if l.spiking else ("dense" if l.spike_calls == 0 else "mixed")
        table.add_row(l.name, l.kind, inp, f"{l.macs:,}", f"{l.acs:,}", fr, f"{l.energy_pj / 1e3:.2f}")
    console = Console(width=max(Console().width, 110))
    console.print(table)
    console.print(
        f"total {rep.total_pj / 1e6:.4f} uJ, {rep.pj_per_token / 1e3:.3f} nJ/token, "
        f"MACs {rep.total_macs:,}, ACs {rep.total_acs:,}, mean firing rate {firing_rate_text(rep.mean_firing_rate)}"
    )
    if scan_chars:
        console.print(f"tokenizer scan: {scan.total_pj:.1f} pJ for {scan_chars} chars ({scan.pj_per_token:.2f} pJ/char)")


def generate_cmd(
    checkpoint: Optional[Path] = typer.Argument(None, help="model dir written by save_model (config.json + safetensors)"),
    run: Optional[Path] = typer.Option(None, "--run", help="a run folder of `speak train` (token LM or hourglass)"),
    prompt: str = typer.Option("", help="text to continue (default: the first vocabulary entry)"),
    max_tokens: int = typer.Option(100, min=0),
    temperature: float = typer.Option(1.0, min=0.0, help="0 = greedy"),
    top_k: int = typer.Option(0, min=0, help="0 = no top-k filter"),
    seed: int = typer.Option(0),
) -> None:
    """Sample a continuation of PROMPT from a saved model (characters: the config's vocab, else code points), from
    a token-LM run folder (--run: its tokenizer and segment vocabulary) or from an hourglass run folder (--run of
    `speak train --boundary ...`: its last checkpoint and character vocabulary); runs print prompt + continuation."""
    import torch

    from speak.errors import SpeakError
    from speak.lm.spiking.generate import generate
    from speak.lm.spiking.io import load_model
    from speak.train import token_lm

    if run is None and checkpoint is not None and token_lm.is_run_dir(checkpoint):
        run = checkpoint
    if run is not None and not token_lm.is_run_dir(run):
        typer.echo(_generate_hourglass(run, prompt, max_tokens, temperature, top_k, seed))
        return
    if run is not None:
        typer.echo(token_lm.generate_from_run(run, prompt, max_tokens, temperature, top_k, seed))
        return
    if checkpoint is None:
        raise SpeakError("give a model directory (CHECKPOINT) or a run folder (--run DIR)")
    model, cfg = load_model(checkpoint)
    vocab = cfg.get("vocab")
    V = model.config.vocab_size
    ids = _encode(prompt, vocab, V) if prompt else [0]
    out = generate(model, torch.tensor([ids], dtype=torch.long), max_tokens, temperature, top_k, seed)
    typer.echo(_decode(out[0].tolist(), vocab) if prompt else _decode(out[0, 1:].tolist(), vocab))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the `speak` app."""
    app.command("sdllm")(sdllm)
    app.command("energy")(energy)
    app.command("generate")(generate_cmd)
