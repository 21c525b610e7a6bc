"""The trainer's step and epoch: one optimiser step however it runs, the epoch of class-balanced
batches, and the validation loss, for every model (docs/protocol.md section 3).

A model says how its batches are built (`models.base.Batches`, on its registry entry) and what
its loss is (`training_step`); everything here is the same for every model:

- `Step`: one optimiser step of a loss function on a batch: the loss, `zero_grad`, backward,
  the optimiser's step, the model's `after_optimizer_step`. With a `SAM` optimiser its two passes
  (`sam_step`); the opt-in fast modes wrap the same body: `--compile` (torch.compile of the loss
  function: forward and backward), `--amp bf16` (the loss under autocast), `--cuda_graph` (the
  whole step captured as a CUDA graph, one per batch shape, and replayed, `GraphedStep`). `Steps`
  makes one `Step` per key with the run's options and keeps it for the run (compiled code,
  captured graphs).
- `train_epoch`: `n_batches` class-balanced batches of `bs`, one step each (`run_steps`); batches
  padded to their own longest sequence (TCaF's) get their lengths, read for the whole epoch in one
  transfer (`epoch_lengths`), so that no step waits on the host.
- `validation_loss`: the training loss in eval mode over every val sample once.
- `fit_classifier`: a classifier a model trains at evaluation time (f-VAEGAN-D2's softmax
  classifiers), fitted by eager `Step`s of its loss; the model defines it and is handed this
  function (`GZSLModel.fit_classifier`) by `build_model`, which trainer and evaluation build with.

A model with its own epoch (f-VAEGAN-D2's critic loop) runs its steps through
`EpochInputs.steps` and so takes the same options.
"""
import math
from dataclasses import fields, is_dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from tqdm import tqdm

from .errors import UserError
from .models import create_model
from .models.base import Batches, EpochInputs, GZSLModel
from .models.sam import SAM, disable_running_stats, enable_running_stats

AMP_DTYPES = {"bf16": torch.bfloat16}
WARMUP = 3          # --cuda_graph: eager steps before the first capture
GRAPHS = 16         # --cuda_graph: the most graphs kept, one per batch shape (TCaF: per padded length)

LossFn = Callable[[object], Tuple[Tensor, Dict[str, Tensor]]]


def fast_loss(loss_fn: LossFn, compile: bool = False, amp: Optional[str] = None, device_type: str = "cpu") -> LossFn:
    """`loss_fn` as the opt-in fast modes run it: `compile` wraps it in torch.compile (forward and
    backward compiled; the optimiser step stays eager), `amp` ("bf16") runs it under torch.autocast
    on `device_type` (the loss and its parts back in float32). Both change the numbers."""
    fn = torch.compile(loss_fn) if compile else loss_fn
    if not amp:
        return fn
    dtype = AMP_DTYPES[amp]

    def autocast_loss(batch):
        with torch.autocast(device_type, dtype=dtype):
            loss, parts = fn(batch)
        return loss.float(), {k: v.float() for k, v in parts.items()}
    return autocast_loss


def sam_step(model, optimizer: SAM, loss_fn: LossFn, batch) -> Tuple[Tensor, Dict[str, Tensor]]:
    """One SAM step on `batch` (src/models/sam.py's docstring); returns the first pass's loss and parts.

    The momenta stay 0 until the next step's start, so the model's `after_optimizer_step` (TCaF's
    and ClipClap's extra train-mode get_embeddings pass) does not move the running statistics
    either [published behaviour]."""
    enable_running_stats(model)
    loss, parts = loss_fn(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.first_step(zero_grad=True)
    disable_running_stats(model)
    loss_fn(batch)[0].backward()
    optimizer.second_step(zero_grad=True)
    model.after_optimizer_step(batch)
    return loss, parts


def make_capturable(optimizer) -> None:
    """Adam as a CUDA graph can replay it: capturable, the foreach path, its lr a device tensor
    (which ReduceLROnPlateau updates in place). Every parameter group of `optimizer`."""
    device = next(p.device for g in optimizer.param_groups for p in g["params"])
    for group in optimizer.param_groups:
        group["capturable"], group["fused"], group["foreach"] = True, None, True
        # a device tensor (a resumed optimiser may bring a float, or a tensor saved from the CPU)
        group["lr"] = torch.tensor(float(group["lr"]), device=device)


def _tensors(batch) -> Dict[str, Tensor]:
    return {f.name: getattr(batch, f.name) for f in fields(batch)} if is_dataclass(batch) else {}


class Step:
    """Callable(batch) -> (loss, parts): one optimiser step of `loss_fn` on the batch (module
    docstring); `model.after_optimizer_step(batch)` after it (model None: no such pass, as for an
    evaluation-time classifier). `optimizer`: anything with `zero_grad(set_to_none)` and `step()`
    (f-VAEGAN-D2's: a part of its nets)."""

    def __init__(self, model: Optional[GZSLModel], loss_fn: LossFn, optimizer, compile: bool = False,
                 amp: Optional[str] = None, cuda_graph: bool = False, device_type: str = "cpu"):
        self.model, self.optimizer = model, optimizer
        self.loss_fn = fast_loss(loss_fn, compile, amp, device_type)
        self.sam = isinstance(optimizer, SAM)
        self.graph: Optional[GraphedStep] = None
        if cuda_graph:     # made on first use, after a resume state (loading it resets the optimiser's options)
            make_capturable(optimizer)
            self.graph = GraphedStep(self)

    def eager(self, batch) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The step body, the only one: the loss, zero_grad, backward, the optimiser's step, the
        model's after-step pass."""
        loss, parts = self.loss_fn(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.model is not None:
            self.model.after_optimizer_step(batch)
        return loss, parts

    def __call__(self, batch) -> Tuple[Tensor, Dict[str, Tensor]]:
        if self.graph is not None:
            return self.graph(batch)
        if self.sam:
            return sam_step(self.model, self.optimizer, self.loss_fn, batch)
        return self.eager(batch)


class Captured:
    """One captured step: its graph, the batch whose tensors it reads (the next batch of its shape is
    copied into them), the loss and parts it writes."""

    def __init__(self, graph: "torch.cuda.CUDAGraph", static, out: Tuple[Tensor, Dict[str, Tensor]]):
        self.graph, self.static, self.out = graph, static, out

    def __call__(self, batch) -> Tuple[Tensor, Dict[str, Tensor]]:
        for name, t in _tensors(batch).items():
            getattr(self.static, name).copy_(t)
        self.graph.replay()
        return self.out


def shape_key(batch) -> Tuple:
    """What a captured graph fixes of a batch: each tensor's name, shape and dtype."""
    return tuple((k, tuple(v.shape), v.dtype) for k, v in _tensors(batch).items())


class GraphedStep:
    """--cuda_graph: a `Step`'s eager body captured as a CUDA graph, one per batch shape, and replayed
    for every batch of that shape.

    A small model's step on a GPU is bound by kernel launches (README "Speed" has the measurements).
    The first `WARMUP` steps are ordinary eager steps (on a side stream, as capture requires);
    after them, the first batch of a shape runs eagerly on the side stream too, the second is
    captured (`graphs[shape_key]`), and from then on each batch of that shape is copied into the
    captured batch's tensors and the graph replayed. A model of fixed shapes has one graph; TCaF's
    batches, padded to their own longest sequences, one per padded length, up to `GRAPHS` (a batch
    of a further shape runs eagerly). Each graph holds its own activations and gradients (its own
    memory pool); the optimiser's state is shared, updated in place (`capturable=True`, a tensor
    learning rate: `make_capturable`). Opt-in: the numbers differ from the eager step's at rounding
    level."""

    def __init__(self, step: Step, capacity: int = GRAPHS):
        self.step, self.steps, self.capacity = step, 0, capacity
        self.graphs: Dict[Tuple, Captured] = {}
        self.warm: set = set()
        self.side = torch.cuda.Stream()

    def side_eager(self, batch) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The eager step on the side stream (before a capture)."""
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = self.step.eager(batch)
        torch.cuda.current_stream().wait_stream(self.side)
        return out

    def capture(self, batch) -> Captured:
        graph = torch.cuda.CUDAGraph()
        self.step.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            out = self.step.eager(batch)
        return Captured(graph, batch, out)

    def __call__(self, batch) -> Tuple[Tensor, Dict[str, Tensor]]:
        self.steps += 1
        if not _tensors(batch):
            return self.step.eager(batch)      # not a batch of named tensors
        key = shape_key(batch)
        if key in self.graphs:
            return self.graphs[key](batch)
        if len(self.graphs) >= self.capacity:
            return self.step.eager(batch)      # too many shapes: the others run eagerly
        if self.steps <= WARMUP or key not in self.warm:
            self.warm.add(key)
            return self.side_eager(batch)
        self.graphs[key] = self.capture(batch)
        self.graphs[key].graph.replay()
        return self.graphs[key].out


class Steps:
    """The run's step options (`--compile`, `--amp`, `--cuda_graph`, the device); called with
    (key, loss_fn, optimizer) it returns the `Step` of that key, made on first use and kept for the
    run. The model's step is `steps("train", model.training_step, optimizer)`. `compilable=False`:
    a loss torch.compile cannot differentiate (one that differentiates twice, as a gradient
    penalty) stays eager under --compile."""

    def __init__(self, model: GZSLModel, compile: bool = False, amp: Optional[str] = None,
                 cuda_graph: bool = False, device_type: str = "cpu"):
        if cuda_graph and device_type != "cuda":
            raise UserError("--cuda_graph replays the training step as a CUDA graph: it needs --device cuda")
        self.model, self.compile, self.amp, self.cuda_graph, self.device_type = \
            model, compile, amp, cuda_graph, device_type
        self.made: Dict[str, Step] = {}

    def __call__(self, key: str, loss_fn: LossFn, optimizer, compilable: bool = True) -> Step:
        if key not in self.made:
            self.made[key] = Step(self.model, loss_fn, optimizer, self.compile and compilable, self.amp,
                                  self.cuda_graph, self.device_type)
        return self.made[key]


def run_steps(inp: EpochInputs, make_batch: Callable[[int], object]) -> Dict[str, float]:
    """`inp.n_batches` optimiser steps of the model's `training_step`, one on each `make_batch(step)`;
    returns the mean loss and parts (SAM: of the first pass). A non-finite loss stops with a
    UserError (checked every 50 steps: one host sync)."""
    model, n = inp.model, inp.n_batches
    step_once = inp.steps("train", model.training_step, inp.optimizer)
    sums: Dict[str, Tensor] = {}
    bar = tqdm(range(n), desc=f"epoch {inp.epoch + 1}/{inp.epochs}", leave=False, mininterval=1.0, disable=None)
    for step in bar:
        loss, parts = step_once(make_batch(step))
        for k, v in {"loss": loss.detach(), **parts}.items():
            sums[k] = sums[k] + v if k in sums else v.clone()
        if (step + 1) % 50 == 0 or step + 1 == n:
            mean_loss = float(sums["loss"]) / (step + 1)
            if not math.isfinite(mean_loss):
                raise UserError(f"non-finite training loss at epoch {inp.epoch + 1}, step {step + 1}: try a "
                                f"lower --lr; the run folder keeps the last finished epoch")
            bar.set_postfix(loss=f"{mean_loss:.4f}")
    if step_once.sam:       # the last step's momenta back (they are 0 until the next step's start)
        enable_running_stats(model)
    return {k: float(v) / n for k, v in sums.items()}


def fit_classifier(classifier, x: Tensor, y: Tensor, epochs: int, batch_size: int, generator: torch.Generator,
                   on_epoch: Optional[Callable[[int], None]] = None) -> None:
    """Fit `classifier` on x [N, D] -> labels y [N]: `epochs` passes in batches of `batch_size`, one
    eager `Step` of `classifier.loss((x [B, D], y [B]))` with `classifier.configure_optimizer()`
    each; `on_epoch(epoch)` after each pass. The order is drawn from `generator` once, before the
    first pass: every epoch visits the batches in the same order, as the original's classifier does
    (it permutes its data once, when it is built). Runs with gradients on whatever the caller's mode."""
    step = Step(None, classifier.loss, classifier.configure_optimizer())
    perm = torch.randperm(len(x), generator=generator, device=x.device)               # (N,)
    with torch.enable_grad():
        for epoch in range(epochs):
            for i in range(0, len(x), batch_size):
                idx = perm[i:i + batch_size]
                step((x[idx], y[idx]))
            if on_epoch is not None:
                on_epoch(epoch)


def build_model(name: str, args) -> GZSLModel:
    """The registry's model `name` built from `args`, given what the trainer lends a model: the
    fit of an evaluation-time classifier (`fit_classifier`; f-VAEGAN-D2's). Training and evaluation
    both build their models here."""
    model = create_model(name, args)
    model.fit_classifier = fit_classifier
    return model


def epoch_lengths(batches: Batches, model: GZSLModel, split, pos: Tensor) -> List[Optional[Tuple[int, ...]]]:
    """The padded lengths of each of the epoch's batches of positives `pos` [n, B] as `batches.lengths`
    computes them on the device, read in one transfer (a tuple of ints per batch); None for each
    batch of a model without them (or in a mode with fixed lengths)."""
    lengths = batches.lengths(model, split, pos) if batches.lengths is not None else None
    if lengths is None:
        return [None] * len(pos)
    return [tuple(row) for row in lengths.tolist()]


def train_epoch(inp: EpochInputs) -> Dict[str, float]:
    """One epoch: `n_batches` batches of `bs` from the class-balanced sampler (positives and their
    negatives, drawn at once), each built by the model's `batches.train` (batches padded to their
    longest sequence: with their lengths, read at once for the epoch), one optimiser step each;
    the mean losses."""
    inp.model.train()
    pos, neg = (t.view(inp.n_batches, inp.bs) for t in inp.sampler.draw(inp.n_batches * inp.bs))
    lengths = epoch_lengths(inp.batches, inp.model, inp.train, pos)
    return run_steps(inp, lambda step: inp.batches.train(inp.model, inp.train, pos[step], neg[step], z_score=inp.z_score,
                                                         generator=inp.sampler.generator, lengths=lengths[step]))


@torch.no_grad()
def validation_loss(model: GZSLModel, val, batches: Batches, neg: Optional[Tensor] = None,
                    z_score: bool = False) -> float:
    """The training loss in eval mode over every val sample once (each with its fixed negative
    `neg`), in batches of `batches.val_chunk(model)` built by `batches.val`; the mean per sample
    (summed on the device in `batches.val_sum`, float64 by default: one host sync)."""
    was_training = model.training
    model.eval()
    n, chunk = len(val), batches.val_chunk(model)
    idx = torch.arange(n, device=val.labels.device)
    total = torch.zeros((), dtype=batches.val_sum, device=val.labels.device)
    for i in range(0, n, chunk):
        batch = batches.val(model, val, idx[i:i + chunk], None if neg is None else neg[i:i + chunk], z_score=z_score)
        loss, _ = model.training_step(batch)
        total = total + loss.to(batches.val_sum) * len(idx[i:i + chunk])
    model.train(was_training)
    return float(total) / n
