"""The `speak` command: thin, delegates to the rooms below.

Each command group lives in its own module with a `register(app)` function; heavy imports
(torch, transformers) happen inside the commands so `speak --help` stays fast.
"""

from __future__ import annotations

import sys

import typer

from speak.errors import SpeakError

app = typer.Typer(
    name="speak",
    help="SPEAK: spiking, entropy-aware learned tokenization and spiking language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that print ratios measured in one run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

# One line per command module; each module owns its commands.
_COMMAND_MODULES = [
    "speak.cli.bench_neuron",
    "speak.cli.bench_models",
    "speak.cli.tokenize",
    "speak.cli.demo",
    "speak.cli.train",
    "speak.cli.experiment",
    "speak.cli.spiking",
    "speak.cli.integrations",
]


def _register_all() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app, bench_app)


_register_all()


def fail(message: str) -> "typer.Exit":
    """Print one line on stderr and return the exit to raise (code 2)."""
    print(f"speak: error: {message}", file=sys.stderr)
    return typer.Exit(code=2)


def main() -> None:
    """Console entry point: user-facing errors become one line and exit code 2."""
    try:
        app()
    except SpeakError as err:
        print(f"speak: error: {err}", file=sys.stderr)
        sys.exit(2)
    except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        print(f"speak: error: {err}", file=sys.stderr)
        sys.exit(2)
