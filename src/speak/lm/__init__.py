"""Language models over SPEAK tokens (hourglass, Transformer baseline, spiking LMs)."""
