"""Every `speak` command is a module-level function of a speak.cli module: importable and testable on its own."""

import importlib

import typer
from typer.testing import CliRunner


def _commands(app: typer.Typer, prefix: str = ""):
    for info in app.registered_commands:
        yield prefix + (info.name or info.callback.__name__), info.callback
    for group in app.registered_groups:
        yield from _commands(group.typer_instance, f"{prefix}{group.name} ")


def test_every_command_is_a_module_level_function():
    from speak.cli import app

    commands = dict(_commands(app))
    assert {"tokenize", "info", "fit-tokenizer", "train", "eval", "bench neuron", "experiment compare"} <= set(commands)
    for name, fn in commands.items():
        assert "<locals>" not in fn.__qualname__, name
        assert fn.__module__.startswith("speak.cli."), name
        assert getattr(importlib.import_module(fn.__module__), fn.__name__) is fn, name


def test_a_command_runs_on_an_app_of_its_own(tmp_path):
    from speak.cli.tokenize import tokenize

    app = typer.Typer()
    app.command()(tokenize)
    src = tmp_path / "in.txt"
    src.write_text("In the beginning God created the heavens.\n")
    out = CliRunner().invoke(app, [str(src), "-f", "json"])
    assert out.exit_code == 0, out.output
    assert "".join(__import__("json").loads(out.output)) == "In the beginning God created the heavens."
