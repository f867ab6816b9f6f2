"""`speak finetune`, `speak fit-tokenizer-grid`, `speak bench tokenize`: SPEAK with pretrained models and benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from speak.errors import SpeakError


def finetune(
    task: str = typer.Argument(..., help="xnli | uner"),
    model_dir: Path = typer.Option(..., "--model-dir", help="pretrained encoder directory (safetensors), e.g. XLM-R"),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="SpeakHFTokenizer directory (speak_hf_tokenizer.json)"),
    lang: str = typer.Option("en", help="XNLI language, or the UNER config (e.g. en_ewt) for uner"),
    train_split: str = typer.Option("train"), eval_split: str = typer.Option("validation"),
    max_train: Optional[int] = typer.Option(None, help="use at most this many training examples"),
    max_eval: Optional[int] = typer.Option(None, help="use at most this many evaluation examples"),
    steps: int = typer.Option(200), batch_size: int = typer.Option(16), lr: float = typer.Option(5e-4),
    max_length: int = typer.Option(128), lora_r: int = typer.Option(8), seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, help="write result.json here"),
) -> None:
    """LoRA fine-tuning of a pretrained encoder on SPEAK tokens (FVT embeddings; XNLI accuracy / UNER span F1)."""
    if out is not None:  # refuse an unwritable --out before the (long) fine-tuning
        from speak.atomic import check_output_dir

        check_output_dir(out, force=True, what="output folder")
    from speak.atomic import atomic_write_json
    from speak.integrations.hf import SpeakHFTokenizer
    from speak.integrations.pretrained import (FinetuneConfig, XNLI_LABELS, finetune_nli, finetune_tagging,
                                               label_set, load_uner, load_xnli, prepare_model)

    if task not in ("xnli", "uner"):
        raise SpeakError(f"unknown task {task!r}; valid: xnli, uner")
    if not model_dir.is_dir():
        raise SpeakError(f"{model_dir}: no such model directory")
    tok = SpeakHFTokenizer.from_pretrained(tokenizer)
    cfg = FinetuneConfig(steps=steps, batch_size=batch_size, lr=lr, max_length=max_length, lora_r=lora_r,
                         seed=seed)
    if task == "xnli":
        train, evaluation = load_xnli(lang, train_split, max_train), load_xnli(lang, eval_split, max_eval)
        model, embedder = prepare_model("xnli", str(model_dir), 3, tok, cfg=cfg, id2label=XNLI_LABELS)
        result = finetune_nli(model, tok, embedder, train, evaluation, cfg)
    else:
        train, evaluation = load_uner(lang, train_split, max_train), load_uner(lang, eval_split, max_eval)
        labels = label_set([*train, *evaluation])
        model, embedder = prepare_model("uner", str(model_dir), len(labels), tok, cfg=cfg, id2label=labels)
        result = finetune_tagging(model, tok, embedder, train, evaluation, labels, cfg)
    doc = {"task": task, "lang": lang, "metrics": result.metrics, "avg_tokens": result.avg_tokens,
           "final_loss": result.losses[-1] if result.losses else None, "config": result.config}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "result.json", doc)
    print(json.dumps(doc, indent=2))

def fit_tokenizer_grid(
    corpus: str = typer.Option("embedded", help="corpus: a text file (.txt/.xz/.gz) or 'embedded'"),
    steps: int = typer.Option(300, help="training steps per configuration"),
    exemplar: str = typer.Option("sentencepiece:8000", help="the segmentation to mimic (see fit-tokenizer)"),
    encoder: Optional[str] = typer.Option(None, help="comma list: char-mlp,char-mlp-2,char-ngram"),
    balanced: Optional[str] = typer.Option(None, help="comma list: true,false (L_mem's two sums weighted equally)"),
    tanh: Optional[str] = typer.Option(None, help="comma list: true,false"),
    alpha: Optional[str] = typer.Option(None, help="comma list, e.g. 1.0,1.2"),
    beta: Optional[str] = typer.Option(None, help="comma list, e.g. 0.4,0.6"),
    char_dim: Optional[str] = typer.Option(None, "--char-dim", help="comma list, e.g. 64,128"),
    max_chars: Optional[int] = typer.Option(None, help="use only the first N characters of the corpus"),
    batch_size: int = typer.Option(32), seq_len: int = typer.Option(256),
    out: Optional[Path] = typer.Option(None, help="directory for grid.json and grid.md"),
) -> None:
    """Table 7: Stage-1 mimic accuracy over a grid of encoder / tanh / alpha / beta / char dim."""
    from rich.console import Console

    from speak.atomic import check_output_dir
    from speak.cli.tokenize import naming_corpus
    from speak.integrations.grid import grid_search, parse_values, table_markdown, write_grid
    from speak.text.corpora import load_corpus
    from speak.train.mimic import MimicConfig

    if out is not None:
        check_output_dir(out, force=True, what="output folder")
    factors = {k: v for k, v in {
        "encoder": parse_values(encoder, str), "tanh": parse_values(tanh, bool),
        "alpha": parse_values(alpha, float), "beta": parse_values(beta, float),
        "balanced": parse_values(balanced, bool),
        "char_dim": parse_values(char_dim, int)}.items() if v is not None}
    text = load_corpus(corpus, max_chars=max_chars)
    console = Console(stderr=True)
    with naming_corpus(corpus):
        rows = grid_search(text, factors, steps, base=MimicConfig(exemplar=exemplar, batch_size=batch_size,
                                                                  seq_len=seq_len),
                           progress=lambda i, n, r: console.print(
                               f"[{i + 1}/{n}] spike {r.spike_acc:.2f} non-spike {r.nonspike_acc:.2f} "
                               f"({r.seconds:.0f}s)"))
    if out is not None:
        write_grid(rows, out, {"corpus": corpus, "steps": steps, "exemplar": exemplar, "factors": factors})
    print(table_markdown(rows), end="")

def bench_tokenize(
    corpus: Optional[Path] = typer.Option(None, help="text file (.txt/.xz); default: the shared English corpus, "
                                                     "else the embedded one"),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="SPEAK tokenizer directory"),
    vocab_size: int = typer.Option(8000, help="vocabulary of the SentencePiece and BPE baselines"),
    repeats: int = typer.Option(3, help="timed runs per tokenizer (best reported)"),
    max_mb: Optional[float] = typer.Option(None, help="use only the first N MB (characters) of the corpus"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """MB/s and memory of SPEAK (fast path) vs SentencePiece vs HF BPE on the same text, in one run."""
    from speak.integrations.bench import run_tokenize_benchmark

    tok = None
    if model is not None:
        from speak.tokenizer import SpeakTokenizer

        tok = SpeakTokenizer.from_pretrained(model)
    res = run_tokenize_benchmark(corpus, tokenizer=tok, vocab_size=vocab_size, repeats=repeats, max_mb=max_mb)
    summary = res.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tokenize {Path(res.corpus).name}: {res.mb:.2f} MB, {res.lines} lines "
                        f"(best of {repeats})")
    for col in ("tokenizer", "output", "MB/s", "x SentencePiece", "chars/token", "RSS growth MB"):
        table.add_column(col, justify="left" if col in ("tokenizer", "output") else "right")
    sp = res.by_name("sentencepiece").mb_s
    for r in res.runs:
        table.add_row(r.name, r.output, f"{r.mb_s:.1f}", f"{r.mb_s / sp:.2f}x", f"{r.chars_per_token:.2f}",
                      f"{r.rss_growth_mb:.0f}")
    Console().print(table)
    print(f"peak RSS of the process: {res.peak_rss_mb:.0f} MB")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the `speak` app."""
    app.command("finetune")(finetune)
    app.command("fit-tokenizer-grid")(fit_tokenizer_grid)
    bench_app.command("tokenize")(bench_tokenize)
