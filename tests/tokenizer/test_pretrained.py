"""Save / load of tokenizer directories: round trip, and one clear error for every kind of damage."""

import json

import pytest
import torch

from speak.errors import SpeakError
from speak.tokenizer import SpeakTokenizer
from speak.tokenizer.pretrained import CONFIG_FILE, WEIGHTS_FILE


def test_round_trip(tmp_path, small_tokenizer):
    small_tokenizer.save_pretrained(tmp_path / "tk")
    loaded = SpeakTokenizer.from_pretrained(tmp_path / "tk")
    text = "the heavens and the earth"
    assert loaded.tokenize(text) == small_tokenizer.tokenize(text)
    assert loaded.meta == {"note": "test"}
    for (k, a), (_, b) in zip(small_tokenizer.net.state_dict().items(), loaded.net.state_dict().items()):
        assert torch.equal(a, b), k
    assert not list((tmp_path / "tk").glob(".*tmp"))  # no temp files left behind


def test_unseen_characters_still_round_trip(tmp_path, small_tokenizer):
    text = "Zoë says 你好 שלום 👋🏽 e\u0301\x00!"
    assert "".join(small_tokenizer.tokenize(text)) == text


@pytest.fixture
def saved(tmp_path, small_tokenizer):
    d = tmp_path / "tk"
    small_tokenizer.save_pretrained(d)
    return d


def _expect(d, match):
    with pytest.raises(SpeakError, match=match) as info:
        SpeakTokenizer.from_pretrained(d)
    assert "\n" not in str(info.value)


def test_missing_directory(tmp_path):
    _expect(tmp_path / "nope", "no such tokenizer directory")


def test_missing_config(saved):
    (saved / CONFIG_FILE).unlink()
    _expect(saved, "missing speak_tokenizer.json")


def test_refuses_pickle(saved):
    (saved / CONFIG_FILE).unlink()
    (saved / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    _expect(saved, "refusing to load pickled weights")


def test_truncated_weights(saved):
    w = saved / WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[:100])
    _expect(saved, "checksum mismatch")


def test_tampered_weights_with_matching_checksum_field_still_checked(saved):
    import hashlib

    w = saved / WEIGHTS_FILE
    junk = b"not a safetensors file at all"
    w.write_bytes(junk)
    doc = json.loads((saved / CONFIG_FILE).read_text())
    doc["weights_sha256"] = hashlib.sha256(junk).hexdigest()
    (saved / CONFIG_FILE).write_text(json.dumps(doc))
    _expect(saved, "unreadable safetensors")


def test_corrupted_json(saved):
    (saved / CONFIG_FILE).write_text("{not json")
    _expect(saved, "corrupted")


def test_mismatched_config(saved):
    doc = json.loads((saved / CONFIG_FILE).read_text())
    doc["config"]["char_dim"] = 32
    (saved / CONFIG_FILE).write_text(json.dumps(doc))
    _expect(saved, "do not match the config")


def test_unknown_config_key(saved):
    doc = json.loads((saved / CONFIG_FILE).read_text())
    doc["config"]["mystery"] = 1
    (saved / CONFIG_FILE).write_text(json.dumps(doc))
    _expect(saved, "unknown key")


def test_wrong_format_and_version(saved):
    doc = json.loads((saved / CONFIG_FILE).read_text())
    (saved / CONFIG_FILE).write_text(json.dumps({**doc, "version": 99}))
    _expect(saved, "unsupported version")
    (saved / CONFIG_FILE).write_text(json.dumps({**doc, "format": "other"}))
    _expect(saved, "not a SPEAK tokenizer file")


def test_fast_tokenizer_matches_and_loads_without_torch(tmp_path, small_tokenizer):
    import subprocess
    import sys

    from speak.tokenizer import FastSpeakTokenizer

    small_tokenizer.save_pretrained(tmp_path / "tk")
    fast = FastSpeakTokenizer.from_pretrained(tmp_path / "tk")
    lines = ["In the beginning", "", "God created the heavens and the earth.", "x"]
    assert fast.tokenize_batch(lines) == small_tokenizer.tokenize_batch(lines)
    code = (f"import sys; from speak.tokenizer.fast import FastSpeakTokenizer as F; "
            f"t = F.from_pretrained({str(tmp_path / 'tk')!r}); t.tokenize('in the beginning'); "
            f"assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fast_tokenizer_reads_no_network_weights_but_checks_the_directory(tmp_path, small_tokenizer):
    from speak.tokenizer import FastSpeakTokenizer, SpeakTokenizer

    d = tmp_path / "tk"
    small_tokenizer.save_pretrained(d)
    (d / WEIGHTS_FILE).write_bytes(b"junk")  # the training network: inference never reads it
    assert FastSpeakTokenizer.from_pretrained(d).tokenize("in the beginning") == small_tokenizer.tokenize(
        "in the beginning")
    with pytest.raises(SpeakError, match="checksum mismatch"):
        SpeakTokenizer.from_pretrained(d)
    (d / "speak_tokenizer.json").write_text("{}")
    with pytest.raises(SpeakError, match="not a SPEAK tokenizer file"):
        FastSpeakTokenizer.from_pretrained(d)
