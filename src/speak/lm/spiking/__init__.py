"""Spiking language models on SPEAK tokens: SpikeGPT, SpikeLM, SDLLM conversion (see docs/spiking_lms.md).

Submodules are imported lazily by their users; this file only documents the layout:
neurons (LIF, Heaviside/arctan, elastic bi-spiking), spikegpt, spikelm, sdllm, generate, io.
"""
