"""speak.text: characters and tokens, no torch models.

- :class:`CharVocab` -- the character vocabulary (``<pad>`` = 0, ``<unk>`` = 1).
- :func:`segment` and friends -- the paper's ``Tokenize(c, s)`` (Eq. 5), lossless.
- :mod:`speak.text.corpora` -- local / embedded / text8 / enwik8 / wiki40b / cc100 loaders, splits.
- :func:`clean_text` -- DTP's text8-style cleaner, per language.
- :mod:`speak.text.exemplar` -- SentencePiece / HF tokenizers / rule-based segmenters as teachers.
"""

from speak.text.clean import clean_text, supported_languages
from speak.text.corpora import (
    Splits,
    embedded_corpus_path,
    load_corpus,
    load_enwik8,
    load_text8,
    read_text,
    split_corpus,
    text8_splits,
)
from speak.text.exemplar import (
    Exemplar,
    FixedExemplar,
    HFTokenizersExemplar,
    SentencePieceExemplar,
    WhitespaceExemplar,
    load_exemplar,
)
from speak.text.segment import (
    as_spike_array,
    segment,
    segment_batch,
    shortening_factor,
    spikes_from_tokens,
    token_offsets,
)
from speak.text.vocab import PAD_ID, UNK_ID, CharVocab, code_points

__all__ = [
    "PAD_ID",
    "UNK_ID",
    "CharVocab",
    "Exemplar",
    "FixedExemplar",
    "HFTokenizersExemplar",
    "SentencePieceExemplar",
    "Splits",
    "WhitespaceExemplar",
    "as_spike_array",
    "clean_text",
    "code_points",
    "embedded_corpus_path",
    "load_corpus",
    "load_enwik8",
    "load_exemplar",
    "load_text8",
    "read_text",
    "segment",
    "segment_batch",
    "shortening_factor",
    "spikes_from_tokens",
    "split_corpus",
    "supported_languages",
    "text8_splits",
    "token_offsets",
]
