"""The shared training loop: device, AMP, seeds, checkpoints and resume."""
