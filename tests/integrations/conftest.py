"""Shared fixtures: a small SPEAK tokenizer fitted on the embedded corpus, its HF wrapper, a tiny random XLM-R."""

from __future__ import annotations

import pytest

from speak.text.corpora import load_corpus


@pytest.fixture(scope="session")
def corpus_slice() -> str:
    return load_corpus("embedded")[:150_000]


@pytest.fixture(scope="session")
def speak_tok(corpus_slice):
    from speak.tokenizer import SpeakTokenizer

    try:
        return SpeakTokenizer.default()
    except Exception:  # the embedded model is not there yet: fit a small one
        from speak.train.mimic import MimicConfig, fit_tokenizer

        tok, _, _ = fit_tokenizer(corpus_slice, MimicConfig(steps=60, exemplar="sentencepiece:300", batch_size=16,
                                                            seq_len=128))
        return tok


@pytest.fixture(scope="session")
def hf_tok(speak_tok, corpus_slice):
    from speak.integrations.hf import SpeakHFTokenizer

    return SpeakHFTokenizer.build(speak_tok, corpus_slice, max_size=1500, model_max_length=64)


@pytest.fixture(scope="session")
def old_sp(corpus_slice):
    """The 'pretrained tokenizer': SentencePiece trained here, with XLM-R's special ids (<s>=0 <pad>=1 </s>=2 <unk>=3)."""
    import sentencepiece as spm

    from speak.text.exemplar import SentencePieceExemplar

    ex = SentencePieceExemplar.train(corpus_slice.split("\n"), vocab_size=500, bos_id=0, pad_id=1, eos_id=2,
                                     unk_id=3)
    proc = spm.SentencePieceProcessor()
    proc.LoadFromSerializedProto(ex.model_proto)
    return proc


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, old_sp):
    """A randomly initialised 2-layer XLM-R (hidden 32) saved as safetensors; vocab = the SentencePiece model + <mask>."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=old_sp.GetPieceSize() + 1, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=80, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    d = tmp_path_factory.mktemp("tiny_xlmr")
    XLMRobertaModel(cfg).save_pretrained(d, safe_serialization=True)
    return d
