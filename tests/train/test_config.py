from pathlib import Path

import pytest

from speak.errors import SpeakError
from speak.train.config import PRESETS, TrainConfig, load_config, resume_mismatches

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_preset():
    cfg = load_config(flags={"preset": "cpu-tiny"})
    assert cfg.preset == "cpu-tiny" and cfg.seq_len == 128 and cfg.steps == 200
    assert cfg.scored + cfg.context == cfg.seq_len
    assert TrainConfig().lr == 2.5e-4 and TrainConfig().grad_clip == 0.25
    paper = load_config(flags={"preset": "paper"})
    assert (paper.scored, paper.context, paper.seq_len, paper.warmup, paper.lr) == (512, 1536, 2048, 4000, 2.5e-4)


def test_precedence_file_flags_sets(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: cpu-tiny\nsteps: 50\nlr: 0.01\nmodel:\n  d_model: 64\n")
    cfg = load_config(f, flags={"steps": 70, "lr": None}, sets=["lr=3e-3", "model.n_heads=4", "quiet=true"])
    assert cfg.steps == 70 and cfg.lr == 3e-3 and isinstance(cfg.lr, float)
    assert cfg.model == {"d_model": 64, "n_heads": 4} and cfg.quiet is True
    cfg = load_config(sets=["steps=1_000", "clean=en", "eval_scored=none", "model.boundary.fixed_k=3", "boundary=fixed"])
    assert cfg.steps == 1000 and cfg.clean == "en" and cfg.eval_scored is None
    assert cfg.model == {"boundary": {"fixed_k": 3}}


def test_toml(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('preset = "cpu-tiny"\nsteps = 12\nboundary = "fixed"\n[model]\nd_model = 64\n')
    cfg = load_config(f)
    assert cfg.steps == 12 and cfg.boundary == "fixed" and cfg.model["d_model"] == 64


@pytest.mark.parametrize(
    "text, sets, needle",
    [
        ("stepz: 3\n", [], "stepz"),
        ("", ["nope=1"], "nope"),
        ("", ["steps=abc"], "steps"),
        ("", ["model.d_model=100", "model.n_heads=3"], "divisible"),
        ("", ["boundary=bogus"], "bogus"),
        ("", ["preset=huge"], "huge"),
        ("", ["model.wat=1"], "wat"),
        ("", ["lr=-1"], "lr"),
        ("", ["eval_scored=100", "seq_len=64"], "seq_len"),
        ("- a\n- b\n", [], "mapping"),
        ("", ["steps"], "key=value"),
    ],
)
def test_errors_are_one_line(tmp_path, text, sets, needle):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(SpeakError) as err:
        load_config(f, sets=sets)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_missing_file():
    with pytest.raises(SpeakError, match="not found"):
        load_config("/nonexistent/x.yaml")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_files_match_presets(name):
    from_file = load_config(REPO / "configs" / f"{name}.yaml")
    from_preset = load_config(flags={"preset": name})
    assert from_file == from_preset


def test_resume_mismatches():
    a = TrainConfig(steps=10, lr=1e-3)
    assert resume_mismatches(a.to_dict(), TrainConfig(steps=20, lr=1e-3, quiet=True)) == []
    assert resume_mismatches(a.to_dict(), TrainConfig(steps=10, lr=2e-3)) == ["lr"]
