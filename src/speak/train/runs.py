"""Building a run: corpus splits, the vocabulary, the model, the training stream with the targets its boundary
source asks for (none, an exemplar segmentation, or the SPEAK proxy and its MH plug-in), and the run folder's files.
The generic loop is :mod:`speak.train.trainer`; the pipeline that trains and then evaluates is
:func:`speak.experiments.pipeline.train_and_evaluate`.

A run folder holds ``config.yaml`` (human), ``config.json`` (exact), ``vocab.json``, ``checkpoints/``,
``train_log.csv``, ``eval_log.csv`` and, once finished, ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from speak.atomic import atomic_write_json, atomic_write_text, ensure_dir
from speak.errors import SpeakError
from speak.lm.boundaries import Targets, get_source
from speak.train.config import TrainConfig, config_from_dict, dump_yaml, model_config
from speak.train.data import CharStream, exemplar_boundaries
from speak.train.provenance import write_corpus_record
from speak.train.trainer import DistInfo

__all__ = [
    "METRICS_FILE",
    "RunData",
    "build_hourglass",
    "build_training_stream",
    "check_splits",
    "exemplar_spec",
    "load_run_model",
    "load_splits",
    "prepare_data",
    "read_run_files",
    "write_run_files",
]

METRICS_FILE = "metrics.json"  # a finished run's results (written last, atomically: its presence marks "done")


@dataclasses.dataclass
class RunData:
    """A corpus prepared for a run: texts of the three splits, the vocabulary and encoded ids."""

    vocab: Any
    train_text: str
    valid_text: str
    test_text: str
    train_ids: np.ndarray
    valid_ids: np.ndarray
    test_ids: np.ndarray
    notes: list[str] = dataclasses.field(default_factory=list)  # what preparing targets changed (e.g. the exemplar's vocabulary)


def load_splits(corpus: str, clean: str | None):
    """load_corpus + optional DTP cleaning + the split convention (text8: 90M/5M/5M; else 90/5/5)."""
    from speak.text.corpora import load_corpus, split_corpus, text8_splits

    text = load_corpus(corpus)
    if clean:
        from speak.text.clean import clean_text

        text = clean_text(text, clean)
    if str(corpus).split(":", 1)[0].lower() == "text8":
        return text8_splits(text)
    return split_corpus(text)


def prepare_data(cfg: TrainConfig, vocab: Any | None = None) -> RunData:
    """Load and split the corpus, build (or reuse) the character vocabulary from the train split, encode."""
    from speak.text.vocab import CharVocab

    splits = load_splits(cfg.corpus, cfg.clean)
    if vocab is None:
        vocab = CharVocab.build(splits.train)
    return RunData(
        vocab=vocab,
        train_text=splits.train,
        valid_text=splits.valid,
        test_text=splits.test,
        train_ids=vocab.encode_array(splits.train),
        valid_ids=vocab.encode_array(splits.valid),
        test_ids=vocab.encode_array(splits.test),
    )


def check_splits(data: RunData) -> None:
    """Start-up check that the valid and test splits can be evaluated (the train split is checked by the stream)."""
    for name, ids in (("valid", data.valid_ids), ("test", data.test_ids)):
        if ids.size < 2:
            raise SpeakError(f"the {name} split has {ids.size} characters; the corpus is too small to evaluate")


def exemplar_spec(cfg: TrainConfig) -> str:
    """``unigram`` is shorthand for a SentencePiece Unigram of ``exemplar_vocab`` pieces; other specs pass through."""
    if cfg.exemplar == "unigram":
        return f"sentencepiece:{cfg.exemplar_vocab}:unigram"
    return cfg.exemplar


def build_hourglass(cfg: TrainConfig, vocab: Any) -> nn.Module:
    """The HourglassLM of a run (seed the RNGs first for a reproducible initialisation)."""
    from speak.lm.hourglass import HourglassLM, alphabet_from_vocab

    return HourglassLM(model_config(cfg, len(vocab), alphabet_from_vocab(vocab)))


def build_training_stream(
    cfg: TrainConfig, data: RunData, dist_info: DistInfo, cache_dir: Path | None
) -> tuple[Any, list[Any]]:
    """(stream, plug-ins) for a run, with the targets the boundary source needs in ``batch.boundary_targets``:
    ``EXEMPLAR``: the exemplar's segmentation of the train split (trained on it, cached); ``PROXY``: the SPEAK
    proxy store, starting from that segmentation, whose plug-in runs the MH update after each step."""
    needs = get_source(cfg.boundary).needs
    init = None
    if needs in (Targets.EXEMPLAR, Targets.PROXY):
        init = exemplar_boundaries(
            data.train_text, spec=exemplar_spec(cfg), vocab_size=cfg.exemplar_vocab, cache_dir=cache_dir, seed=cfg.seed,
            anchor=cfg.exemplar_anchor, notes=data.notes
        )
    stream = CharStream(
        data.train_ids, cfg.batch_size, cfg.seq_len, seed=cfg.seed, rank=dist_info.rank,
        world_size=dist_info.world_size, boundary=init if needs is Targets.EXEMPLAR else None,
    )
    plugins: list[Any] = []
    if needs is Targets.PROXY:
        from speak.train.proxy import ProxyPlugin

        plugin = ProxyPlugin.from_boundaries(init, dict(cfg.proxy), seq_len=cfg.seq_len, seed=cfg.seed)
        stream = plugin.wrap_stream(stream)  # chunk-aligned windows in a seeded per-epoch order unless windows=random
        plugins.append(plugin)
    return stream, plugins


def write_run_files(cfg: TrainConfig, vocab: Any, out_dir: Path) -> None:
    """config.yaml (human), config.json (exact) and vocab.json next to the run (atomically)."""
    ensure_dir(out_dir, "run folder")
    atomic_write_text(out_dir / "config.yaml", dump_yaml(cfg))
    atomic_write_json(out_dir / "config.json", cfg.to_dict())
    atomic_write_json(out_dir / "vocab.json", vocab.to_dict())
    write_corpus_record(out_dir, cfg.corpus)


def read_run_files(run_dir: str | Path):
    """(config, vocab) saved by :func:`write_run_files`; missing or malformed -> SpeakError."""
    from speak.text.vocab import CharVocab

    run_dir = Path(run_dir)
    try:
        cfg_data = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        vocab_data = json.loads((run_dir / "vocab.json").read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise SpeakError(f"{run_dir} is not a speak run folder ({Path(err.filename).name} is missing)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpeakError(f"{run_dir}: unreadable run files ({err.__class__.__name__})") from None
    return config_from_dict(cfg_data), CharVocab.from_dict(vocab_data)


def load_run_model(run_dir: str | Path):
    """(config, vocabulary, model with the weights of the run's last checkpoint) of a run folder."""
    from speak.train.checkpoint import load_checkpoint, load_model_weights
    from speak.train.trainer import CHECKPOINT_DIR

    run_dir = Path(run_dir)
    cfg, vocab = read_run_files(run_dir)
    ckpt = load_checkpoint(run_dir / CHECKPOINT_DIR)
    model = build_hourglass(cfg, vocab)
    load_model_weights(model, ckpt.model, where=f"checkpoint {ckpt.path}")
    return cfg, vocab, model, ckpt
