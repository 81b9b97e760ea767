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

from zooflow import progress
from zooflow.evaluation.keys import metric_key_map
from zooflow.training.gan_steps import frozen

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
    with (torch.enable_grad(),  # the search needs gradients even when scoring runs under no_grad (validation)
          frozen(G, D),  # gradients for z only: none computed (or left behind) for the weights
          progress.phase(f"AnoGAN latent search ({len(images):,} images x {steps} steps)", len(images) * steps,
                         "image-steps") as shown):
        for x in images.split(chunk):
            z = torch.randn(len(x), model.z_dim, generator=draw).to(device)
            score, reconstruction = _search(G, D, x.to(device), z, steps, lr, feature_weight,
                                            on_step=lambda: shown.advance(len(x)))
            scores.append(score.cpu())
            reconstructions.append(reconstruction.cpu())
    return torch.cat(scores), torch.cat(reconstructions)


def _search(G, D, x, z, steps, lr, feature_weight, on_step=lambda: None):
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
        on_step()
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


PCA_COMPONENTS = 8


def pca_scorer(train_normals: torch.Tensor, components: int = PCA_COMPONENTS, norm: str = "l2"):
    """The classical detector: PCA fitted on the normal training images (flattened, the space
    ``mean_image_scores`` works in); a function scoring images by their reconstruction error from
    the ``components`` principal directions (``norm`` "l2": Euclidean, "l1": summed absolute).
    L2 is the default: on the demo digits (normal 7 and 8) it scores the higher AUROC, 0.817 vs
    0.808 for L1 on the test split (0.846 vs 0.830 on validation); the mean image scores 0.662."""
    from sklearn.decomposition import PCA

    if norm not in ("l1", "l2"):
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    # "full" SVD: exact and deterministic (the randomized solver would make the baseline a draw)
    pca = PCA(n_components=components, svd_solver="full").fit(train_normals.flatten(1).double().numpy())

    def scores(images: torch.Tensor) -> torch.Tensor:
        flat = images.flatten(1).double().numpy()
        residual = flat - pca.inverse_transform(pca.transform(flat))
        error = np.abs(residual).sum(1) if norm == "l1" else np.sqrt((residual ** 2).sum(1))
        return torch.from_numpy(error).float()

    return scores


def pick_threshold(scores: torch.Tensor, is_anomaly: torch.Tensor) -> float:
    """The score threshold that maximises (detection rate - false-alarm rate) (Youden's J);
    picked on validation data, then applied unchanged to the test split and in serving."""
    fpr, tpr, thresholds = roc_curve(np.asarray(is_anomaly, dtype=bool), np.asarray(scores, dtype=np.float64))
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], float(scores.max())))  # roc_curve's first threshold is +inf


def metrics(scores: torch.Tensor, digits: np.ndarray, normal: list[int], threshold: float,
            classes: list[str] | None = None) -> dict[str, float]:
    """AUROC and average precision (anomalous = positive), false-alarm and detection rates at
    ``threshold``, and per class the AUROC of that anomalous class vs the normals and its
    detection rate: ``auroc_class_<name>`` / ``detected_class_<name>``, ``name`` being
    ``classes[label]`` (the data's class names; the label id itself without them)."""
    digits = np.asarray(digits)
    is_anomaly = ~np.isin(digits, normal)
    scores = np.asarray(scores, dtype=np.float64)
    flagged = scores >= threshold
    result = {"auroc": auroc(scores, is_anomaly),
              "average_precision": float(average_precision_score(is_anomaly, scores)),
              "detection_rate": float(flagged[is_anomaly].mean()),
              "false_alarm_rate": float(flagged[~is_anomaly].mean())}
    anomalous = sorted(set(digits.tolist()) - set(normal))
    names = {label: classes[label] if classes is not None else str(label) for label in anomalous}
    keys = metric_key_map(names.values())  # names come from the user's classes.txt: keep the keys valid
    for label in anomalous:
        mine = digits == label
        pair = mine | ~is_anomaly
        result[f"auroc_class_{keys[names[label]]}"] = auroc(scores[pair], mine[pair])
        result[f"detected_class_{keys[names[label]]}"] = float(flagged[mine].mean())
    return result
