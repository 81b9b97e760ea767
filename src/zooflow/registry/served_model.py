"""The code MLflow logs as every registered zooflow model ("models from code").

``registry/pyfunc.py::log_model`` gives MLflow this file's path instead of a pickled model
object. MLflow copies the file into the model folder and, when the model is loaded or served,
runs it: it imports the wrapper from the ``zooflow`` package logged beside it (``code_paths``)
and hands MLflow an instance with ``set_model``. Loading a registered version therefore runs
only this reviewed code, never bytes from a pickle, and the weights come from safetensors.

Nothing here may depend on the logging process: the file runs in a fresh server process too.
"""

import mlflow

from zooflow.registry.pyfunc import TorchTaskModel

mlflow.models.set_model(TorchTaskModel())
