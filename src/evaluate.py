"""GZSL evaluation with calibrated stacking (PROTOCOL.md section 4), as tensor functions.

Everything works on a distance matrix `dist [N, C]` of N samples to the C classes of a split,
`labels [N]` (the true class's column) and `seen_mask [C]`. `beta=None` searches the grid
`torch.linspace(0, 3, 16)` (float32); any float, 0.0 included, is a fixed beta. All in
float32 on the distances' device, vectorised over samples, classes and betas.
"""
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from torch import Tensor

from .errors import UserError

BETA_GRID = torch.linspace(0, 3, 16)            # float32: "0.2" is 0.20000000298...
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


def evaluate_distances(dist: Tensor, labels: Tensor, seen_mask: Tensor,
                       beta: Optional[float] = None, zsl_dist: Optional[Tensor] = None) -> dict:
    """Seen, unseen, HM, ZSL (floats), the beta used, and the per-class recall at that beta.

    beta None: the first beta of BETA_GRID that reaches the highest HM. ZSL from `zsl_dist`
    when given (a model with its own ZSL scores), else from `dist`.
    """
    betas = BETA_GRID if beta is None else torch.tensor([beta], dtype=torch.float32)
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
def evaluate_model(model, split, squared: bool = False, beta: Optional[float] = None,
                   z_score: bool = False, chunk: int = 8192) -> Dict[str, dict]:
    """{mode: evaluate_distances(...)} of a model on a SplitData (model put in eval mode)."""
    was_training = model.training
    model.eval()
    audio, video, text = split.audio, split.video, split.text
    if z_score:
        audio, video, text = zscore(audio), zscore(video), zscore(text)
    parts = [model.eval_distances(audio[i:i + chunk], video[i:i + chunk], text, squared)
             for i in range(0, len(audio), chunk)]
    model.train(was_training)
    zsl_parts = [p.pop("zsl", None) for p in parts]          # a model's own ZSL distances, if any
    zsl_dist = None if zsl_parts[0] is None else torch.cat(zsl_parts)
    out, done = {}, {}
    for mode in parts[0]:
        dist = torch.cat([p[mode] for p in parts]) if len(parts) > 1 else parts[0][mode]
        key = tuple(id(p[mode]) for p in parts)
        if key not in done:          # a model that reports one embedding in every mode: once
            done[key] = evaluate_distances(dist, split.labels, split.seen_mask, beta, zsl_dist)
        out[mode] = done[key]
    return out


def combined_beta(results: Dict[str, dict]) -> float:
    """beta* = mean of the best betas of the audio, video and both modes (float64 -> float32)."""
    betas = np.array([results[m]["beta"] for m in MODES if m in results], dtype=np.float64)
    return float(np.float32(betas.mean()))


def format_line(result: dict) -> str:
    """The original's line (parsers depend on it)."""
    return (f"Seen performance={100 * result['seen']:.2f}, Unseen performance={100 * result['unseen']:.2f}, "
            f"GZSL performance={100 * result['hm']:.2f}, ZSL performance={100 * result['zsl']:.2f}")


# -- get_evaluation.py: the two-stage evaluation (PROTOCOL.md "get_evaluation.py") ------------

# args.pkl fields the evaluation reads (every original and project run has them)
NEEDED_FIELDS = ("root_dir", "feature_extraction_method", "input_size_audio", "input_size_video")


def run_setting(args) -> Dict[str, str]:
    """What a run was trained on and as, from its args.pkl: the values both stages must share."""
    from .args import default_zero_shot_split, resolve_model_name
    return {"--dataset_name": str(getattr(args, "dataset_name", None)),
            "--feature_extraction_method": Path(str(getattr(args, "feature_extraction_method", "main_features"))).name,
            "--zero_shot_split": getattr(args, "zero_shot_split", "") or default_zero_shot_split(args),
            "--input_size_audio": str(getattr(args, "input_size_audio", None)),
            "--input_size_video": str(getattr(args, "input_size_video", None)),
            "model": resolve_model_name(args) if not getattr(args, "model_name", None) else args.model_name,
            "--reproduce_original": str(bool(getattr(args, "reproduce_original", True))),
            "--distance_fn": str(getattr(args, "distance_fn", "L2Loss")),
            "--z_score_inputs": str(bool(getattr(args, "z_score_inputs", False)))}


def check_same_setting(args_a, path_a, args_b, path_b) -> None:
    """Refuse a stage-1 run trained on another dataset, feature family, split, model or pairing
    than the stage-2 run: its beta* and epoch would not belong to the stage-2 model."""
    a, b = run_setting(args_a), run_setting(args_b)
    diff = [f"{k} {a[k]} in {path_a} but {b[k]} in {path_b}" for k in a if a[k] != b[k]]
    if diff:
        raise UserError("the stage-A and stage-B runs were trained differently (" + "; ".join(diff) +
                        "): pass the stage-1 and stage-2 runs of the same setting")


def evaluate_runs(eval_args) -> dict:
    """Choose beta* with stage-1's best model on val; evaluate stage 2's same-epoch checkpoint
    on test. Returns the numbers; prints nothing."""
    import logging
    from .args import default_zero_shot_split, resolve_model_name
    from .models.registry import model_flags
    from .data import dataset_from_args
    from .models import create_model, get_entry
    from .runs import RunFolder, load_checkpoint, load_model_state
    from .train import resolve_device

    log = logging.getLogger("avgzsl")
    run_a, run_b = RunFolder(eval_args.load_path_stage_A), RunFolder(eval_args.load_path_stage_B)
    for run, flag in ((run_a, "--load_path_stage_A"), (run_b, "--load_path_stage_B")):
        if not run.path.is_dir():
            raise UserError(f"{flag} {run.path} does not exist")
    args = run_b.load_args()               # both models and datasets come from stage B's args
    if not getattr(args, "retrain_all", False):
        raise UserError(f"{run_b.args_path}: the stage-B run was not trained with --retrain_all; "
                        f"--load_path_stage_B must be the stage-2 run folder")
    missing = [k for k in NEEDED_FIELDS if not hasattr(args, k)]
    if missing:
        raise UserError(f"{run_b.args_path} lacks the fields {', '.join(missing)}: it is damaged or not a "
                        f"main.py run's; retrain stage 2 or restore the file")
    if run_a.args_path.is_file():          # the authors' released models may come without it
        check_same_setting(run_a.load_args(), run_a.args_path, args, run_b.args_path)
    original_run = not hasattr(args, "reproduce_original")      # written by the original code
    # the command line's model flag wins (as in the original); without one, the run's own model
    flag_given = any(getattr(eval_args, flag, False) for flag in model_flags())
    model_name = resolve_model_name(eval_args if flag_given else args)
    for k in ("dataset_name", "root_dir"):
        if getattr(eval_args, k) is not None:
            setattr(args, k, getattr(eval_args, k))
    if not getattr(args, "zero_shot_split", ""):          # the original's default was ""
        args.zero_shot_split = default_zero_shot_split(args)
    if not Path(args.root_dir).is_dir():
        raise UserError(f"the dataset folder {args.root_dir} of {run_b.args_path} does not exist here: "
                        f"pass --root_dir to where the dataset is now")
    reproduce = original_run or eval_args.reproduce_original or getattr(args, "reproduce_original", False)
    device = resolve_device(eval_args.device)
    squared = getattr(args, "distance_fn", "L2Loss") == "SquaredL2Loss"
    z_score = getattr(args, "z_score_inputs", False)

    dataset = dataset_from_args(args, pairing="original" if reproduce else "correct")
    val, test = dataset.split("val").to(device), dataset.split("test").to(device)
    entry = get_entry(model_name)

    path_a = run_a.find_best("score", entry.class_name)
    ckpt_a = load_checkpoint(path_a)
    try:
        epoch = int(ckpt_a["epoch"])
        assert epoch >= 1
    except (KeyError, TypeError, ValueError, AssertionError):
        raise UserError(f"{path_a} has no valid 'epoch' entry (got {ckpt_a.get('epoch')!r}): it is damaged; "
                        f"restore it or retrain stage 1") from None
    model_a = create_model(model_name, args).to(device)
    load_model_state(model_a, ckpt_a["model"], path_a)
    val_results = evaluate_model(model_a, val, squared, z_score=z_score)
    beta = combined_beta(val_results)
    log.info("Validation betas: %s", ", ".join(f"{m} {r['beta']:.4f}" for m, r in val_results.items()))
    log.info("Best beta combined: %.4f", beta)

    path_b = run_b.epoch_ckpt(entry.class_name, epoch - 1)
    if not path_b.is_file():
        raise UserError(f"{path_b} is missing: stage A chose epoch {epoch - 1} (0-based); train stage B "
                        f"with --save_checkpoints for at least {epoch} epochs")
    model_b = create_model(model_name, args).to(device)
    load_model_state(model_b, load_checkpoint(path_b)["model"], path_b)
    model_b.adopt_stage_1_choices(model_a)
    test_results = evaluate_model(model_b, test, squared, beta=beta, z_score=z_score)
    reported = test_results[model_b.reported_mode]
    names = [dataset.class_names[c] for c in test.class_ids.tolist()]
    return {"model": model_name, "dataset": args.dataset_name, "mode": model_b.reported_mode,
            "seen": reported["seen"], "unseen": reported["unseen"], "hm": reported["hm"], "zsl": reported["zsl"],
            "beta": beta, "epoch": epoch, "val_betas": {m: r["beta"] for m, r in val_results.items()},
            "pairing": "original" if reproduce else "correct",
            "modes": {m: {k: r[k] for k in ("seen", "unseen", "hm", "zsl")} for m, r in test_results.items()},
            "per_class_recall": {n: float(x) for n, x in zip(names, reported["recall"])},
            "seen_classes": [n for n, s in zip(names, test.seen_mask.tolist()) if s],
            "stage_A": str(path_a), "stage_B": str(path_b)}
