"""`speak tokenize` / `speak info` / `speak fit-tokenizer` as a user runs them: output formats and one-line errors."""

import json
import subprocess
import sys

import pytest


def speak(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "speak.cli", *args], input=stdin, capture_output=True)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("cli") / "in.txt"
    p.write_text("In the beginning God created the heavens and the earth.\nAnd God said, let there be light.\n")
    return p


def test_formats(text_file):
    lines = text_file.read_text().splitlines()
    out = speak("tokenize", str(text_file), "--format", "json")
    assert out.returncode == 0, out.stderr
    arrays = [json.loads(x) for x in out.stdout.decode().splitlines()]
    assert ["".join(a) for a in arrays] == lines
    assert all(1 < len(a) < len(line) for a, line in zip(arrays, lines))  # segments, not every character
    jsonl = [json.loads(x) for x in speak("tokenize", str(text_file), "-f", "jsonl").stdout.decode().splitlines()]
    assert [r["tokens"] for r in jsonl] == arrays
    assert all(line[a:b] == t for r, line in zip(jsonl, lines) for (a, b), t in zip(r["offsets"], r["tokens"]))
    ends = speak("tokenize", str(text_file), "-f", "offsets").stdout.decode().splitlines()
    assert [[int(e) for e in row.split()] for row in ends] == [[b for _, b in r["offsets"]] for r in jsonl]
    from speak.tokenizer import SpeakTokenizer

    vocab = SpeakTokenizer.default().segment_vocab
    ids = speak("tokenize", str(text_file), "-f", "ids").stdout.decode().splitlines()
    assert [vocab.decode([int(i) for i in row.split()]) for row in ids] == lines
    assert [[int(i) for i in row.split()] for row in ids] == [vocab.encode(a) for a in arrays]
    text = speak("tokenize", "-", stdin=text_file.read_bytes()).stdout.decode().splitlines()
    assert [row.split("|") for row in text] == arrays


def test_workers_give_the_same_output(text_file, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text(text_file.read_text() * 3000)  # several chunks
    one = speak("tokenize", str(big), "-f", "ids")
    two = speak("tokenize", str(big), "-f", "ids", "--workers", "2")
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout


def test_output_file_is_written_atomically(text_file, tmp_path):
    target = tmp_path / "tokens.txt"
    assert speak("tokenize", str(text_file), "-o", str(target)).returncode == 0
    assert target.read_text().count("\n") == 2
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n" * 5000 + b"\xff\xfe broken\n")
    target2 = tmp_path / "tokens2.txt"
    out = speak("tokenize", str(bad), "-o", str(target2))
    assert out.returncode == 2 and not target2.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tokens2")]


@pytest.mark.parametrize("content,match", [
    (b"caf\xe9 au lait\n", "not valid UTF-8 (line 1, byte offset 3)"),
    (b"", "is empty"),
])
def test_bad_input_files(tmp_path, content, match):
    p = tmp_path / "x.txt"
    p.write_bytes(content)
    out = speak("tokenize", str(p))
    assert out.returncode == 2
    err = out.stderr.decode().strip()
    assert match in err and len(err.splitlines()) == 1


def test_missing_file_and_bad_format(tmp_path, text_file):
    out = speak("tokenize", str(tmp_path / "nope.txt"))
    assert out.returncode == 2 and "no such file" in out.stderr.decode()
    out = speak("tokenize", str(text_file), "--format", "xml")
    assert out.returncode == 2 and "unknown format" in out.stderr.decode()


def test_tampered_model(tmp_path, text_file):
    from speak.tokenizer import SpeakTokenizer

    d = tmp_path / "tk"
    SpeakTokenizer.default().save_pretrained(d)
    w = d / "speak_tokenizer.safetensors"
    w.write_bytes(w.read_bytes()[:-10])
    for args in (("tokenize", str(text_file), "--model", str(d)), ("info", str(d))):
        out = speak(*args)
        err = out.stderr.decode().strip()
        assert out.returncode == 2 and "checksum mismatch" in err and len(err.splitlines()) == 1


def test_info_and_plot(tmp_path, text_file):
    from speak.tokenizer import default_tokenizer_dir

    out = speak("info", str(default_tokenizer_dir()))
    assert out.returncode == 0 and b"parameters" in out.stdout and b"character vocabulary" in out.stdout
    png = tmp_path / "seg.png"
    out = speak("tokenize", str(text_file), "--plot", str(png))
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_renders_spikes_and_resets(text_file):
    out = speak("tokenize", str(text_file), "--show")
    assert out.returncode == 0
    text = out.stdout.decode()
    assert "threshold 1.0" in text and "spikes" in text


def test_fit_tokenizer_writes_metrics(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(("the quick brown fox jumps over the lazy dog and the cat sat on the mat\n" * 400))
    out = speak("fit-tokenizer", "--corpus", str(corpus), "--exemplar", "whitespace", "--steps", "40",
                "--batch-size", "8", "--seq-len", "64", "--out", str(tmp_path / "tk"), "--quiet")
    assert out.returncode == 0, out.stderr
    m = json.loads((tmp_path / "tk" / "metrics.json").read_text())
    assert {"spike_acc", "nonspike_acc", "f1", "sf", "exemplar_sf"} <= set(m)
    assert speak("info", str(tmp_path / "tk")).returncode == 0
    ids = speak("tokenize", "-m", str(tmp_path / "tk"), "-f", "ids", stdin="the lazy cat 🐈\n".encode())
    assert ids.returncode == 0, ids.stderr  # the vocabulary was built from the corpus and saved with the model
    (tmp_path / "tk" / "segment_vocab.json").unlink()
    missing = speak("tokenize", "-m", str(tmp_path / "tk"), "-f", "ids", stdin=b"the cat\n")
    assert missing.returncode == 2 and b"no token vocabulary" in missing.stderr and not missing.stdout


def test_fit_tokenizer_ngram_learns_and_tokenizes(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(("the quick brown fox jumps over the lazy dog and the cat sat on the mat\n" * 400))
    out = speak("fit-tokenizer", "--corpus", str(corpus), "--exemplar", "whitespace", "--steps", "150",
                "--batch-size", "8", "--seq-len", "64", "--encoder", "char-ngram", "--ngram-lookahead", "1",
                "--ngram-buckets", "512", "--balanced", "--out", str(tmp_path / "tk"), "--quiet")
    assert out.returncode == 0, out.stderr
    m = json.loads((tmp_path / "tk" / "metrics.json").read_text())
    assert m["spike_acc"] + m["nonspike_acc"] > 1.6  # chance is 1.0
    doc = json.loads((tmp_path / "tk" / "speak_tokenizer.json").read_text())
    assert doc["config"]["encoder"] == "char-ngram" and doc["lookup"]["kind"] == "ngram"
    tokenized = speak("tokenize", "-m", str(tmp_path / "tk"), stdin=b"the lazy cat\n")
    assert tokenized.returncode == 0, tokenized.stderr
