"""How things learn: losses, entropy targets, the proxy store, the objective, the trainer."""
