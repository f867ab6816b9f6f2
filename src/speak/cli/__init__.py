"""The `speak` command: thin, delegates to the rooms below.

Each command is a module-level function (importable, callable with explicit arguments, testable on its own); each
command module's `register(app, bench_app)` only adds its functions to the app. Heavy imports (torch, transformers)
happen inside the commands so `speak --help` stays fast.
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


def _version(value: bool) -> None:
    if value:
        from speak import __version__

        print(f"speak {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """SPEAK: spiking, entropy-aware learned tokenization and spiking language models."""


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


def error_line(message: object) -> str:
    """The one stderr line a user-facing error becomes."""
    return "speak: error: " + " ".join(str(message).split("\n"))


def run(argv: list[str] | None = None) -> int:
    """Run one `speak` command line in this process and return its exit code: a user-facing error is one stderr line
    and code 2 (what `main` does, callable from tests)."""
    try:
        app(args=argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except SpeakError as err:
        print(error_line(err), file=sys.stderr)
        return 2
    except UnicodeDecodeError as err:
        print(error_line(f"not valid UTF-8 ({err})"), file=sys.stderr)
        return 2
    except OSError as err:  # a path the command did not check itself: name it
        where = f"{err.filename}: " if err.filename else ""
        print(error_line(f"{where}{err.strerror or err}"), file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console entry point (see `run`); a warning is one 'speak: warning:' line."""
    import warnings

    warnings.formatwarning = lambda message, *_, **__: "speak: warning: " + " ".join(str(message).split()) + "\n"
    sys.exit(run(argv))
