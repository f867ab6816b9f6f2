"""What a new user expects of the files and commands (issue 28): readable file modes, portable run folders, quiet
pipes, no temp litter, honest metrics, a version, a license, a light `import speak`, any alphabet, readable tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from speak.errors import SpeakError

ROOT = Path(__file__).resolve().parents[2]
TEXT = "In the beginning God created the heavens and the earth.\nAnd God said, let there be light.\n"


def speak(*args, stdin: bytes | None = None, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "speak.cli", *args], input=stdin, capture_output=True, cwd=cwd,
                          env=env)


def run_in_process(argv, capsys):
    from speak.cli import run

    capsys.readouterr()
    code = run(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------- 1. file modes
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    from speak.atomic import atomic_write_json, ensure_dir

    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a" / "m.json", {"x": 1})
        ensure_dir(tmp_path / "b")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "m.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "b").stat().st_mode & 0o777 == mode | ((mode & 0o444) >> 2)  # r -> x for folders


def test_tokenizer_and_checkpoint_files_are_readable_by_others(tmp_path):
    import torch

    from speak.tokenizer import SpeakTokenizer
    from speak.train.checkpoint import save_checkpoint

    old = os.umask(0o022)
    try:
        SpeakTokenizer.default().save_pretrained(tmp_path / "tk")
        last = save_checkpoint(tmp_path / "ck", {"w": torch.zeros(2)}, {"step": 1})
    finally:
        os.umask(old)
    files = [*(tmp_path / "tk").iterdir(), *last.iterdir()]
    assert files and all(f.stat().st_mode & 0o777 == 0o644 for f in files), [oct(f.stat().st_mode) for f in files]
    assert last.stat().st_mode & 0o777 == 0o755


# ---------------------------------------------------------------------------------------------- 6. temp files, pipes
def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    from speak.atomic import atomic_write_text

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.txt.{int(dead.stdout)}.abcd1234.tmp"  # what kill -9 mid-write leaves
    stale.write_bytes(b"")
    alive = tmp_path / f".out.txt.{os.getpid()}.live0000.tmp"  # a write in progress in a live process
    alive.write_bytes(b"")
    atomic_write_text(tmp_path / "out.txt", "done\n")
    assert (tmp_path / "out.txt").read_text() == "done\n"
    assert not stale.exists() and alive.exists()


def test_kill_9_during_tokenize_o_then_rerun_leaves_no_temp_file(tmp_path):
    import signal
    import time

    target = tmp_path / "tokens.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "speak.cli", "tokenize", "-", "-o", str(target)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(TEXT.encode())
    proc.stdin.flush()
    deadline = time.time() + 60
    while not list(tmp_path.glob(".tokens.txt.*.tmp")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(".tokens.txt.*.tmp")), "the writer never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    src = tmp_path / "in.txt"
    src.write_text(TEXT)
    assert speak("tokenize", str(src), "-o", str(target)).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "tokens.txt"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_closed_pipe_ends_tokenize_quietly(tmp_path, workers):
    import time

    big = tmp_path / "big.txt"
    big.write_text(TEXT * 20000)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(["bash", "-c", f"{sys.executable} -m speak.cli tokenize {big} --workers {workers} | head -1;"
                                        " exit ${PIPESTATUS[0]}"], capture_output=True, env=env, timeout=300)
    assert out.stdout.decode().count("\n") == 1
    assert out.stderr == b"" and out.returncode == 141  # 128 + SIGPIPE, what `cat` reports
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", str(big)], capture_output=True, text=True).stdout.split()
    assert not left, left  # no worker outlives the command


# ---------------------------------------------------------------------------------------------- 4. run folders
def test_run_folder_records_the_absolute_corpus_and_says_when_it_moved_or_changed(tmp_path, monkeypatch, capsys):
    from speak.train.provenance import absolute_spec, check_run_corpus, write_corpus_record

    (tmp_path / "data").mkdir()
    corpus = tmp_path / "data" / "c.txt"
    corpus.write_text(TEXT)
    monkeypatch.chdir(tmp_path)
    spec = absolute_spec("data/c.txt")
    assert spec == str(corpus.resolve()) and absolute_spec("embedded") == "embedded"
    assert absolute_spec("text8:data/c.txt") == "text8:" + str(corpus.resolve())
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    write_corpus_record(run, spec)
    record = json.loads((run / "corpus.json").read_text())
    assert record["path"] == spec and len(record["sha256"]) == 64 and record["bytes"] == len(TEXT)
    elsewhere = tmp_path / "runs"
    monkeypatch.chdir(elsewhere)
    assert check_run_corpus(Path("x"), spec, strict=True) == spec  # from another directory
    corpus.write_text(TEXT + "more\n")
    with pytest.raises(SpeakError, match="changed since run x was trained"):
        check_run_corpus(Path("x"), spec, strict=True)
    capsys.readouterr()
    check_run_corpus(Path("x"), spec, strict=False)  # eval: a warning, not an error
    assert "speak: warning:" in capsys.readouterr().err
    corpus.rename(tmp_path / "data" / "moved.txt")
    with pytest.raises(SpeakError, match="is gone"):
        check_run_corpus(Path("x"), spec, strict=False)


def test_an_older_run_with_a_relative_corpus_is_found_from_another_directory(tmp_path, monkeypatch):
    from speak.train.provenance import check_run_corpus

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "c.txt").write_text(TEXT)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "runs")
    assert check_run_corpus(Path("x"), "data/c.txt", strict=False) == str(tmp_path / "data" / "c.txt")


@pytest.mark.slow
def test_eval_and_resume_work_from_another_directory(tmp_path):
    (tmp_path / "proj" / "data").mkdir(parents=True)
    (tmp_path / "proj" / "data" / "c.txt").write_text(TEXT * 60)
    small = ["--preset", "cpu-tiny", "--boundary", "fixed", "-q", "--set", "test_windows=2",
             "--set", "eval_windows=1", "--set", "timing_batches=1"]
    out = speak("train", "--corpus", "data/c.txt", "--steps", "2", "--out", "../runs/x", *small,
                cwd=tmp_path / "proj")
    assert out.returncode == 0, out.stderr
    ev = speak("eval", "--run", "runs/x", "--json", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    again = speak("train", "--corpus", "proj/data/c.txt", "--steps", "3", "--out", "runs/x", "--resume", *small,
                  cwd=tmp_path)
    assert again.returncode == 0, again.stderr


# ---------------------------------------------------------------------------------------------- 7. fit-tokenizer
def test_fit_tokenizer_refuses_an_existing_out_unless_forced(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 60)
    out = tmp_path / "tk"
    out.mkdir()
    (out / "speak_tokenizer.json").write_text("{}")
    code, _, err = run_in_process(["fit-tokenizer", "--corpus", str(corpus), "--out", str(out), "--steps", "1",
                                   "--quiet", "--exemplar", "whitespace"], capsys)
    assert code == 2 and str(out) in err and "--force" in err
    assert (out / "speak_tokenizer.json").read_text() == "{}"


def test_metrics_record_the_exemplar_sentencepiece_actually_built(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 60)
    out = tmp_path / "tk"
    code, _, err = run_in_process(["fit-tokenizer", "--corpus", str(corpus), "--out", str(out), "--steps", "2",
                                   "--batch-size", "2", "--seq-len", "16", "--quiet",
                                   "--exemplar", "sentencepiece:8000"], capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["exemplar"] == "sentencepiece:8000"
    assert m["exemplar_vocab_size"] < 8000 and m["exemplar_used"].endswith(f":{m['exemplar_vocab_size']}")
    assert "shrunk from 8000" in m["exemplar_note"]
    code, _, err = run_in_process(["fit-tokenizer", "--corpus", str(corpus), "--out", str(out), "--steps", "1",
                                   "--quiet", "--exemplar", "whitespace", "--force"], capsys)
    assert code == 0, err and json.loads((out / "metrics.json").read_text())["exemplar"] == "whitespace"


def test_fit_tokenizer_prints_progress_lines_with_an_eta_on_a_pipe(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 60)
    out = speak("fit-tokenizer", "--corpus", str(corpus), "--out", str(tmp_path / "tk"), "--steps", "10",
                "--batch-size", "2", "--seq-len", "16", "--exemplar", "whitespace")
    assert out.returncode == 0, out.stderr
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("step 10/10 ") and " eta 0:00:00" in lines[-1]


def test_plain_progress_lines_come_every_few_seconds_with_an_eta(capsys):
    from speak.train.console import PlainProgress

    p = PlainProgress(100, 0, every_s=0.0)
    p.tick(1)
    p.line(50, "loss 1.0")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("step 1/100 eta ") and err[1].startswith("step 50/100 loss 1.0 eta 0:00:")


# ---------------------------------------------------------------------------------------------- 8. the small things
def test_version_info_license_typed_and_a_light_top_level_api(capsys):
    import speak as pkg

    code, out, _ = run_in_process(["--version"], capsys)
    assert code == 0 and out.strip() == f"speak {pkg.__version__}"
    code, out, _ = run_in_process(["info"], capsys)
    assert code == 0 and "embedded default" in out and "parameters" in out
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "src" / "speak" / "py.typed").is_file()
    probe = subprocess.run([sys.executable, "-c", "import sys, speak; print(sorted(m for m in sys.modules "
                            "if m.split('.')[0] in ('torch', 'numba', 'numpy')))"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert probe.stdout.strip() == "[]", probe.stdout  # `import speak` stays light
    tok = pkg.load_tokenizer()
    assert "".join(tok.tokenize("In the beginning")) == "In the beginning"
    assert pkg.SpeakError is SpeakError


# ---------------------------------------------------------------------------------------------- 9. large alphabets
def _cjk_like(n_chars: int = 1600, lines: int = 300) -> list[str]:
    import random

    rng = random.Random(0)
    alphabet = [chr(0x4E00 + i) for i in range(n_chars)]
    out = ["".join(alphabet[i : i + 40]) for i in range(0, n_chars, 40)]  # every character appears
    out += ["".join(rng.choices(alphabet[:200], k=30)) for _ in range(lines)]
    return out


def test_sentencepiece_exemplar_grows_its_vocabulary_to_a_large_alphabet():
    from speak.text.exemplar import load_exemplar

    lines = _cjk_like()
    with pytest.warns(UserWarning, match="grown from 1000"):
        ex = load_exemplar("sentencepiece:1000", texts=lines)
    assert ex.vocab_size > 1600 and "alphabet" in ex.note
    spikes = ex.segment_spikes(lines[-1])
    assert spikes.shape == (30,) and spikes.sum() >= 1


def test_a_grid_records_a_failed_run_and_goes_on(tmp_path):
    from speak.experiments import compare as C
    from speak.experiments.runner import load_record

    def runner(method, corpus, preset, seed, steps, out_dir, sets, **kw):
        if method == "magnet":
            raise SpeakError("SentencePiece training failed (vocab_size=1000): too many characters")
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "metrics.json").write_text(json.dumps({"boundary": method, "bpc": 2.0, "sf": 3.0}))
        return load_record(out_dir, method=method, corpus=corpus, seed=seed)

    records, notes = C.run_grid(["magnet", "speak"], ["zh.txt"], preset="cpu-tiny", seeds=[0, 1], steps=1,
                                out=tmp_path, runner=runner, quiet=True)
    assert [r["method"] for r in records] == ["speak", "speak"]
    assert sum("magnet on zh seed" in n and "failed" in n for n in notes) == 2
    failed = json.loads((tmp_path / "runs" / "zh" / "magnet" / "seed0" / "failed.json").read_text())
    assert failed["method"] == "magnet" and "SentencePiece" in failed["error"]
    with pytest.raises(SpeakError, match="every run failed"):
        C.run_grid(["magnet"], ["zh.txt"], preset="cpu-tiny", seeds=[0], steps=1, out=tmp_path / "2",
                   runner=runner, quiet=True)


# ---------------------------------------------------------------------------------------------- 10. output
def test_demo_table_reads_in_80_columns():
    from rich.console import Console

    from speak.cli.demo import results_table

    records = [dict(method=m, seed=s, bpc=1.234567, sf=25084.0, lm_params=12_345_678, tokenizer_params=27_522,
                    tokenize_ms_per_batch=12.3, infer_ms_per_batch=1045.6)
               for m in ("dtp-unigram", "magnet", "speak-hard-no-reset") for s in (0, 1)]
    console = Console(width=80, record=True, file=open(os.devnull, "w"))
    console.print(results_table(records, seeds=2))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert sum("speak-hard-no-reset" in line for line in lines) == 2  # never cut
    assert "…" not in "".join(lines)


def test_energy_never_prints_nan(capsys):
    code, out, err = run_in_process(["energy", "--preset", "rwkv-tiny", "--seq-len", "4"], capsys)
    assert code == 0, err
    assert "nan" not in out.lower().replace("n/a", "") and "mean firing rate n/a (no layer reads spikes)" in out


@pytest.mark.parametrize("sep", ["|", " ", "||", " | "])
def test_text_format_round_trips_text_holding_the_separator(tmp_path, capsys, sep):
    from speak.text.segment import split_tokens

    lines = ["a|b || c\\d | e\\|f", "pipes | and \\ backslashes \\\\ everywhere ||"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    code, out, err = run_in_process(["tokenize", str(src), "--sep", sep], capsys)
    assert code == 0, err
    rows = out.splitlines()
    assert ["".join(split_tokens(row, sep)) for row in rows] == lines
    assert all(len(split_tokens(row, sep)) > 1 for row in rows)


def test_plot_says_which_characters_it_draws(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("\n" + "x" * 50 + " long line\n")
    code, _, err = run_in_process(["tokenize", str(src), "--plot", str(tmp_path / "p.png"), "--plot-chars", "20"],
                                  capsys)
    assert code == 0 and "line 2, only its first 20 of 60 characters" in err
    assert (tmp_path / "p.png").stat().st_size > 0
    from speak.tokenizer import SpeakTokenizer

    tk, line = SpeakTokenizer.default(), "In the beginning God created the heavens and the earth."
    assert (tk.trace(line[:20]).s[0] == tk.trace(line).s[0, :20]).all()  # why --plot may trace only the prefix


@pytest.mark.slow
@pytest.mark.parametrize("boundary", ["dtp-unigram", "speak"])
def test_training_works_on_a_large_alphabet(tmp_path, boundary):
    corpus = tmp_path / "zh.txt"
    corpus.write_text("\n".join(_cjk_like()) + "\n", encoding="utf-8")
    out = speak("train", "--corpus", str(corpus), "--boundary", boundary, "--preset", "cpu-tiny", "--steps", "2",
                "--out", str(tmp_path / "run"), "-q", "--set", "test_windows=2", "--set", "eval_windows=1",
                "--set", "timing_batches=1")
    assert out.returncode == 0, out.stderr
    assert "vocabulary grown" in out.stderr.decode() and (tmp_path / "run" / "metrics.json").is_file()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "vocabulary grown" in metrics["exemplar_note"]
