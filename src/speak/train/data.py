"""Character data for training and evaluation: the seam's :class:`Batch`, a resumable random-window stream,
DTP's windowed evaluation, and corpus-aligned exemplar boundary targets (cached as .npy).

Offsets are absolute positions in the split's text: they key SPEAK's proxy store, so a window's chars are always
``ids[offset : offset + L + 1]`` whatever the batch slot, the rank or the resume point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from speak.atomic import atomic_save_npy, atomic_write_text
from speak.errors import SpeakError
from speak.text.segment import anchor_boundaries


@dataclass
class Batch:
    """One training batch (the trainer/hourglass seam, see docs/ARCHITECTURE.md)."""

    chars: Tensor  # [B, L + 1] int64; inputs chars[:, :-1], next-char targets chars[:, 1:]
    offsets: Tensor  # [B] int64: absolute offset of chars[:, 0] in the split's text (keys the proxy store)
    boundary_targets: Tensor | None = None  # [B, L] float: corpus-aligned boundary targets for inputs (e.g. Unigram)

    @property
    def inputs(self) -> Tensor:
        """[B, L] the model's input characters."""
        return self.chars[:, :-1]

    @property
    def targets(self) -> Tensor:
        """[B, L] next-character targets."""
        return self.chars[:, 1:]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """The batch on ``device``."""
        bt = self.boundary_targets
        return Batch(
            chars=self.chars.to(device, non_blocking=non_blocking),
            offsets=self.offsets.to(device, non_blocking=non_blocking),
            boundary_targets=None if bt is None else bt.to(device, non_blocking=non_blocking),
        )


class CharStream:
    """Batches of ``batch_size`` random contiguous windows of ``seq_len + 1`` characters from one encoded split.

    Sampling uses a numpy PCG64 generator seeded from ``(seed, rank)``, so every rank of a multi-process run draws
    its own shard of windows and a rank's sequence depends only on the seed and its rank. The generator state and
    the batch counter are the stream's :meth:`state_dict` (JSON-safe), so a resumed run draws exactly the same
    windows as an uninterrupted one.
    """

    def __init__(
        self,
        ids: np.ndarray,
        batch_size: int,
        seq_len: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        boundary: np.ndarray | None = None,
        name: str = "train",
    ) -> None:
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64))  # [N]
        if ids.ndim != 1:
            raise SpeakError(f"{name} split must be a 1-D id array, got shape {ids.shape}")
        if batch_size <= 0 or seq_len <= 0:
            raise SpeakError(f"batch_size and seq_len must be > 0 (got {batch_size}, {seq_len})")
        need = batch_size * (seq_len + 1)
        if ids.size < need:
            raise SpeakError(
                f"the {name} split has {ids.size} characters, smaller than one batch "
                f"(batch_size {batch_size} x (seq_len {seq_len} + 1) = {need}); use a larger corpus or a smaller batch"
            )
        if boundary is not None:
            boundary = np.asarray(boundary, dtype=bool)
            if boundary.shape != ids.shape:
                raise SpeakError(
                    f"boundary targets have {boundary.size} positions but the {name} split has {ids.size} characters"
                )
        if not 0 <= rank < world_size:
            raise SpeakError(f"rank {rank} outside world size {world_size}")
        self.ids = ids
        self.boundary = boundary
        self.batch_size = int(batch_size)
        self.seq_len = int(seq_len)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.name = name
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, self.rank])))
        self.batches_drawn = 0
        self._span = np.arange(self.seq_len + 1, dtype=np.int64)  # [L + 1]

    def __len__(self) -> int:
        """Number of characters in the split."""
        return int(self.ids.size)

    @property
    def chars_per_batch(self) -> int:
        """Characters a batch predicts (B * L)."""
        return self.batch_size * self.seq_len

    def sample_offsets(self) -> np.ndarray:
        """[B] int64 random window starts (advances the generator)."""
        high = self.ids.size - (self.seq_len + 1) + 1
        return self._rng.integers(0, high, size=self.batch_size, dtype=np.int64)

    def batch_at(self, offsets: np.ndarray) -> Batch:
        """The batch of windows starting at ``offsets`` (no randomness)."""
        offsets = np.asarray(offsets, dtype=np.int64)  # [B]
        index = offsets[:, None] + self._span[None, :]  # [B, L + 1]
        chars = torch.from_numpy(self.ids[index])  # [B, L + 1] int64
        targets = None
        if self.boundary is not None:
            targets = torch.from_numpy(self.boundary[index[:, :-1]].astype(np.float32))  # [B, L]
        return Batch(chars=chars, offsets=torch.from_numpy(offsets.copy()), boundary_targets=targets)

    def next_batch(self) -> Batch:
        """The next batch of the stream."""
        batch = self.batch_at(self.sample_offsets())
        self.batches_drawn += 1
        return batch

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe position of the stream (generator state + counter + identity checks)."""
        return {
            "kind": "CharStream",
            "bit_generator": self._rng.bit_generator.state,
            "batches_drawn": self.batches_drawn,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "n_chars": int(self.ids.size),
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position; a stream over different data or shape -> SpeakError."""
        if not isinstance(state, dict) or state.get("kind") != "CharStream":
            raise SpeakError("data stream state is missing or not a CharStream state")
        for key, mine in (("n_chars", int(self.ids.size)), ("batch_size", self.batch_size), ("seq_len", self.seq_len),
                          ("world_size", self.world_size), ("rank", self.rank)):
            if state.get(key) != mine:
                raise SpeakError(f"data stream state does not match this run: {key} {state.get(key)} != {mine}")
        try:
            self._rng.bit_generator.state = state["bit_generator"]
        except (KeyError, TypeError, ValueError) as err:
            raise SpeakError(f"data stream state has an invalid generator state ({err})") from None
        self.batches_drawn = int(state.get("batches_drawn", 0))


class ChunkStream(CharStream):
    """Windows aligned to chunks of ``seq_len`` characters, visited in a seeded per-epoch order (the paper's epochs).

    Window k starts at ``k * seq_len`` (k = 0 .. K-1, K = (N - 1) // seq_len so each has its ``seq_len + 1`` ids).
    Epoch e visits the windows in the order of a permutation drawn from ``(seed, e)``, shared by every rank; batch j
    of the epoch gives rank r the entries ``[(j * world + r) * B, (j * world + r + 1) * B)``. The last entries that
    do not fill a whole step of every rank are skipped for that epoch (the next permutation differs). SPEAK's proxy
    stores one loss per chunk, so the loss stored at a visit is of the same text (and context) as the next visit's
    (speak.train.proxy). The state is (epoch, position): a resumed run draws exactly the same windows.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, **kwargs: Any) -> None:
        super().__init__(ids, batch_size, seq_len, **kwargs)
        self.n_windows = (self.ids.size - 1) // self.seq_len  # [K] starts k * seq_len, each with L + 1 ids
        if self.n_windows < self.batch_size * self.world_size:
            raise SpeakError(
                f"the {self.name} split has {self.n_windows} aligned windows of {self.seq_len} characters, fewer than "
                f"one step needs (batch_size {self.batch_size} x {self.world_size} rank(s)); use a larger corpus or "
                f"a smaller batch"
            )
        self.epoch = 0
        self.position = 0  # entries of this epoch's order already used, by all ranks
        self._order = self._epoch_order(0)

    @classmethod
    def from_stream(cls, stream: CharStream) -> "ChunkStream":
        """The aligned twin of a random-window stream (same split, shapes, seed, rank and boundary targets)."""
        return cls(stream.ids, stream.batch_size, stream.seq_len, seed=stream.seed, rank=stream.rank,
                   world_size=stream.world_size, boundary=stream.boundary, name=stream.name)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch, 0xC4A1])))
        return rng.permutation(self.n_windows).astype(np.int64)  # [K]

    def sample_offsets(self) -> np.ndarray:
        """[B] int64 aligned window starts of this rank for the next step (advances the epoch order)."""
        step = self.batch_size * self.world_size
        if self.position + step > self.n_windows:
            self.epoch += 1
            self.position = 0
            self._order = self._epoch_order(self.epoch)
        lo = self.position + self.rank * self.batch_size
        self.position += step
        return self._order[lo : lo + self.batch_size] * self.seq_len  # [B]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(kind="ChunkStream", epoch=self.epoch, position=self.position)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("kind") != "ChunkStream":
            raise SpeakError("data stream state is missing or not a ChunkStream state")
        super().load_state_dict({**state, "kind": "CharStream"})
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_order(self.epoch)


# ---------------------------------------------------------------------------------------------- evaluation windows
@dataclass
class EvalWindow:
    """One evaluation window: ``ids`` [W] with ``W - 1`` predictions, of which only the last ``n_scored`` count."""

    ids: np.ndarray  # [W] int64: inputs ids[:-1], targets ids[1:]
    n_scored: int
    start: int  # offset of ids[0] in the split


def eval_windows(ids: np.ndarray, scored: int = 512, context: int = 1536) -> Iterator[EvalWindow]:
    """DTP's windowed evaluation: every next-character target ``ids[1:]`` is scored exactly once, each with up to
    ``context`` characters of left context, in windows of ``context + scored + 1`` ids (all the same length, so
    they batch; the model input is ``context + scored`` characters).

    The first window scores all its targets (there is no earlier text to use as context); later windows advance by
    ``scored`` and score their last ``scored`` targets; the final window is shifted back to the text's end and
    scores only the targets not yet covered. A text shorter than one window is one window scoring everything.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if scored <= 0 or context < 0:
        raise SpeakError(f"evaluation needs scored > 0 and context >= 0 (got {scored}, {context})")
    n = int(ids.size)
    if n < 2:
        raise SpeakError(f"the evaluation split has {n} characters; need at least 2")
    width = context + scored + 1
    if n <= width:
        yield EvalWindow(ids=ids.copy(), n_scored=n - 1, start=0)
        return
    yield EvalWindow(ids=ids[:width].copy(), n_scored=width - 1, start=0)
    done = width  # targets 1 .. done-1 are scored
    while done < n:
        end = min(done + scored, n)  # score targets done .. end-1
        start = end - width
        yield EvalWindow(ids=ids[start:end].copy(), n_scored=end - done, start=start)
        done = end


def count_eval_windows(n: int, scored: int, context: int) -> int:
    """How many windows :func:`eval_windows` yields for a split of ``n`` characters."""
    width = context + scored + 1
    if n <= width:
        return 1
    return 1 + -(-(n - width) // scored)


# ---------------------------------------------------------------------------------------------- exemplar targets
def text_digest(text: str) -> str:
    """Short SHA-256 of a text (names cache files so a changed corpus never reuses stale targets)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def exemplar_boundaries(
    train_text: str,
    *,
    spec: str = "unigram",
    vocab_size: int = 1000,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    anchor: str = "start",
    notes: list[str] | None = None,
) -> np.ndarray:
    """Corpus-aligned exemplar boundaries over ``train_text`` ([N] bool, 1 = the token closes at t).

    The exemplar (SentencePiece Unigram by default) is trained on the train split only, then segments it; its
    boundaries are anchored for a causal predictor (`speak.text.segment.anchor_boundaries`: by default at the first
    character of the next piece, where a causal model can observe them). The result is cached as
    ``cache_dir/exemplar-<spec>-<vocab>-<anchor>-<digest>.npy`` and reused when present and valid. What the
    exemplar changed to fit the text (e.g. a vocabulary grown to a large alphabet) is appended to ``notes`` (kept
    beside the cache as ``.note.txt``, so a cached run reports it too).
    """
    cache = None
    if cache_dir is not None:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in spec)
        cache = Path(cache_dir) / f"exemplar-{safe}-{vocab_size}-{anchor}-{text_digest(train_text)}.npy"
        if cache.is_file():
            try:
                arr = np.load(cache, allow_pickle=False)
            except (ValueError, OSError):
                arr = None
            if arr is not None and arr.dtype == bool and arr.shape == (len(train_text),):
                note_file = cache.with_suffix(".note.txt")
                if notes is not None and note_file.is_file():
                    notes.append(note_file.read_text(encoding="utf-8"))
                return arr
    spikes, note = _exemplar_spikes(train_text, spec=spec, vocab_size=vocab_size, seed=seed)
    spikes = anchor_boundaries(np.asarray(spikes, dtype=bool), anchor)
    if spikes.shape != (len(train_text),):
        raise SpeakError(
            f"exemplar '{spec}' returned {spikes.size} boundary positions for a text of {len(train_text)} characters"
        )
    if cache is not None:
        if note:
            atomic_write_text(cache.with_suffix(".note.txt"), note)
        atomic_save_npy(cache, spikes)
    if note and notes is not None:
        notes.append(note)
    return spikes


def _exemplar_spikes(text: str, *, spec: str, vocab_size: int, seed: int) -> tuple[np.ndarray, str]:
    """Train the exemplar segmenter named by ``spec`` on ``text``: (its spikes over ``text``, its note)."""
    try:
        from speak.text import exemplar as ex  # noqa: PLC0415
    except ImportError as err:
        raise SpeakError(f"exemplar boundary targets need speak.text.exemplar, which is unavailable ({err})") from None
    model = ex.load_exemplar(spec, texts=text)  # specs that train (sentencepiece:VOCAB, hf-bpe:VOCAB) use `text`
    return np.asarray(model.segment_spikes(text), dtype=bool), getattr(model, "note", "")
