"""The shipped default: the multilingual standalone tokenizer (five corpora), its vocabulary, NOTICE and info."""

from __future__ import annotations

import json

import pytest

from speak.tokenizer.fast import FastSpeakTokenizer, default_tokenizer_dir

# One short sentence per training language (written for this test), plus characters it never saw.
SAMPLES = {
    "en": "The river rose in the night, and by morning the bridge was gone.",
    "de": "Wählen Sie im Menü „Format“ den Eintrag „Zeichen“, um die Schriftgröße zu ändern.",
    "fi": "Valitse työkalupalkista kuvake ja tallenna asiakirja ennen kuin suljet ikkunan.",
    "vi": "Chọn ô cần định dạng, sau đó nhấn nút Lưu để giữ thay đổi của bạn.",
    "he": "ויהי ערב ויהי בקר יום שלישי והארץ היתה מלאה אור",
    "unseen": "Café 😀 naïve — 東京 ∑ x²",
}


@pytest.fixture(scope="module")
def default():
    return FastSpeakTokenizer.default()


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_the_default_round_trips_every_language_losslessly(default, lang):
    text = SAMPLES[lang]
    ids = default.encode_ids([text])
    assert "".join(default.tokenize(text)) == text
    assert default.segment_vocab.decode(ids.ids.tolist()) == text
    assert ids.ends[-1] == len(text) and (ids.starts < ids.ends).all()
    if lang != "unseen":  # a language it was trained on is cut into multi-character tokens
        assert len(text) / len(default.tokenize(text)) > 2.0


def test_the_default_describes_its_training_corpora_and_licences():
    doc = json.loads((default_tokenizer_dir() / "speak_tokenizer.json").read_text(encoding="utf-8"))
    meta = doc["meta"]
    corpora = {"de-help", "en-bible", "fi-help", "he-bible", "vi-help"}
    assert set(meta["corpus"].split("+")) == corpora
    assert set(meta["valid_metrics_per_corpus"]) == corpora
    notice = (default_tokenizer_dir() / "NOTICE").read_text(encoding="utf-8")
    for name, licence in (("en-bible", "public domain"), ("de-help", "MPL-2.0"), ("he-bible", "GPL-3.0-or-later")):
        assert name in notice and licence in notice
    assert doc["config"]["encoder"] == "char-ngram" and doc["lookup"]["kind"] == "ngram"
    size = sum(p.stat().st_size for p in default_tokenizer_dir().iterdir())
    assert size < 6e6  # a few MB


def test_speak_info_shows_the_default_provenance():
    from typer.testing import CliRunner

    from speak.cli import app

    res = CliRunner().invoke(app, ["info"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    for word in ("he-bible", "vi-help", "valid_metrics_per_corpus", "licence", "NOTICE"):
        assert word in res.output
