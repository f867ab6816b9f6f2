"""Corpus readers, the embedded corpus, text8 / enwik8 / HF loaders (offline, on tiny local files), splits."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from speak.errors import SpeakError
from speak.text import corpora
from speak.text import (
    embedded_corpus_path,
    load_corpus,
    load_enwik8,
    load_text8,
    read_text,
    segment,
    split_corpus,
    text8_splits,
)

SAMPLE = "First line ✓\r\nsecond — line 😀\n\nשלום\n"
SHARED_CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


@pytest.mark.parametrize(
    "name, writer",
    [
        ("a.txt", lambda p, b: p.write_bytes(b)),
        ("a.txt.xz", lambda p, b: p.write_bytes(lzma.compress(b))),
        ("a.txt.gz", lambda p, b: p.write_bytes(gzip.compress(b))),
        ("a.txt.bz2", lambda p, b: p.write_bytes(bz2.compress(b))),
        ("a.zip", lambda p, b: zipfile.ZipFile(p, "w").writestr("inner.txt", b)),
    ],
)
def test_read_text_formats_are_lossless(tmp_path, name, writer):
    p = tmp_path / name
    writer(p, SAMPLE.encode("utf-8"))
    assert read_text(p) == SAMPLE  # \r\n kept, nothing normalised
    assert load_corpus(str(p)) == SAMPLE
    assert load_corpus(p, max_chars=5) == SAMPLE[:5]


def test_read_text_errors(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("abc".encode() + "é".encode("latin-1") + b"xyz")
    with pytest.raises(SpeakError, match=r"latin1.txt is not valid UTF-8 \(byte offset 3\)"):
        read_text(bad)
    badxz = tmp_path / "bad.txt.xz"
    badxz.write_bytes(lzma.compress(b"ok\n\xff"))
    with pytest.raises(SpeakError, match=r"is not valid UTF-8 \(byte offset 3\)"):
        read_text(badxz)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(SpeakError, match="empty.txt is empty"):
        read_text(empty)
    emptygz = tmp_path / "empty.txt.gz"
    emptygz.write_bytes(gzip.compress(b""))
    with pytest.raises(SpeakError, match="is empty"):
        read_text(emptygz)
    with pytest.raises(SpeakError, match="does not exist"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(SpeakError, match="directory"):
        read_text(tmp_path)
    corrupt = tmp_path / "corrupt.txt.xz"
    corrupt.write_bytes(b"not xz at all")
    with pytest.raises(SpeakError, match="corrupt.txt.xz: a damaged or misnamed .xz file"):
        read_text(corrupt)
    with pytest.raises(SpeakError, match="unknown corpus"):
        load_corpus("no-such-corpus-or-file")


def test_embedded_corpus():
    path = embedded_corpus_path()
    assert path.is_file() and path.stat().st_size < 500_000
    text = load_corpus("embedded")
    assert 1_400_000 < len(text) < 1_600_000
    assert text.startswith("Preface to the World English Bible")
    assert text.endswith("\n") and "\n\n" not in text
    # several books are represented (whole lines sampled across the Bible)
    for word in ("Genesis", "Psalm", "Jesus", "Revelation"):
        assert word in text


def test_split_corpus_deterministic_contiguous():
    text = "".join(chr(97 + i % 26) for i in range(1000))
    s = split_corpus(text)
    assert s.lengths() == (900, 50, 50)
    assert s.train + s.valid + s.test == text
    assert split_corpus(text) == s
    s2 = split_corpus(text, valid=0.1, test=0.0)
    assert s2.lengths() == (900, 100, 0)
    assert split_corpus("", 0.05, 0.05).lengths() == (0, 0, 0)
    with pytest.raises(ValueError):
        split_corpus(text, valid=0.6, test=0.5)


def test_text8_splits():
    text = "abcdefghij" * 10
    s = text8_splits(text, 90, 5, 5)
    assert (s.train, s.valid, s.test) == (text[:90], text[90:95], text[95:100])
    with pytest.raises(SpeakError, match="full text8"):
        text8_splits(text)


# --------------------------------------------------------------------------------- text8 / enwik8 offline
FAKE_TEXT8 = " anarchism originated as a term of abuse first used against early working class radicals"


def _zip(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, data)
    return path


def test_text8_local_copies(tmp_path):
    raw = tmp_path / "text8"
    raw.write_text(FAKE_TEXT8, encoding="utf-8")
    assert load_text8(raw) == FAKE_TEXT8  # an unzipped copy is read without the archive checksum
    assert load_corpus(f"text8:{raw}") == FAKE_TEXT8
    z = _zip(tmp_path / "text8.zip", "text8", FAKE_TEXT8.encode())
    assert load_text8(z, checksum=None) == FAKE_TEXT8
    digest = "sha256:" + hashlib.sha256(z.read_bytes()).hexdigest()
    assert load_text8(z, checksum=digest) == FAKE_TEXT8
    # the default checksum is the canonical archive's: a fake zip fails it with a clear message
    with pytest.raises(SpeakError, match="failed its sha1 check"):
        load_text8(z)
    with pytest.raises(SpeakError, match="failed its sha256 check"):
        load_text8(raw, checksum="sha256:" + "0" * 64)
    with pytest.raises(SpeakError, match="does not exist"):
        load_text8(tmp_path / "nope.zip")


def test_text8_cache_and_offline_message(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    calls = []

    def no_network(url, dest, digest, timeout=60.0):
        calls.append(url)
        raise SpeakError(f"could not download {url}: <urlopen error [Errno -3] offline>")

    monkeypatch.setattr(corpora, "download", no_network)
    with pytest.raises(SpeakError) as err:
        load_text8(cache_dir=cache)
    msg = str(err.value)
    assert "could not be downloaded" in msg and "text8:/path/to/text8.zip" in msg and str(cache) in msg
    assert calls == [corpora.TEXT8_URL]
    with pytest.raises(SpeakError, match="downloading is disabled"):
        load_text8(cache_dir=cache, download=False)
    # an unzipped copy in the cache is used without any network
    cache.mkdir()
    (cache / "text8").write_text(FAKE_TEXT8)
    assert load_corpus("text8", cache_dir=cache) == FAKE_TEXT8
    assert len(calls) == 1


def test_download_is_checked_and_atomic(tmp_path, monkeypatch):
    payload = _zip(tmp_path / "src.zip", "enwik8", "<mediawiki>ünïcode</mediawiki>".encode()).read_bytes()

    class FakeResponse:
        def __init__(self, data):
            self._data, self._pos = data, 0

        def read(self, n=-1):
            chunk = self._data[self._pos :] if n < 0 else self._data[self._pos : self._pos + n]
            self._pos += len(chunk)
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(corpora.urllib.request, "urlopen", lambda url, timeout: FakeResponse(payload))
    cache = tmp_path / "cache"
    good = "sha256:" + hashlib.sha256(payload).hexdigest()
    monkeypatch.setattr(corpora, "ENWIK8_ZIP_DIGEST", "sha256:" + "1" * 64)
    with pytest.raises(SpeakError, match="failed its sha256 check"):
        load_enwik8(cache_dir=cache)
    assert not any(cache.iterdir())  # the partial file was removed, nothing cached
    monkeypatch.setattr(corpora, "ENWIK8_ZIP_DIGEST", good)
    assert load_enwik8(cache_dir=cache) == "<mediawiki>ünïcode</mediawiki>"
    assert (cache / "enwik8.zip").is_file()
    assert sorted(p.name for p in cache.iterdir()) == ["enwik8.zip"]


def test_enwik8_local_zip(tmp_path):
    data = "<mediawiki>\n  <page>Ünïcode ✓</page>\n".encode()
    z = _zip(tmp_path / "enwik8.zip", "enwik8", data)
    assert load_enwik8(z, checksum=None) == data.decode()
    with pytest.raises(SpeakError, match="failed its sha256 check"):  # the default checksum rejects a fake
        load_corpus(f"enwik8:{z}")
    wrong = _zip(tmp_path / "other.zip", "something", data)
    with pytest.raises(SpeakError, match="no member 'enwik8'"):
        load_enwik8(wrong, checksum=None)
    # enwik8 is cut at a byte count: invalid UTF-8 becomes U+FFFD with a warning, not a failure
    cut = _zip(tmp_path / "cut.zip", "enwik8", data + "é".encode()[:1])
    with pytest.warns(UserWarning, match="invalid UTF-8"):
        assert load_enwik8(cut, checksum=None).endswith("\ufffd")


# --------------------------------------------------------------------------------- HF datasets (faked)
def _fake_datasets(monkeypatch, load_dataset):
    mod = types.ModuleType("datasets")
    mod.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", mod)


def test_hf_loaders_offline_give_speak_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'google/wiki40b' on the Hub (LocalEntryNotFoundError)")

    _fake_datasets(monkeypatch, offline)
    with pytest.raises(SpeakError, match="wiki40b:fi could not be loaded"):
        load_corpus("wiki40b:fi")
    with pytest.raises(SpeakError, match="cc100:vi could not be loaded"):
        load_corpus("cc100:vi")
    with pytest.raises(SpeakError, match="needs a language"):
        load_corpus("wiki40b:")


def test_wiki40b_records_become_paragraph_lines(monkeypatch):
    seen = {}

    def fake(name, config, split):
        seen.update(name=name, config=config, split=split)
        return [
            {"text": "\n_START_ARTICLE_\nTitle\n_START_SECTION_\nHistory\n_START_PARAGRAPH_\nFirst para._NEWLINE_Second."},
            {"text": "\n_START_ARTICLE_\nOther\n_START_PARAGRAPH_\nThird para.\n_START_SECTION_\nS\n_START_PARAGRAPH_\nFourth."},
        ]

    _fake_datasets(monkeypatch, fake)
    assert load_corpus("wiki40b:en:validation") == "First para.\nSecond.\nThird para.\nFourth."
    assert seen == {"name": "google/wiki40b", "config": "en", "split": "validation"}
    assert load_corpus("wiki40b:en", max_chars=5) == "First"


def test_cc100_streams_and_caps(monkeypatch):
    def fake(name, lang, split, streaming):
        assert streaming and lang == "fi"
        return ({"text": f"rivi {i}\n"} for i in range(10**9))  # endless stream: must stop at max_chars

    _fake_datasets(monkeypatch, fake)
    assert load_corpus("cc100:fi", max_chars=20) == "rivi 0\nrivi 1\nrivi 2"[:20]


# --------------------------------------------------------------------------------- real corpora, if present
def test_round_trip_on_every_line_of_shared_corpora():
    """Eq. 5 is lossless on every line of the real corpora (vectorised: one spike array per corpus)."""
    if not SHARED_CORPORA.is_dir():
        pytest.skip("no ../shared/corpora beside this checkout")
    files = sorted(SHARED_CORPORA.glob("*.txt.xz"))
    if not files:
        pytest.skip("no corpora in ../shared/corpora")
    rng = np.random.default_rng(0)
    for f in files:
        text = read_text(f)
        lines = text.split("\n")
        n = len(text)
        is_nl = np.frombuffer(text.encode("utf-32-le"), dtype="<u4") == 10
        # random spikes, and every newline closes a token, so no token crosses a line
        spikes = (rng.random(n) < 0.3) | is_nl
        spikes[:-1] |= is_nl[1:]
        tokens = segment(text, spikes)
        assert "".join(tokens) == text, f.name
        assert all(tokens)
        # every line is exactly a run of whole tokens: token ends include each line's end and each newline
        ends = np.cumsum([len(t) for t in tokens])
        nl_pos = np.flatnonzero(is_nl)
        line_ends = np.concatenate((nl_pos, nl_pos + 1, [n]))
        assert np.isin(line_ends[line_ends > 0], ends).all(), f.name
        assert len(tokens) == int(spikes[:-1].sum()) + 1
        assert sum(len(line) for line in lines) + len(lines) - 1 == n
