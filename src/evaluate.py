"""GZSL evaluation with calibrated stacking (docs/protocol.md section 4), as tensor functions.

Everything works on a distance matrix `dist [N, C]` of N samples to the C classes of a split,
`labels [N]` (the true class's column) and `seen_mask [C]`. `beta=None` searches the grid
`torch.linspace(0, 3, 16)` (float32); any float, 0.0 included, is a fixed beta. All in
float32 on the distances' device, vectorised over samples, classes and betas.

A leaf: it imports nothing from the project (the two-stage evaluation is src/two_stage.py).
"""
from typing import Dict, Optional

import numpy as np
import torch
from torch import Tensor

BETA_GRID = torch.linspace(0, 3, 16)            # float32: "0.2" is 0.20000000298... (the default grid)
EPS = float(np.finfo(float).eps)                # float64 machine eps, as the original
MODES = ("audio", "video", "both")


def per_class_recall(pred: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """[..., C] float32 recall of each class; pred [..., N] and labels [N] hold column indices."""
    correct = (pred == labels).to(torch.float32)                                   # [..., N]
    hits = torch.zeros(*pred.shape[:-1], num_classes, device=pred.device).index_add_(-1, labels, correct)
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float32)       # [C]
    return hits / counts


def harmonic_mean(seen: Tensor, unseen: Tensor) -> Tensor:
    return 2 * seen * unseen / (seen + unseen + EPS)


def gzsl_scores(dist: Tensor, labels: Tensor, seen_mask: Tensor, betas: Tensor,
                max_elements: int = 1 << 25) -> Dict[str, Tensor]:
    """seen, unseen, hm [B] and recall [B, C] for each calibration beta in `betas` [B]."""
    n, c = dist.shape
    seen_f = seen_mask.to(dist.dtype)
    chunk = max(1, max_elements // max(1, n * c))
    recalls = []
    for i in range(0, len(betas), chunk):
        b = betas[i:i + chunk].to(dist)
        # argmin keeps the first minimum: ties go to the lowest class index
        pred = (dist.unsqueeze(0) + b[:, None, None] * seen_f).argmin(dim=-1)      # [b, N]
        recalls.append(per_class_recall(pred, labels, c))
    recall = torch.cat(recalls)                                                   # [B, C]
    seen = recall[:, seen_mask].mean(dim=1)
    unseen = recall[:, ~seen_mask].mean(dim=1) if (~seen_mask).any() else torch.zeros_like(seen)
    return {"seen": seen, "unseen": unseen, "hm": harmonic_mean(seen, unseen), "recall": recall}


def zsl_score(dist: Tensor, labels: Tensor, seen_mask: Tensor) -> Tensor:
    """Mean recall over the unseen classes, predicting among the unseen classes only."""
    unseen_cols = (~seen_mask).nonzero().squeeze(1)
    if unseen_cols.numel() == 0:
        return torch.zeros((), device=dist.device)
    is_unseen = ~seen_mask[labels]
    pred = dist[is_unseen][:, unseen_cols].argmin(dim=1)
    recall = per_class_recall(unseen_cols[pred], labels[is_unseen], len(seen_mask))
    return recall[unseen_cols].mean()


def beta_grid(start: float, stop: float, steps: int) -> Tensor:
    """A method's calibration grid, `torch.linspace(start, stop, steps)` in float32 (its published
    protocol: (0, 3, 16) for most, ClipClap's (0, 5, 76))."""
    return torch.linspace(start, stop, steps)


def evaluate_distances(dist: Tensor, labels: Tensor, seen_mask: Tensor,
                       beta: Optional[float] = None, zsl_dist: Optional[Tensor] = None,
                       grid: Optional[Tensor] = None) -> dict:
    """Seen, unseen, HM, ZSL (floats), the beta used, and the per-class recall at that beta.

    beta None: the first beta of `grid` (default BETA_GRID) that reaches the highest HM. ZSL from
    `zsl_dist` when given (a model with its own ZSL scores), else from `dist`.
    """
    betas = (BETA_GRID if grid is None else grid) if beta is None else torch.tensor([beta], dtype=torch.float32)
    s = gzsl_scores(dist, labels, seen_mask, betas.to(dist.device))
    best = int(torch.argmax(s["hm"]))          # first maximum: ties go to the smaller beta
    return {"seen": float(s["seen"][best]), "unseen": float(s["unseen"][best]),
            "hm": float(s["hm"][best]),
            "zsl": float(zsl_score(dist if zsl_dist is None else zsl_dist, labels, seen_mask)),
            "beta": float(betas[best]), "recall": s["recall"][best].cpu()}


def zscore(x: Tensor) -> Tensor:
    """Standardise by the global mean and unbiased std over all elements (--z_score_inputs)."""
    return (x - x.mean()) / x.std()


@torch.no_grad()
def split_distances(model, split, squared: bool = False, z_score: bool = False) -> Dict[str, Tensor]:
    """{mode: [N, C]} (and "zsl", a model's own ZSL distances, if it has them) of a model on a SplitData,
    in eval mode (its mode restored after), over `model.eval_chunk` samples a call (None: all at once)."""
    was_training = model.training
    model.eval()
    audio, video, text = split.audio, split.video, split.text
    if z_score:
        audio, video, text = zscore(audio), zscore(video), zscore(text)
    chunk = model.eval_chunk or len(audio)
    parts = [model.eval_distances(audio[i:i + chunk], video[i:i + chunk], text, squared)
             for i in range(0, len(audio), chunk)]
    model.train(was_training)
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def evaluate_model(model, split, squared: bool = False, beta: Optional[float] = None,
                   z_score: bool = False) -> Dict[str, dict]:
    """{mode: evaluate_distances(...)} of a model on a SplitData (`split_distances`), over the
    model's calibration grid (`model.calibration`, (start, stop, steps), if it has one)."""
    dist = split_distances(model, split, squared, z_score)
    zsl_dist = dist.pop("zsl", None)          # a model's own ZSL distances, if any
    grid = beta_grid(*model.calibration) if getattr(model, "calibration", None) else None
    return {mode: evaluate_distances(d, split.labels, split.seen_mask, beta, zsl_dist, grid) for mode, d in dist.items()}


def combined_beta(results: Dict[str, dict]) -> float:
    """beta* = mean of the best betas of the audio, video and both modes (float64 -> float32); a
    model with one mode (the original evaluated it three times, alike) gives its own beta."""
    betas = np.array([results[m]["beta"] for m in MODES if m in results], dtype=np.float64)
    return float(np.float32(betas.mean()))


def format_line(result: dict) -> str:
    """The original's line (parsers depend on it)."""
    return (f"Seen performance={100 * result['seen']:.2f}, Unseen performance={100 * result['unseen']:.2f}, "
            f"GZSL performance={100 * result['hm']:.2f}, ZSL performance={100 * result['zsl']:.2f}")
