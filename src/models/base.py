"""The interface every model answers; the trainer and the evaluator know nothing else.

A model is a `GZSLModel` built from keyword arguments only (`Model(*, input_size_audio, ...)`;
its registry builder reads them off the argparse Namespace). It answers:

- `training_step(batch: PairBatch) -> (loss, parts)`: the scalar loss to back-propagate and its
  named parts as detached scalars for the logs (`loss_and_parts(parts)` builds both when the loss
  is the sum of its parts).
- `after_optimizer_step(batch)`: a hook run after each optimiser step (default: nothing).
- `configure_optimizers(lr, lr_scheduler) -> (optimizer, scheduler or None)`: default Adam(lr)
  over `optimizer_parameters()` (all parameters by default) and, with `lr_scheduler`,
  ReduceLROnPlateau(mode="max", patience=3), which the trainer steps on the val score.
- `calibration`: the calibration (beta) grid of its published protocol as (start, stop, steps)
  of `torch.linspace` (default (0, 3, 16); ClipClap (0, 5, 76)); the evaluator reads it.
- `modes`: the keys `eval_distances` returns (default `("both",)`: one distance; AVGZSLNet and
  CJME have `("audio", "video", "both")`), and `reported_mode`, the one the paper reports (the
  epoch score and get_evaluation's line; default "both").
- `eval_distances(audio [N, D_a], video [N, D_v], text [C, 300], squared) -> {mode: [N, C]}`:
  distances of N samples to the C classes whose word vectors are `text`, one entry per mode in
  `modes`; optionally also `zsl`: the distances ZSL is computed from (f-VAEGAN-D2's own ZSL
  classifier), else the mode's own. Called in eval mode.
- `adopt_stage_1_choices(stage_1_model)`: what stage 1 chose on val besides the epoch and beta,
  taken over by the stage-2 model before the test (default: nothing).
- `evaluation_needs_split() -> split name or None`: a model whose evaluation needs data beyond
  its weights (f-VAEGAN-D2: its training split's real features) names the split, and is given
  it with `attach_training_data(split)` before `eval_distances` (default: None).
- a model with its own epochs (f-VAEGAN-D2) registers an `epoch_fn(EpochInputs) -> stats` and a
  `val_loss_fn(model, val) -> float` with its builder (`src/models/registry.py`).
- optionally `eval_embeddings(audio, video, text) -> (samples [N, d], classes [C, d])`: the
  embeddings behind the reported distances (get_evaluation.py --plots draws their t-SNE).
- `complete_state_dict(state) -> state`: a checkpoint's state_dict completed to this model's key
  set before it is checked and loaded (default: as it is; TCaF: its embedding's two names).
"""
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

import math

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..errors import UserError
from .dropout import set_fast_masks
from .sam import SAM, enable_running_stats, sam_step

if TYPE_CHECKING:                    # annotations only: the model files sit below data and sampler
    from ..data import SplitData
    from ..sampler import PairSampler


@dataclass
class PairBatch:
    """B positive samples and their negatives (a sample of another class).

    audio [B, D_a], video [B, D_v], text [B, 300] (word vector of the sample's class),
    label [B] (position of the class in `class_ids`), `*_neg` the same for the negatives;
    class_text [C, 300] word vectors of the training classes, class_ids [C] global indices.
    """
    audio: Tensor
    video: Tensor
    text: Tensor
    label: Tensor
    audio_neg: Tensor
    video_neg: Tensor
    text_neg: Tensor
    label_neg: Tensor
    class_text: Tensor
    class_ids: Tensor

    def map(self, fn) -> "PairBatch":
        return PairBatch(**{f.name: fn(f.name, getattr(self, f.name)) for f in fields(self)})


@dataclass
class EpochInputs:
    """What one training epoch gets from the trainer (`src.train.pair_epoch`, or the `epoch_fn`
    of a model's registry entry, e.g. f-VAEGAN-D2's): the model, its optimiser, the splits, the
    class-balanced sampler, the epoch (0-based) of `epochs`, `n_batches` batches of `bs`, whether
    the inputs are z-scored, the stage (`retrain_all`: stage 2), `reproduce_original`, and
    `val_metrics(dist [N_val, C_val]) -> evaluate_distances(...)` on the val split.
    """
    model: "GZSLModel"
    optimizer: object
    train: "SplitData"
    val: "SplitData"
    sampler: "PairSampler"
    epoch: int
    epochs: int
    n_batches: int
    bs: int
    z_score: bool
    retrain_all: bool
    reproduce_original: bool
    val_metrics: Callable[[Tensor], dict]
    step_fn: Optional[Callable] = None       # model.training_step as run (compiled, autocast); None: as it is
    graph: Optional[Callable] = None         # --cuda_graph: a graphs.GraphedStep doing the whole step


def distance_matrix(x: Tensor, t: Tensor, squared: bool = False) -> Tensor:
    """L2 distances [N, C] between sample embeddings x [N, d] and class embeddings t [C, d]."""
    d = torch.cdist(x, t, p=2)
    return d * d if squared else d


def loss_and_parts(parts: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
    """(the sum of the named losses, in their order; each of them detached, for the logs)."""
    return sum(parts.values()), {k: p.detach() for k, p in parts.items()}


class GZSLModel(nn.Module):
    modes: Tuple[str, ...] = ("both",)
    reported_mode: str = "both"
    calibration: Tuple[float, float, int] = (0.0, 3.0, 16)    # the beta grid, linspace(start, stop, steps)

    def training_step(self, batch: PairBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        raise NotImplementedError

    def after_optimizer_step(self, batch: PairBatch) -> None:
        pass

    def adopt_stage_1_choices(self, stage_1: "GZSLModel") -> None:
        pass

    def evaluation_needs_split(self) -> Optional[str]:
        return None

    def eval_distances(self, audio: Tensor, video: Tensor, text: Tensor,
                       squared: bool = False) -> Dict[str, Tensor]:
        raise NotImplementedError

    def eval_embeddings(self, audio: Tensor, video: Tensor, text: Tensor) -> Tuple[Tensor, Tensor]:
        """Sample embeddings [N, d] and class embeddings [C, d] of the reported mode (optional)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its embeddings")

    def complete_state_dict(self, state: dict) -> dict:
        """A checkpoint's state_dict in this model's own key set, for a model whose published
        checkpoints come in more than one form (default: as it is)."""
        return state

    def optimizer_parameters(self):
        return self.parameters()

    def configure_optimizers(self, lr: float, lr_scheduler: bool) -> Tuple[torch.optim.Optimizer, Optional[object]]:
        """Adam(lr), no weight decay; ReduceLROnPlateau(max, patience 3) with `lr_scheduler`."""
        opt = adam(self.optimizer_parameters(), lr=lr)
        return opt, (plateau(opt) if lr_scheduler else None)


FUSED_ADAM = True     # one fused kernel per step instead of a loop over parameters (results within rounding)


def set_fast_paths(on: bool) -> None:
    """The CPU fast paths on or off together: this module's fused Adam and the dropout masks of
    `dropout.py` (off: PyTorch's `bernoulli_` masks and Adam's loop over parameters, e.g. for a
    benchmark's before/after)."""
    global FUSED_ADAM
    FUSED_ADAM = bool(on)
    set_fast_masks(on)


def adam(params, **kwargs) -> torch.optim.Adam:
    """torch.optim.Adam(params, **kwargs), fused (CPU and CUDA float32) unless FUSED_ADAM is off or
    a parameter is of another kind; same state_dict either way (checkpoints and resume states load).
    `params`: tensors, or parameter groups (dicts with "params", as SAM hands its own)."""
    params = list(params)
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else (g,))]
    fused = FUSED_ADAM and all(p.dtype == torch.float32 and p.device.type in ("cpu", "cuda") for p in tensors
                               if isinstance(p, torch.Tensor))
    return torch.optim.Adam(params, fused=fused or None, **kwargs)


OPTIMIZERS = ("adam", "adam-sam")     # --optimizer; a model's registry entry lists the ones it takes


def adam_or_sam(optimizer: str, params, **kwargs) -> torch.optim.Optimizer:
    """`adam(params, **kwargs)`, or with "adam-sam" SAM around it (src/models/sam.py; rho 0.05)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer {optimizer!r}: expected one of {OPTIMIZERS}")
    return SAM(params, adam, **kwargs) if optimizer == "adam-sam" else adam(params, **kwargs)


def plateau(optimizer):
    """PROTOCOL.md section 3: PyTorch defaults besides mode='max', patience=3. On SAM's base
    optimiser (the original's; the same parameter groups)."""
    if isinstance(optimizer, SAM):
        optimizer = optimizer.base_optimizer
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=3)


def audio_video_distances(e_a: Tensor, e_v: Tensor, t_a: Tensor, t_v: Tensor,
                          squared: bool) -> Dict[str, Tensor]:
    """The three modes of AVGZSLNet: audio, video, and `both` = their sum."""
    d_a = distance_matrix(e_a, t_a, squared)
    d_v = distance_matrix(e_v, t_v, squared)
    return {"audio": d_a, "video": d_v, "both": d_a + d_v}


AMP_DTYPES = {"bf16": torch.bfloat16}


def step_function(model: "GZSLModel", compile: bool = False, amp: Optional[str] = None,
                  device_type: str = "cpu") -> Optional[Callable]:
    """model.training_step as the opt-in fast modes run it (None when neither is on): `compile`
    wraps it in torch.compile (forward and backward compiled; the optimiser step stays eager),
    `amp` ("bf16") runs it under torch.autocast on `device_type`. Both change the numbers."""
    if not compile and not amp:
        return None
    fn = torch.compile(model.training_step) if compile else model.training_step
    if not amp:
        return fn
    dtype = AMP_DTYPES[amp]

    def autocast_step(batch):
        with torch.autocast(device_type, dtype=dtype):
            loss, parts = fn(batch)
        return loss.float(), {k: v.float() for k, v in parts.items()}
    return autocast_step


def run_steps(inp: EpochInputs, make_batch: Callable[[int], object]) -> Dict[str, float]:
    """`inp.n_batches` optimiser steps, one on each `make_batch(step)`: training_step, backward,
    step, after_optimizer_step (with a `SAM` optimiser: `sam.sam_step`'s two passes); returns the
    mean loss and parts (SAM: of the first pass). A non-finite loss stops with a UserError (checked
    every 50 steps: one host sync)."""
    model, opt, n = inp.model, inp.optimizer, inp.n_batches
    training_step = inp.step_fn or model.training_step
    sam = isinstance(opt, SAM)
    sums: Dict[str, Tensor] = {}
    bar = tqdm(range(n), desc=f"epoch {inp.epoch + 1}/{inp.epochs}", leave=False, mininterval=1.0, disable=None)
    for step in bar:
        batch = make_batch(step)
        if inp.graph is not None:
            loss, parts = inp.graph(model, opt, training_step, batch)
        elif sam:
            loss, parts = sam_step(model, opt, training_step, batch)
        else:
            loss, parts = training_step(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.after_optimizer_step(batch)
        for k, v in {"loss": loss.detach(), **parts}.items():
            sums[k] = sums[k] + v if k in sums else v.clone()
        if (step + 1) % 50 == 0 or step + 1 == n:
            mean_loss = float(sums["loss"]) / (step + 1)
            if not math.isfinite(mean_loss):
                raise UserError(f"non-finite training loss at epoch {inp.epoch + 1}, step {step + 1}: try a "
                                f"lower --lr; the run folder keeps the last finished epoch")
            bar.set_postfix(loss=f"{mean_loss:.4f}")
    if sam:       # the last step's momenta back (they are 0 until the next step's start)
        enable_running_stats(model)
    return {k: float(v) / n for k, v in sums.items()}
