"""Chapters 7-8: sentiment classification of English and Japanese text.

Data: the IMDb layout (``train/{pos,neg}/*.txt``, ``test/{pos,neg}/*.txt``) with
``classes.txt``; ``test`` is the held-out split every model is scored on.
Models: ``transformer`` (the book's 2-block classifier on pretrained word vectors) and
``bert`` (BertForSequenceClassification). Primary metric: accuracy; the card also shows
balanced accuracy, F1, ROC AUC and a TF-IDF + logistic-regression baseline fitted on the same
split.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from zooflow.config import RunConfig
from zooflow.data import textfolder
from zooflow.data.imagefolder import read_classes
from zooflow.data.subsets import even_spread
from zooflow.data.tokenize import TOKENIZER_PACKAGES, build_vocab, encode, get_tokenizer
from zooflow.evaluation import classification as metrics
from zooflow.models import bert as bert_models
from zooflow.models import transformer as transformer_models
from zooflow.models.word_vectors import load_vectors
from zooflow.tasks.base import RunContext, TaskDefaults, other_classes
from zooflow.training.classifier import classifier_step
from zooflow.training.engine import Loaders
from zooflow.training.optim import build_optimizer

EVAL_SPLIT = "test"


def _split(folder: str, split: str) -> tuple[list[str], list[int]]:
    # Not cached: data/ can become a new version within one process (tests, a long-lived worker).
    texts, labels, _ = textfolder.read_split(Path(folder), split)
    return texts, labels


class SentimentTask(TaskDefaults):
    name = "sentiment"
    primary_metric = "accuracy"
    goal = "max"
    baseline_description = "TF-IDF (word 1-2 grams) + logistic regression fitted on the training split"
    not_comparable = staticmethod(other_classes)
    mixed_precision = True

    # -- data -------------------------------------------------------------------------------
    def data_info(self, cfg: RunConfig, data_root: Path) -> dict[str, Any]:
        folder = data_root / cfg.data.folder
        info: dict[str, Any] = {"classes": read_classes(folder)}
        if cfg.architecture == "transformer":
            # The vocabulary is part of what the model is: it travels with the registered version.
            # Lenient read: this runs before validation, which names any unreadable file.
            texts, _, _ = textfolder.read_split(folder, "train", strict=False)
            info["vocab"] = build_vocab(texts, get_tokenizer(cfg.params.tokenizer), cfg.params.min_freq)
        return info

    def manifest(self, ctx: RunContext) -> pd.DataFrame:
        return textfolder.manifest(ctx.folder, relative_to=ctx.data_root)

    def import_data(self, source: Path, target: Path) -> textfolder.Imported:
        """An IMDb-layout folder, or a TSV/CSV of (text, label[, split]): an ``Imported``
        (classes, skipped litter, notes on aclImdb's extras left out)."""
        if Path(source).is_file():
            return textfolder.import_table(source, target)
        return textfolder.import_folder(source, target)

    def expectations(self, ctx: RunContext) -> list:
        import great_expectations as gx  # slow import; serving never needs it

        checks = ctx.cfg.data
        every_split_class = [f"{split}/{label}" for split in textfolder.SPLITS for label in ctx.info["classes"]]
        found = [
            gx.expectations.ExpectColumnValuesToBeInSet(column="utf8", value_set=[True]),
            gx.expectations.ExpectColumnValuesToBeBetween(column="chars", min_value=1, max_value=checks.max_chars),
            gx.expectations.ExpectColumnValuesToBeInSet(column="label", value_set=ctx.info["classes"]),
            gx.expectations.ExpectColumnDistinctValuesToContainSet(column="split_label", value_set=every_split_class),
            gx.expectations.ExpectColumnValuesToBeBetween(column="class_count", min_value=checks.min_images_per_class),
            gx.expectations.ExpectColumnValuesToBeInSet(column="in_other_split", value_set=[False]),
        ]
        if checks.min_japanese_share is not None:
            found.append(gx.expectations.ExpectColumnValuesToBeBetween(column="japanese_share",
                                                                       min_value=checks.min_japanese_share))
        return found

    def encoder(self, ctx: RunContext):
        """texts -> (N, max_length) token ids, the way this model reads them."""
        cfg = ctx.cfg
        if cfg.architecture == "bert":
            tokenizer = bert_models.tokenizer_for(cfg.pretrained)
            return lambda texts: tokenizer(list(texts), truncation=True, max_length=cfg.params.max_length,
                                           padding="max_length", return_tensors="pt")["input_ids"]
        tokenize, max_length = get_tokenizer(cfg.params.tokenizer), cfg.params.max_length
        index = {word: i for i, word in enumerate(ctx.info["vocab"])}
        return lambda texts: torch.tensor([encode(t, tokenize, index, max_length) for t in texts], dtype=torch.long)

    def _dataset(self, ctx: RunContext, split: str, train: bool = False):
        texts, labels = _split(str(ctx.folder), split)
        return TensorDataset(self.encoder(ctx)(texts), torch.tensor(labels, dtype=torch.long))

    def _loader(self, ctx: RunContext, split: str, train: bool) -> DataLoader:
        dataset = self._dataset(ctx, split, train)
        picks = None if train else even_spread(len(dataset), ctx.cfg.max_eval_samples)
        if picks is not None:  # smoke runs score an even spread of the split (both classes), not its first rows
            dataset = Subset(dataset, picks.tolist())
        return DataLoader(dataset, batch_size=ctx.cfg.batch_size, shuffle=train, num_workers=ctx.cfg.num_workers)

    # -- model ------------------------------------------------------------------------------
    def build_model(self, ctx: RunContext, pretrained: bool = True) -> nn.Module:
        cfg = ctx.cfg
        classes = len(ctx.info["classes"])
        if cfg.architecture == "bert":
            return bert_models.build_bert(classes, cfg.pretrained, load_weights=pretrained)
        if cfg.architecture != "transformer":
            raise ValueError(f"unknown architecture '{cfg.architecture}' for sentiment; known: transformer, bert")
        vectors = None
        if pretrained and cfg.pretrained != "none":
            vectors = load_vectors(cfg.pretrained, ctx.info["vocab"])
            if vectors.shape[1] != cfg.params.embedding_dim:
                raise ValueError(f"pretrained: {cfg.pretrained} has {vectors.shape[1]}-d vectors but "
                                 f"params.embedding_dim is {cfg.params.embedding_dim}")
        return transformer_models.TransformerClassifier(len(ctx.info["vocab"]), cfg.params.embedding_dim,
                                                        cfg.params.max_length, classes, dropout=cfg.params.dropout,
                                                        vectors=vectors)

    def serving_packages(self, cfg: RunConfig) -> tuple[str, ...]:
        """BERT's tokenizer comes with transformers; the Transformer's with its tokenizer's package."""
        return ("transformers",) if cfg.architecture == "bert" else TOKENIZER_PACKAGES[cfg.params.tokenizer]

    def loaders(self, ctx: RunContext) -> Loaders:
        """Shuffled training texts; validation on the held-out split the model is scored on
        (the book's; nothing is selected on it unless a config sets ``select_metric``)."""
        return Loaders(self._loader(ctx, "train", True), self._loader(ctx, EVAL_SPLIT, False))

    def optimizers(self, model: nn.Module, ctx: RunContext) -> dict[str, torch.optim.Optimizer]:
        cfg = ctx.cfg
        groups = (bert_models.param_groups if cfg.architecture == "bert" else transformer_models.param_groups)(model)
        return {"model": build_optimizer(model, groups, cfg.lr, cfg.optimizer, cfg.momentum, cfg.weight_decay)}

    def training_step(self, model: nn.Module, batch, ctx: RunContext, device, optimizers):
        return classifier_step(model, batch, device)

    def validation_step(self, model: nn.Module, batch, ctx: RunContext, device):
        return classifier_step(model, batch, device)

    # -- evaluation -------------------------------------------------------------------------
    def predict_split(self, model: nn.Module, ctx: RunContext):
        """(probabilities, targets) over the held-out split: one pass feeds scores and figures."""
        return metrics.predict_loader(model, self._loader(ctx, EVAL_SPLIT, False))

    def score(self, predictions, ctx: RunContext) -> dict[str, float]:
        return self._scores(*predictions, ctx.info["classes"])

    def _scores(self, probabilities: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict[str, float]:
        from torchmetrics.classification import MulticlassAUROC, MulticlassRecall

        found = metrics.scores(probabilities, targets, classes)
        found["balanced_accuracy"] = MulticlassRecall(len(classes), average="macro")(probabilities, targets).item()
        if probabilities.ndim == 2:
            found["roc_auc"] = MulticlassAUROC(len(classes), average="macro")(probabilities, targets).item()
        return found

    def baseline(self, ctx: RunContext) -> dict[str, float]:
        """TF-IDF (word 1-2 grams, the task's tokeniser) + logistic regression, fitted on train."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        train_texts, train_labels = _split(str(ctx.folder), "train")
        test_texts, test_labels = _split(str(ctx.folder), EVAL_SPLIT)
        picks = even_spread(len(test_labels), ctx.cfg.max_eval_samples)  # the very samples the model is scored on
        if picks is not None:
            test_texts, test_labels = [test_texts[i] for i in picks], [test_labels[i] for i in picks]
        tokenize = get_tokenizer(ctx.cfg.params.tokenizer)
        vectorizer = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None,
                                     ngram_range=(1, 2), min_df=1, sublinear_tf=True)
        classifier = LogisticRegression(max_iter=2000, C=10.0)
        classifier.fit(vectorizer.fit_transform(train_texts), train_labels)
        probabilities = torch.tensor(classifier.predict_proba(vectorizer.transform(test_texts)), dtype=torch.float32)
        return self._scores(probabilities, torch.tensor(test_labels), ctx.info["classes"])

    def examples(self, model: nn.Module, ctx: RunContext, predictions, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        classes = ctx.info["classes"]
        probabilities, targets = predictions
        figures = [metrics.confusion_figure(probabilities, targets, classes, folder / "confusion_matrix.png")]
        texts, _ = _split(str(ctx.folder), EVAL_SPLIT)
        picks = np.linspace(0, len(texts) - 1, num=min(6, len(texts))).round().astype(int)
        page = ["<h2>Attention of the first token</h2>",
                "<p>Each line: one layer and head; a token's shade is how much the first (classifying) "
                "token attends to it.</p>"]
        for index in picks:
            page.append(self._attention_html(model, ctx, texts[index]))
        path = folder / "attention.html"
        path.write_text("<!doctype html><meta charset='utf-8'><body style='font-family:sans-serif'>"
                        + "\n".join(page) + "</body>")
        figures.append(path)
        return figures

    # -- explanation and serving ------------------------------------------------------------
    def explain(self, model: nn.Module, ctx: RunContext, text: str) -> dict:
        """Prediction plus, per layer and head, the first token's attention over the tokens."""
        ids = self.encoder(ctx)([text])
        model.eval()
        with torch.no_grad():
            logits, attention = model(ids.to(next(model.parameters()).device), return_attention=True)
        length = int((ids[0] != self._pad_id(ctx)).sum())
        tokens = self._tokens(ctx, ids[0, :length].tolist())
        probabilities = logits.float().softmax(1)[0].cpu()
        layers = [[layer[0, head, 0, :length].float().cpu().tolist() for head in range(layer.shape[1])]
                  for layer in attention]
        return {"label": ctx.info["classes"][int(probabilities.argmax())], "probability": float(probabilities.max()),
                "tokens": tokens, "attention": layers}

    def _pad_id(self, ctx: RunContext) -> int:
        return bert_models.tokenizer_for(ctx.cfg.pretrained).pad_token_id if ctx.cfg.architecture == "bert" else 0

    def _tokens(self, ctx: RunContext, ids: list[int]) -> list[str]:
        if ctx.cfg.architecture == "bert":
            return bert_models.tokenizer_for(ctx.cfg.pretrained).convert_ids_to_tokens(ids)
        return [ctx.info["vocab"][i] for i in ids]

    def _attention_html(self, model: nn.Module, ctx: RunContext, text: str) -> str:
        found = self.explain(model, ctx, text)
        lines = [f"<h3>{html.escape(found['label'])} ({found['probability']:.2f})</h3>"]
        for layer, heads in enumerate(found["attention"]):
            for head, weights in enumerate(heads):
                top = max(weights[1:] or [1.0]) or 1.0
                spans = "".join(f"<span style='background:rgba(255,0,0,{min(w / top, 1.0):.2f})'>"
                                f"{html.escape(token)}</span> " for token, w in zip(found["tokens"], weights))
                lines.append(f"<div><small>layer {layer + 1} head {head + 1}</small>: {spans}</div>")
        return "\n".join(lines)

    def predict(self, model: nn.Module, ctx: RunContext, texts) -> pd.DataFrame:
        """Label and class probabilities for raw strings (a DataFrame with a ``text`` column, or a list)."""
        if isinstance(texts, pd.DataFrame):
            if "text" not in texts:
                raise ValueError(f"expected a column 'text', got columns {list(texts.columns)}")
            texts = texts["text"].tolist()
        texts = [str(t) for t in texts]
        model.eval()
        with torch.no_grad():
            probabilities = model(self.encoder(ctx)(texts).to(next(model.parameters()).device)).float().softmax(1)
        probabilities = probabilities.cpu().numpy()
        return metrics.probability_table(probabilities, ctx.info["classes"])

    def input_example(self, ctx: RunContext) -> pd.DataFrame:
        texts, _ = _split(str(ctx.folder), EVAL_SPLIT)
        return pd.DataFrame({"text": [texts[0], texts[-1]]})


TASK = SentimentTask()
