"""Whether an old champion can be re-scored against a new model is the task's call (the flow
never reads task-specific facts such as class names itself)."""

import pytest

from zooflow.tasks import get_task

DIGITS = {"classes": [str(d) for d in range(10)], "normal_labels": [7, 8], "image_size": 28}


@pytest.mark.parametrize("module", ["classification", "sentiment", "generation", "anomaly"])
def test_the_same_classes_are_comparable_and_other_classes_are_named(module):
    task = get_task(module)
    assert task.not_comparable(DIGITS, dict(DIGITS)) is None
    other = {**DIGITS, "classes": ["T-shirt", *DIGITS["classes"][1:]]}
    assert task.not_comparable(other, DIGITS) == f"predicts other classes ({other['classes']})"


@pytest.mark.parametrize("module", ["generation", "anomaly"])
def test_a_digits_model_of_other_normal_digits_is_not_comparable(module):
    reason = get_task(module).not_comparable({**DIGITS, "normal_labels": [1]}, DIGITS)
    assert reason == "learned other normal labels ([1])"
