"""The English demo Transformer reads clear sentences right (see ``test_sentiment_behaviour.py``);
a file of its own, so this longest training of the suite runs beside the others, not after them."""

import pytest

from tests.sentiment_behaviour import assert_demo_model_reads_clear_sentences


@pytest.mark.slow
def test_demo_transformer_reads_clear_english_sentences_right(tmp_path):
    assert_demo_model_reads_clear_sentences("sentiment", "transformer", tmp_path / "data", tmp_path / "checkpoints")
