"""Data: the DVC-tracked ``data/`` folder, its versions, and readers for each on-disk format."""
