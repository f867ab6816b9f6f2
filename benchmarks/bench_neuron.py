"""Neuron scan benchmark (same as `speak bench neuron`): python benchmarks/bench_neuron.py [--batch 16 --length 2048]."""

from speak.cli import app

if __name__ == "__main__":
    import sys

    app(["bench", "neuron", *sys.argv[1:]])
