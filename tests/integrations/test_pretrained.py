"""The RTok pipeline on a tiny random XLM-R: FVT, inputs_embeds, LoRA XNLI / UNER end to end, metrics, loaders."""

from __future__ import annotations

import random

import pytest
import torch

from speak.errors import SpeakError
from speak.integrations import pretrained as P


def _lines(corpus_slice):
    return [line for line in corpus_slice.split("\n") if 20 < len(line) < 100][:200]


def _nli(lines, n, seed):
    rng, cue = random.Random(seed), ["yes", "maybe", "no"]
    out = []
    for _ in range(n):
        lab = rng.randrange(3)
        out.append(P.NLIExample(rng.choice(lines), f"{cue[lab]} {rng.choice(lines)[:25]}", lab))
    return out


def _tagged(lines, n, seed):
    """BIO tags of capitalised words: a run of capitalised words is one NAME span."""
    rng, out = random.Random(seed), []
    for _ in range(n):
        words, tags, prev = rng.choice(lines).split(), [], False
        for w in words:
            cap = w[:1].isupper()
            tags.append(("I-NAME" if prev else "B-NAME") if cap else "O")
            prev = cap
        out.append(P.TaggedExample(words, tags))
    return out


def test_fvt_means_old_pieces_and_maps_specials(hf_tok, old_sp):
    emb = torch.randn(old_sp.GetPieceSize() + 1, 8)
    tokens = [hf_tok.convert_ids_to_tokens(i) for i in range(len(hf_tok))]
    new = P.fvt_embeddings(tokens, old_sp, emb)
    assert new.shape == (len(hf_tok), 8)
    for name, old_id in (("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3)):
        assert torch.equal(new[hf_tok.convert_tokens_to_ids(name)], emb[old_id])
    i = next(i for i, t in enumerate(tokens) if i > 3 and len(t) > 3 and t.strip() == t and "<" not in t)
    assert torch.allclose(new[i], emb[old_sp.EncodeAsIds(tokens[i])].mean(0))
    assert torch.allclose(new[hf_tok.mask_token_id], emb.mean(0))  # no <mask> in SentencePiece: the mean


def test_hypernetwork_hook(hf_tok, old_sp):
    emb = torch.randn(old_sp.GetPieceSize() + 1, 4)

    class Fixed:
        def __call__(self, tokens):
            return torch.ones(len(tokens), 4)

    assert isinstance(Fixed(), P.Hypernetwork)
    out = P.transfer_embeddings(["a", "b"], old_sp, emb, Fixed())
    assert torch.equal(out, torch.ones(2, 4))
    with pytest.raises(SpeakError):
        P.transfer_embeddings(["a"], old_sp, torch.randn(5, 3), Fixed())


def test_oracle_metrics():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]]
    assert P.span_f1(gold, gold)["f1"] == 1.0
    assert P.span_f1([["O"] * 4, ["O", "O"]], gold)["f1"] == 0.0
    assert P.accuracy([0, 2, 1], [0, 2, 1]) == 1.0
    logits = torch.zeros(1, 5, 3)
    labels = torch.tensor([[-100, 1, -100, 0, -100]])
    logits[0, 1, 1] = logits[0, 3, 0] = 5.0
    ex = [P.TaggedExample(["A", "b"], ["B-X", "O"])]
    assert P.word_predictions(logits, labels, ex, ["O", "B-X", "I-X"]) == [["B-X", "O"]]


def test_xnli_pipeline_end_to_end(hf_tok, old_sp, tiny_model_dir, corpus_slice):
    lines = _lines(corpus_slice)
    cfg = P.FinetuneConfig(steps=6, batch_size=8, lr=5e-3, max_length=48, eval_batch_size=32)
    model, embedder = P.prepare_model("xnli", str(tiny_model_dir), 3, hf_tok, old_tokenizer=old_sp, cfg=cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any("classifier" in n for n in trainable)
    assert not any("word_embeddings" in n for n in trainable)
    res = P.finetune_nli(model, hf_tok, embedder, _nli(lines, 40, 0), _nli(lines, 20, 1), cfg)
    assert len(res.losses) == 6 and all(torch.isfinite(torch.tensor(res.losses)))
    assert 0.0 <= res.metrics["accuracy"] <= 1.0 and res.avg_tokens > 0


def test_uner_pipeline_end_to_end(hf_tok, old_sp, tiny_model_dir, corpus_slice):
    lines = _lines(corpus_slice)
    train, evaluation = _tagged(lines, 40, 0), _tagged(lines, 15, 1)
    labels = P.label_set(train + evaluation)
    assert labels == ["O", "B-NAME", "I-NAME"]
    cfg = P.FinetuneConfig(steps=6, batch_size=8, lr=5e-3, max_length=64, eval_batch_size=32)
    model, embedder = P.prepare_model("uner", str(tiny_model_dir), len(labels), hf_tok, old_tokenizer=old_sp,
                                      cfg=cfg, id2label=labels)
    batch, words = P.encode_tagged(hf_tok, train[:4], {t: i for i, t in enumerate(labels)}, 64)
    for row, ex in zip(batch["labels"], train[:4]):  # one label per word (unless truncated), on its first token
        assert int((row != P.IGNORE).sum()) == min(len(ex.tokens), int((row != P.IGNORE).sum()))
    res = P.finetune_tagging(model, hf_tok, embedder, train, evaluation, labels, cfg)
    assert 0.0 <= res.metrics["f1"] <= 1.0 and len(res.losses) == 6


def test_loaders_parse_records_and_fail_offline(monkeypatch):
    recs = [{"premise": "p", "hypothesis": "h", "label": 2}, {"premise": "x", "hypothesis": "y", "label": -1}]
    assert P.xnli_examples(recs) == [P.NLIExample("p", "h", 2)]
    names = ["O", "B-PER", "I-PER"]
    got = P.uner_examples([{"tokens": ["Ann", "ran"], "ner_tags": [1, 0]}], names)
    assert got == [P.TaggedExample(["Ann", "ran"], ["B-PER", "O"])]

    class Offline:
        @staticmethod
        def load_dataset(*a, **k):
            raise ConnectionError("offline")

    monkeypatch.setattr(P, "_import_datasets", lambda: Offline)
    with pytest.raises(SpeakError, match="xnli"):
        P.load_xnli("en", "train")
    with pytest.raises(SpeakError, match="uner"):
        P.load_uner("en_ewt", "validation")


def test_cli_finetune_offline_is_one_line(monkeypatch, hf_tok, tiny_model_dir, tmp_path, capsys):
    from typer.testing import CliRunner

    from speak.cli import app

    hf_tok.save_pretrained(tmp_path / "tok")

    class Offline:
        @staticmethod
        def load_dataset(*a, **k):
            raise ConnectionError("offline")

    monkeypatch.setattr(P, "_import_datasets", lambda: Offline)
    r = CliRunner().invoke(app, ["finetune", "xnli", "--model-dir", str(tiny_model_dir), "--tokenizer",
                                 str(tmp_path / "tok"), "--lang", "en"])
    assert isinstance(r.exception, SpeakError) and "network" in str(r.exception)
    r = CliRunner().invoke(app, ["finetune", "nope", "--model-dir", str(tiny_model_dir), "--tokenizer",
                                 str(tmp_path / "tok")])
    assert isinstance(r.exception, SpeakError)
