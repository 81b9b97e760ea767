"""zooflow: the book's nine deep-learning tasks as governed, repeatable pipelines."""

import logging

from zooflow.settings import apply_offline_defaults

# Prefect, MLflow and the HF hub read these at import time, so they are set before any of
# them can be imported through this package. Values the user already set win.
apply_offline_defaults()
# Step progress (epochs, decisions) is INFO; Prefect forwards this logger to its own handlers.
logging.getLogger("zooflow").setLevel(logging.INFO)

__version__ = "0.1.0"
