"""Model cards and lineage."""
