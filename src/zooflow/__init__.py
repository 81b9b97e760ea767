"""zooflow: the book's nine deep-learning tasks as governed, repeatable pipelines."""

from zooflow.settings import apply_offline_defaults

# Prefect, MLflow and the HF hub read these at import time, so they are set before any of
# them can be imported through this package. Values the user already set win.
apply_offline_defaults()

__version__ = "0.1.0"
