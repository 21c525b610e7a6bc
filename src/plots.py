"""Pictures of an evaluation (get_evaluation.py --plots), written next to its JSON:

- `{eval_name}_beta.png`: seen, unseen and HM on `val` against the calibration beta, for the
  stage-1 model and its reported mode, with the search grid's points and beta* marked;
- `{eval_name}_tsne.png`: t-SNE of the stage-2 model's test embeddings, samples and class
  embeddings, seen and unseen apart (models with `eval_embeddings`; others are skipped with a
  log line).

Both are drawn from the evaluation itself (`src.two_stage.Evaluation`: its models and splits),
the β picture over the model's own calibration grid.
"""
import logging
from pathlib import Path
from typing import List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .evaluate import BETA_GRID, beta_grid, gzsl_scores, split_distances, zscore  # noqa: E402
from .io_utils import atomic_path  # noqa: E402
from .models import get_entry  # noqa: E402
from .two_stage import Evaluation  # noqa: E402

log = logging.getLogger("avgzsl")
SEEN_COLOR, UNSEEN_COLOR = "tab:blue", "tab:orange"


def save_png(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def beta_curve(dist: torch.Tensor, labels: torch.Tensor, seen_mask: torch.Tensor, beta_star: float,
               path: Path, title: str = "", grid: torch.Tensor = BETA_GRID) -> Path:
    """Seen / unseen / HM against beta over the span of the search `grid` (a fine curve; the grid's
    points as dots), beta* marked."""
    lo, hi = float(grid[0]), float(grid[-1])
    fine = torch.linspace(lo, hi, 8 * (len(grid) - 1) + 1)
    s = {k: v.cpu().numpy() for k, v in gzsl_scores(dist, labels, seen_mask, fine.to(dist.device)).items() if k != "recall"}
    g = {k: v.cpu().numpy() for k, v in gzsl_scores(dist, labels, seen_mask, grid.to(dist.device)).items() if k != "recall"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, color, name in (("seen", SEEN_COLOR, "seen"), ("unseen", UNSEEN_COLOR, "unseen"), ("hm", "tab:green", "HM")):
        ax.plot(fine.numpy(), 100 * s[key], color=color, label=name)
        ax.plot(grid.numpy(), 100 * g[key], "o", color=color, markersize=3)
    best = int(np.argmax(g["hm"]))
    ax.axvline(beta_star, color="k", linestyle="--", linewidth=1, label=f"β* = {beta_star:.3f}")
    ax.plot([float(grid[best])], [100 * g["hm"][best]], "*", color="tab:green", markersize=12,
            markeredgecolor="k", label=f"best HM on val ({100 * g['hm'][best]:.2f})")
    ax.set_xlabel("calibration β (added to the seen classes' distances)")
    ax.set_ylabel("mean per-class recall on val (%)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title, fontsize=9)
    return save_png(fig, path)


def tsne_plot(samples: torch.Tensor, sample_labels: torch.Tensor, classes: torch.Tensor, seen_mask: torch.Tensor,
              path: Path, class_names: Optional[List[str]] = None, title: str = "", seed: int = 0) -> Path:
    """t-SNE of samples [N, d] (labels [N] = class rows) together with class embeddings [C, d]."""
    from sklearn.manifold import TSNE

    points = torch.cat((samples, classes)).float().cpu().numpy()
    n = len(samples)
    perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    seen_of_sample = seen_mask.cpu()[sample_labels.cpu()].numpy()
    seen = seen_mask.cpu().numpy()
    fig, ax = plt.subplots(figsize=(7, 6))
    for mask, color, name in ((seen_of_sample, SEEN_COLOR, "seen samples"), (~seen_of_sample, UNSEEN_COLOR, "unseen samples")):
        ax.scatter(xy[:n][mask, 0], xy[:n][mask, 1], s=6, alpha=0.45, color=color, label=name, linewidths=0)
    for mask, color, name in ((seen, SEEN_COLOR, "seen classes"), (~seen, UNSEEN_COLOR, "unseen classes")):
        ax.scatter(xy[n:][mask, 0], xy[n:][mask, 1], s=140, marker="*", color=color, edgecolors="k",
                   linewidths=0.7, label=name)
    if class_names is not None and len(class_names) <= 40:
        for (x, y), name in zip(xy[n:], class_names):
            ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, loc="best", markerscale=1.0)
    ax.set_title(title, fontsize=9)
    return save_png(fig, path)


def save_evaluation_plots(eval_args, evaluation: Evaluation, max_points: int = 2000) -> List[Path]:
    """Both pictures of a get_evaluation.py evaluation; returns the paths written."""
    result, val, test = evaluation.result, evaluation.val, evaluation.test
    squared, z_score = evaluation.squared, evaluation.z_score
    out_dir, name = Path(eval_args.load_path_stage_B), eval_args.eval_name
    label = f"{get_entry(result['model']).class_name} on {result['dataset']} ({Path(str(evaluation.args.feature_extraction_method)).name})"
    written = []

    model_a = evaluation.model_a
    grid = beta_grid(*model_a.calibration)
    dist = split_distances(model_a, val, squared, z_score)[model_a.reported_mode]
    written.append(beta_curve(dist, val.labels, val.seen_mask, result["beta"], out_dir / f"{name}_beta.png",
                              f"{label}: stage-1 model (epoch {result['epoch']}) on val", grid))

    model_b = evaluation.model_b
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:max_points].sort().values.to(
        test.labels.device)
    a, v, t = test.audio[idx], test.video[idx], test.text
    if z_score:       # the statistics of the whole split, as in evaluation
        a = (a - test.audio.mean()) / test.audio.std()
        v = (v - test.video.mean()) / test.video.std()
        t = zscore(t)
    try:
        samples, classes = model_b.eval_embeddings(a, v, t)
    except NotImplementedError as err:
        log.info("no t-SNE picture: %s", err)
        return written
    names = [test.class_names[c] for c in test.class_ids.tolist()]
    written.append(tsne_plot(samples, test.labels[idx], classes, test.seen_mask, out_dir / f"{name}_tsne.png", names,
                             f"{label}: t-SNE of the stage-2 test embeddings (GZSL {100 * result['hm']:.2f})"))
    return written
