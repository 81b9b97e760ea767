"""Metrics (torchmetrics where they exist) and the figures a model card shows."""
