"""Model throughput benchmark (same as `speak bench models`): python benchmarks/bench_models.py [--rounds 6]."""

from speak.cli import app

if __name__ == "__main__":
    import sys

    app(["bench", "models", *sys.argv[1:]])
