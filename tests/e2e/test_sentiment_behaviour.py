"""Behaviour of the demo-profile text models (trained here, as `make demo` trains them): clearly
positive and clearly negative sentences, in English and Japanese, get the right label.
These train real models for a few minutes: with the English Transformer's test
(``test_sentiment_behaviour_transformer.py``), the slowest tests of the suite."""

import pytest

from tests.sentiment_behaviour import assert_demo_model_reads_clear_sentences


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("behaviour")


@pytest.mark.slow
@pytest.mark.parametrize("task_name,model", [("sentiment-ja", "transformer"), ("sentiment", "bert")])
def test_demo_model_reads_clear_sentences_right(data_root, tmp_path, task_name, model):
    assert_demo_model_reads_clear_sentences(task_name, model, data_root, tmp_path / "checkpoints")
