"""SpeakTokenizer: the tokenizer as a usable artifact (vocabulary + network), with safe save/load.

A tokenizer directory holds `speak_tokenizer.json` (format, config, vocabulary, provenance, the SHA-256 of the
weights) and `speak_tokenizer.safetensors`. Each file is written atomically, weights first; loading checks every
piece and turns any problem into one SpeakError. Pickled weights are refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from speak.atomic import atomic_write_bytes, atomic_write_json, ensure_dir
from speak.errors import SpeakError
from speak.text.segment_vocab import VOCAB_FILE, SegmentVocab
from speak.text.vocab import CharVocab
from speak.tokenizer.config import TokenizerConfig
from speak.tokenizer.fast import (
    CONFIG_FILE, FORMAT, TABLES_FILE, VERSION, WEIGHTS_FILE, FastSpeakTokenizer, Segmenter, default_tokenizer_dir,
    read_tokenizer_dir,
)
from speak.tokenizer.lookup import NGramLookupTables
from speak.tokenizer.model import SpeakTokenizerNet, TokenizerOutput



class SpeakTokenizer(Segmenter):
    """A trained SPEAK tokenizer: `tokenize(text) -> list[str]`, lossless (Eq. 5).

    Each call treats its text as one sequence: the neuron starts at u_reset. Files are processed line by line.
    """

    def __init__(self, net: SpeakTokenizerNet, vocab: CharVocab, meta: dict[str, Any] | None = None):
        if len(vocab) != net.cfg.vocab_size:
            raise SpeakError(f"vocabulary has {len(vocab)} entries but the config says vocab_size={net.cfg.vocab_size}")
        self.net = net.eval()
        self.vocab = vocab
        self.meta = dict(meta or {})
        self._fast: FastSpeakTokenizer | None = None
        self.segment_vocab: SegmentVocab | None = None  # the token vocabulary (ids), saved beside the weights

    @property
    def config(self) -> TokenizerConfig:
        return self.net.cfg

    def num_parameters(self) -> int:
        return self.net.num_parameters()

    # ------------------------------------------------------------------ inference
    def _lookup(self) -> FastSpeakTokenizer | None:
        if self._fast is None and self.config.table_lookup:
            self._fast = FastSpeakTokenizer(self.vocab, self.net.lookup_tables(), self.segment_vocab)
        if self._fast is not None and self._fast.segment_vocab is not self.segment_vocab:
            self._fast.segment_vocab = self.segment_vocab  # set after the tables were derived
        return self._fast

    def refresh(self) -> None:
        """Forget cached lookup tables (call after changing the network's weights)."""
        self._fast = None

    def trace(self, text: str) -> TokenizerOutput:
        """The full forward (currents, u, s, v, mask logits, masks) for one text, batch of 1."""
        ids = torch.as_tensor(self.vocab.encode_array(text), dtype=torch.long)[None]  # [1, L]
        with torch.no_grad():
            return self.net(ids)

    def spikes_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Hard boundaries for several texts, each scanned from a fresh state (one compiled pass when possible)."""
        fast = self._lookup()
        if fast is None:
            return [self.trace(t).s[0].numpy() > 0.5 if t else np.zeros(0, dtype=bool) for t in texts]
        return fast.spikes_many(texts)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the tokenizer directory (weights first, then the JSON that names their checksum)."""
        from safetensors.torch import save

        directory = Path(directory)
        ensure_dir(directory, 'tokenizer folder')
        state = {k: v.detach().contiguous().cpu() for k, v in self.net.state_dict().items()}
        blob = save(state, metadata={"format": FORMAT})
        atomic_write_bytes(directory / WEIGHTS_FILE, blob)
        if self.segment_vocab is not None:
            self.segment_vocab.save(directory / VOCAB_FILE)
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.to_dict(),
            "vocab": self.vocab.to_dict(),
            "weights_sha256": hashlib.sha256(blob).hexdigest(),
            "meta": self.meta,
        }
        if self.config.table_lookup:  # derived from the weights above, for torch-free inference
            doc["lookup"] = self._save_lookup(directory)
        atomic_write_json(directory / CONFIG_FILE, doc)
        return directory

    def _save_lookup(self, directory: Path) -> dict[str, Any]:
        """The lookup tables: inline JSON (per-character) or TABLES_FILE with its checksum in the JSON (n-gram)."""
        tables = self.net.lookup_tables()
        if not isinstance(tables, NGramLookupTables):
            return tables.to_dict()
        from safetensors.numpy import save

        blob = save({k: np.ascontiguousarray(v) for k, v in tables.arrays().items()}, metadata={"format": FORMAT})
        atomic_write_bytes(directory / TABLES_FILE, blob)
        return {**tables.params(), "file": TABLES_FILE, "sha256": hashlib.sha256(blob).hexdigest()}

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "SpeakTokenizer":
        """Load a tokenizer directory; any missing, corrupted, tampered or mismatched piece -> one SpeakError."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        directory = Path(directory)
        doc, blob = read_tokenizer_dir(directory)
        config = TokenizerConfig.from_dict(doc["config"])
        vocab = CharVocab.from_dict(doc["vocab"])
        w_path = directory / WEIGHTS_FILE
        try:
            state = load(blob)
        except (SafetensorError, ValueError, RuntimeError) as err:
            raise SpeakError(f"{w_path}: unreadable safetensors ({err})") from None
        net = SpeakTokenizerNet(config)
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if expected != found:
            missing = sorted(set(expected) - set(found))
            extra = sorted(set(found) - set(expected))
            shapes = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
            raise SpeakError(f"{w_path}: weights do not match the config (missing {missing}, unexpected {extra}, "
                             f"wrong shapes {shapes})")
        net.load_state_dict(state)
        tok = cls(net, vocab, meta=doc.get("meta") or {})
        if (directory / VOCAB_FILE).is_file():
            tok.segment_vocab = SegmentVocab.load(directory / VOCAB_FILE)
        return tok

    @classmethod
    def default(cls) -> "SpeakTokenizer":
        """The pretrained default tokenizer shipped with the package."""
        return cls.from_pretrained(default_tokenizer_dir())
