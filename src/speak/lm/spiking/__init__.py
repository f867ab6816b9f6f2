"""Spiking language models on SPEAK tokens: SpikeGPT, SpikeLM, SDLLM conversion (see docs/spiking_lms.md).

Submodules are imported lazily by their users; this file only documents the layout:
neurons (multi-step LIF, Heaviside/arctan, elastic bi-spiking), cpu_kernels (their compiled scans and the WKV),
spikegpt, spikelm, sdllm, generate, io.
"""
