"""Anomaly scores of the book's two detectors, and the metrics of a detector.

Both score an image by how badly the generator can reproduce it (book 6): ``(1 - w)`` times
the L1 pixel residual ``|x - G(z)|`` plus ``w`` times the L1 residual of the discriminator's
hidden features. AnoGAN finds z by gradient descent on that same loss (a latent search,
batched over many images at once); EfficientGAN takes z = E(x) in one pass.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from zooflow.evaluation.keys import metric_key_map
from zooflow.training.adversarial import frozen

# scikit-learn, not torchmetrics, for these: torchmetrics' binary metrics read scores outside
# [0, 1] as logits and squash them with a sigmoid, which flattens residual sums of hundreds into
# ties (AUROC 0.5 whatever the model).


def auroc(scores: torch.Tensor, is_anomaly) -> float:
    """Area under the ROC curve, anomalous = positive, on raw scores."""
    return float(roc_auc_score(np.asarray(is_anomaly, dtype=bool), np.asarray(scores, dtype=np.float64)))


def _residuals(x, reconstruction, x_features, reconstruction_features, feature_weight):
    pixels = (x - reconstruction).abs().flatten(1).sum(1)
    features = (x_features - reconstruction_features).abs().flatten(1).sum(1)
    return (1 - feature_weight) * pixels + feature_weight * features


def anogan_scores(model, images: torch.Tensor, *, steps: int, lr: float, feature_weight: float,
                  seed: int = 0, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, reconstructions) for ``images`` (N, 1, H, W in [-1, 1]) after ``steps`` Adam
    steps on each image's own z. The networks stay frozen and in eval mode."""
    G, D = model.generator.eval(), model.discriminator.eval()
    device = next(G.parameters()).device
    draw = torch.Generator().manual_seed(seed)
    scores, reconstructions = [], []
    with frozen(G, D):  # gradients for z only: none computed (or left behind) for the weights
        for x in images.split(chunk):
            z = torch.randn(len(x), model.z_dim, generator=draw).to(device)
            score, reconstruction = _search(G, D, x.to(device), z, steps, lr, feature_weight)
            scores.append(score.cpu())
            reconstructions.append(reconstruction.cpu())
    return torch.cat(scores), torch.cat(reconstructions)


def _search(G, D, x, z, steps, lr, feature_weight):
    """Adam on z (one per image) for ``steps``; the images' scores and reconstructions at the end."""
    z = z.requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    with torch.no_grad():
        _, x_features = D.features(x)
    for _ in range(steps):
        reconstruction = G(z)
        _, features = D.features(reconstruction)
        # Summed over the chunk: each z only affects its own image's term.
        loss = _residuals(x, reconstruction, x_features, features, feature_weight).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        reconstruction = G(z)
        _, features = D.features(reconstruction)
        return _residuals(x, reconstruction, x_features, features, feature_weight), reconstruction


@torch.no_grad()
def efficientgan_scores(model, images: torch.Tensor, *, feature_weight: float,
                        chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, reconstructions) with z = E(x): one pass, no search."""
    model.eval()
    device = next(model.parameters()).device
    scores, reconstructions = [], []
    for x in images.split(chunk):
        x = x.to(device)
        z = model.encoder(x)
        reconstruction = model.generator(z)
        _, x_features = model.discriminator.features(x, z)
        _, features = model.discriminator.features(reconstruction, z)
        scores.append(_residuals(x, reconstruction, x_features, features, feature_weight).cpu())
        reconstructions.append(reconstruction.cpu())
    return torch.cat(scores), torch.cat(reconstructions)


def mean_image_scores(train_normals: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """The trivial detector: L1 distance to the mean normal training image."""
    mean = train_normals.mean(0, keepdim=True)
    return (images - mean).abs().flatten(1).sum(1)


def pick_threshold(scores: torch.Tensor, is_anomaly: torch.Tensor) -> float:
    """The score threshold that maximises (detection rate - false-alarm rate) (Youden's J);
    picked on validation data, then applied unchanged to the test split and in serving."""
    fpr, tpr, thresholds = roc_curve(np.asarray(is_anomaly, dtype=bool), np.asarray(scores, dtype=np.float64))
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], float(scores.max())))  # roc_curve's first threshold is +inf


def metrics(scores: torch.Tensor, digits: np.ndarray, normal: list[int], threshold: float) -> dict[str, float]:
    """AUROC and average precision (anomalous = positive), false-alarm and detection rates at
    ``threshold``, and per-digit AUROC and detection rate of each anomalous digit vs the normals."""
    digits = np.asarray(digits)
    is_anomaly = ~np.isin(digits, normal)
    scores = np.asarray(scores, dtype=np.float64)
    flagged = scores >= threshold
    result = {"auroc": auroc(scores, is_anomaly),
              "average_precision": float(average_precision_score(is_anomaly, scores)),
              "detection_rate": float(flagged[is_anomaly].mean()),
              "false_alarm_rate": float(flagged[~is_anomaly].mean())}
    anomalous = sorted(set(digits.tolist()) - set(normal))
    keys = metric_key_map(anomalous)  # labels may come from folder names: keep the keys valid
    for digit in anomalous:
        mine = digits == digit
        pair = mine | ~is_anomaly
        result[f"auroc_digit_{keys[digit]}"] = auroc(scores[pair], mine[pair])
        result[f"detected_digit_{keys[digit]}"] = float(flagged[mine].mean())
    return result
