"""The one training engine (``engine.py``) and what it is built from: device, seeds,
checkpoints, optimisers and schedules, the shared classifier step and the GANs' update rules."""
