"""One module per task. ``get_task(name)`` is the only place a task's name picks code."""

from __future__ import annotations

from importlib import import_module

# task name -> "module:object"; modules import lazily (torch, torchvision are slow to import).
TASKS = {"classification": "zooflow.tasks.classification:TASK", "sentiment": "zooflow.tasks.sentiment:TASK",
         "generation": "zooflow.tasks.generation:TASK", "anomaly": "zooflow.tasks.anomaly:TASK",
         "detection": "zooflow.tasks.detection.task:TASK", "segmentation": "zooflow.tasks.segmentation.task:TASK",
         "pose": "zooflow.tasks.pose.task:TASK", "video": "zooflow.tasks.video.task:TASK"}


def get_task(name: str):
    """The task object for ``name``."""
    if name not in TASKS:
        raise KeyError(f"unknown task '{name}'; tasks: {', '.join(TASKS)}")
    module, attribute = TASKS[name].split(":")
    return getattr(import_module(module), attribute)
