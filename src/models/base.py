"""The interface every model answers; the trainer and the evaluator know nothing else.

A model is a `GZSLModel` built from keyword arguments only (`Model(*, input_size_audio, ...)`;
its registry builder reads them off the argparse Namespace). It answers:

- `training_step(batch) -> (loss, parts)`: of a batch its `Batches` builds (a `PairBatch` by
  default), the scalar loss to back-propagate and its named parts as detached scalars for the
  logs (`loss_and_parts(parts)` builds both when the loss is the sum of its parts).
- `after_optimizer_step(batch)`: a hook run after each optimiser step (default: nothing).
- `configure_optimizers(lr, lr_scheduler) -> (optimizer, scheduler or None)`: default Adam(lr)
  over `optimizer_parameters()` (all parameters by default) and, with `lr_scheduler`,
  ReduceLROnPlateau(mode="max", patience=3), which the trainer steps on the val score.
- `trainable`: whether it has anything to optimise (default: a parameter that requires a
  gradient). A model with nothing (the frozen CLIP/CLAP row) gets no optimiser and no training
  step: the trainer validates it once, as its epoch 1 (src/train.py).
- `calibration`: the calibration (beta) grid of its published protocol as (start, stop, steps)
  of `torch.linspace` (default (0, 3, 16); ClipClap (0, 5, 76)); the evaluator reads it.
- `eval_chunk`: how many samples one `eval_distances` call gets (default 8192); None hands it the
  whole split at once, for distances that depend on the whole split (HSP-MoE's FAR).
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
- `fit_classifier`: the trainer's fit of a classifier a model trains at evaluation time
  (f-VAEGAN-D2's softmax classifiers), `src.steps.fit_classifier`, set on the model by
  `src.steps.build_model`, which training and evaluation build with; None until then. The
  model defines the classifier (its parameters, loss and optimiser), the fit runs the loop.
- its batches: the registry entry's `batches` (a `Batches`: how a training batch and a
  validation-loss batch are built from a split; default `PAIRS`, the `PairBatch` below; TCaF's
  token sequences and ClipClap's vectors are built in their own files). The trainer
  (`src/steps.py`) owns the epoch, the validation loss and the optimiser step; a model with its
  own epoch (f-VAEGAN-D2's critic loop) registers an `epoch_fn(EpochInputs) -> stats`, which runs
  its steps through `EpochInputs.steps`, and a `val_loss_fn(model, val) -> float`.
- optionally `eval_embeddings(audio, video, text) -> (samples [N, d], classes [C, d])`: the
  embeddings behind the reported distances (get_evaluation.py --plots draws their t-SNE).
- `complete_state_dict(state) -> state`: a checkpoint's state_dict completed to this model's key
  set before it is checked and loaded (default: as it is; TCaF: its embedding's two names).
"""
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from .dropout import set_fast_masks
from .sam import SAM

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


def pair_batch(split, pos: Tensor, neg: Tensor, z_score: bool = False) -> PairBatch:
    """Gather a PairBatch of `split` (on its device) for index tensors pos [B], neg [B]."""
    batch = PairBatch(audio=split.audio[pos], video=split.video[pos], text=split.text[split.labels[pos]],
                      label=split.labels[pos], audio_neg=split.audio[neg], video_neg=split.video[neg],
                      text_neg=split.text[split.labels[neg]], label_neg=split.labels[neg],
                      class_text=split.text, class_ids=split.class_ids)
    if z_score:        # the batch's tensors, each by its own statistics (evaluate.zscore's formula); not
        # the class matrix of the losses
        batch = batch.map(lambda name, t: t if name in ("label", "label_neg", "class_ids", "class_text")
                          else (t - t.mean()) / t.std())
    return batch


@dataclass(frozen=True)
class Batches:
    """How a model's batches are built from a split (its registry entry's `batches`): the trainer's
    epoch and validation loss, the benchmark and the registry tests build them with nothing else.

    - `train(model, split, pos [B], neg [B], z_score, generator, lengths) -> batch`: a training batch
      of the class-balanced sampler's draw (B positives and a negative of another class for each);
      `generator` is the sampler's, for the random choices a builder makes (TCaF's cuts), so that
      --resume repeats them; `lengths`: the batch's padded lengths from `lengths` below (None for
      batches without them, which ignore it).
    - `val(model, split, idx [b], neg [b], z_score) -> batch`: a batch of the validation loss (every
      val sample once, each with a negative fixed for the run), over chunks of `val_chunk(model)`
      samples; `val_sum`: the dtype the chunks' losses are summed in.
    - `lengths(model, split, pos [n, B]) -> [n, k] long tensor, or None`: optional, for batches
      padded to their own longest sequence (TCaF's): the padded lengths of the epoch's n batches,
      computed on the device. The epoch reads them in one transfer and hands batch i's to `train`
      as `lengths=` (k ints, or None), so that building it asks nothing of the host (`src.steps.train_epoch`).
    """
    train: Callable
    val: Callable
    val_chunk: Callable[["GZSLModel"], int]
    val_sum: torch.dtype = torch.float64
    lengths: Optional[Callable] = None


def _pairs(model, split, idx: Tensor, neg: Tensor, z_score: bool = False, generator=None, lengths=None) -> PairBatch:
    return pair_batch(split, idx, neg, z_score)         # averaged rows: no lengths


PAIRS = Batches(train=_pairs, val=_pairs, val_chunk=lambda model: 4096)     # the default: AVCA and the baselines


@dataclass
class EpochInputs:
    """What one training epoch gets from the trainer (`src.steps.train_epoch`, or the `epoch_fn`
    of a model's registry entry, e.g. f-VAEGAN-D2's): the model, its optimiser, the splits, the
    class-balanced sampler, the epoch (0-based) of `epochs`, `n_batches` batches of `bs`, whether
    the inputs are z-scored, the stage (`retrain_all`: stage 2), `reproduce_original`,
    `val_metrics(dist [N_val, C_val]) -> evaluate_distances(...)` on the val split, the model's
    `batches`, and `steps(key, loss_fn, optimizer, compilable=True)`: the trainer's optimiser step of
    `loss_fn(batch) -> (loss, parts)` as the run's options make it (eager, SAM, --compile, --amp,
    --cuda_graph), one per key for the run (`src.steps.Steps`).
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
    steps: Callable
    batches: Batches = PAIRS


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
    eval_chunk: Optional[int] = 8192     # samples per eval_distances call; None: the whole split at once
    fit_classifier: Optional[Callable] = None     # the trainer's fit of an evaluation-time classifier (docstring)

    @property
    def trainable(self) -> bool:
        """Whether it has anything to optimise: a parameter that requires a gradient."""
        return any(p.requires_grad for p in self.parameters())

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
    """docs/protocol.md section 3: PyTorch defaults besides mode='max', patience=3. On SAM's base
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
