"""One baseline or several: the two shapes ``Task.baseline`` may return, read one way.

Most tasks compare their model with one trivial predictor: ``baseline()`` returns its metrics
(``{"accuracy": 0.5}``) and ``baseline_description`` is a sentence. A task that needs more than
one yardstick (anomaly detection: the mean image and PCA) returns ``{name: metrics}`` and gives
``baseline_description`` as ``{name: sentence}``. MLflow keys: ``baseline.<metric>`` for the
one, ``baseline.<name>.<metric>`` for named ones.
"""

from __future__ import annotations

from collections.abc import Mapping

SINGLE = ""  # the name of the only baseline of a task that has one


def is_named(baseline: Mapping) -> bool:
    """True when ``baseline`` maps names to metric dicts rather than metric names to values."""
    return bool(baseline) and all(isinstance(value, Mapping) for value in baseline.values())


def named(baseline: Mapping, description: str | Mapping[str, str]) -> dict[str, tuple[str, dict[str, float]]]:
    """{name: (description, metrics)}; a task with one baseline gives one entry named ``SINGLE``."""
    if not is_named(baseline):
        text = description if isinstance(description, str) else "; ".join(description.values())
        return {SINGLE: (text, dict(baseline))}
    notes = description if isinstance(description, Mapping) else {}
    return {str(name): (notes.get(name, str(description) if isinstance(description, str) else "a trivial predictor"),
                        dict(metrics)) for name, metrics in baseline.items()}


def flat(baseline: Mapping) -> dict[str, float]:
    """The metrics to log under ``baseline.``: as they are for one baseline, ``<name>.<metric>``
    for named ones."""
    if not is_named(baseline):
        return dict(baseline)
    return {f"{name}.{metric}": value for name, metrics in baseline.items() for metric, value in metrics.items()}
