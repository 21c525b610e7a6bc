"""Every registered model answers the interface of src/models/base.py.

Parametrised over `list_models()`: a model is tested the moment it is registered. Each is built
from its registry flag with small input sizes; `CASES` only refines a model whose real
configuration needs more flags or whose optimiser steps differently (a model missing from it is
tested with the defaults). Its batches are built by its own registry entry's `batches` from a
small split of averaged features. A model whose evaluation needs a training split
(`evaluation_needs_split()`) is given one made of the split's first classes. A model with nothing to
train (`trainable` False: the frozen CLIP/CLAP row) skips the training checks and is checked to have
nothing to train.
"""
import io
import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Sequence

import pytest
import torch

from conftest import random_pair_split
from src.args import finalize_main_args, get_main_parser, resolve_model_name
from src.models import get_entry, list_models
from src.models.base import EpochInputs, GZSLModel, plateau
from src.sampler import PairSampler
from src.steps import Steps, build_model, train_epoch, validation_loss

D_A, D_V, C, B = 12, 20, 5, 16
N_EVAL = 7
SMALL = ["--input_size_audio", str(D_A), "--input_size_video", str(D_V),
         "--embeddings_hidden_size", "32", "--decoder_hidden_size", "16"]
N_TRAIN_CLASSES = 3     # f-VAEGAN-D2's training classes: the first 3 of the batch's C (the others unseen)


def attach_training_split(model, split) -> None:
    """What src/two_stage.restore_model does for a model that names a split: here a SplitData-like
    object of the split's B first samples of its first N_TRAIN_CLASSES classes (f-VAEGAN-D2 trains
    its evaluation classifiers on their real features and generates the others')."""
    if model.evaluation_needs_split() is None:
        return
    labels = split.labels[:B]
    keep = labels < N_TRAIN_CLASSES
    model.attach_training_data(SimpleNamespace(audio=split.audio[:B][keep], video=split.video[:B][keep],
                                               labels=labels[keep], text=split.text[:N_TRAIN_CLASSES]))


@dataclass
class Case:
    extra: Sequence[str] = ()                                               # flags besides SMALL and the model flag
    step: Callable[[object], None] = field(default=lambda opt: opt.step())  # one optimiser step
    text_dim: int = 300                                                     # the width of the class vectors


CASES = {
    "avca": Case(extra=["--additional_triplets_loss", "--reg_loss"]),
    "cjme": Case(extra=["--embedding_use_bn"]),
    "avgzslnet": Case(extra=["--embedding_use_bn", "--decoder_use_bn", "--normalize_decoder_outputs"]),
    # training_step is the encoder/generator loss: step E and G (its optimiser holds one Adam per net)
    "fvaegan": Case(extra=["--latent_size", "8", "--syn_num", "10", "--cls_epochs", "2"],
                    step=lambda opt: opt.step("E", "G")),
    # the raw [video || audio] against class vectors of the same width
    "frozen_clipclap": Case(text_dim=D_V + D_A),
}


def argv(name):
    flag = get_entry(name).flag
    return ["--root_dir", "x", "--dataset_name", "UCF", *SMALL, *([f"--{flag}"] if flag else []),
            *CASES.get(name, Case()).extra]


def build(name, seed=0) -> GZSLModel:
    args = finalize_main_args(get_main_parser().parse_args(argv(name)))
    assert resolve_model_name(args) == name
    torch.manual_seed(seed)
    return build_model(name, args)           # as training and evaluation build it


def make_split(name=None, seed=0):
    """2B samples of C classes (B positives, then a negative of another class for each);
    non-negative features (class centres plus noise), unit class vectors (the width of `name`'s CASES)."""
    return random_pair_split(B, C, D_A, D_V, seed, nonnegative=True, text_dim=CASES.get(name, Case()).text_dim)


def make_batch(name, model, split=None):
    """The model's own training batch (its registry entry's `batches.train`) of the split's B
    positives and their negatives."""
    split = make_split(name) if split is None else split
    return get_entry(name).batches.train(model, split, torch.arange(B), torch.arange(B, 2 * B))


def eval_inputs(split):
    """N_EVAL samples [N, D_a], [N, D_v] and the split's C classes [C, 300]."""
    g = torch.Generator().manual_seed(1)
    return torch.rand(N_EVAL, D_A, generator=g), torch.rand(N_EVAL, D_V, generator=g), split.text


def distances(model, split, squared=False):
    attach_training_split(model, split)
    model.eval()
    with torch.no_grad():
        return model.eval_distances(*eval_inputs(split), squared=squared)


@pytest.fixture(params=list_models())
def name(request):
    return request.param


def trainable(name) -> GZSLModel:
    """`name` built, for the training checks; skipped when it has nothing to train."""
    model = build(name)
    if not model.trainable:
        pytest.skip(f"{name} has nothing to train")
    return model


def test_trainable_says_whether_anything_is_optimised(name):
    """`trainable` (the trainer builds an optimiser only then) is whether a parameter needs a gradient; a
    model without one has no training step."""
    model = build(name)
    assert model.trainable == any(p.requires_grad for p in model.parameters())
    if not model.trainable:
        with pytest.raises(NotImplementedError):
            model.training_step(make_batch(name, model))


def test_the_trainers_epoch_and_validation_loss_run_on_its_batches(name):
    """One epoch as the trainer runs it (its `train_epoch` on the entry's batches, or the entry's own
    `epoch_fn`) through the trainer's step, then the validation loss: finite, the model in train mode."""
    model, split, entry = trainable(name).train(), make_split(name), get_entry(name)
    opt, _ = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
    inp = EpochInputs(model=model, optimizer=opt, train=split, val=split, sampler=PairSampler(split.labels, C, seed=0),
                      epoch=0, epochs=1, n_batches=3, bs=B, z_score=False, retrain_all=True, reproduce_original=False,
                      val_metrics=None, steps=Steps(model), batches=entry.batches)
    stats = (entry.epoch_fn or train_epoch)(inp)
    assert stats and all(math.isfinite(v) for v in stats.values()), stats
    neg = torch.arange(2 * B).roll(B)                     # each sample's pair: another class
    val_loss = entry.val_loss_fn(model, split) if entry.val_loss_fn else validation_loss(model, split, entry.batches, neg)
    assert math.isfinite(val_loss) and model.training


def test_modes_are_declared(name):
    model = build(name)
    assert model.modes and len(set(model.modes)) == len(model.modes) and "zsl" not in model.modes
    assert model.reported_mode in model.modes


def test_training_step_and_backward(name):
    model = trainable(name).train()
    loss, parts = model.training_step(make_batch(name, model))
    assert loss.shape == () and torch.isfinite(loss) and loss.requires_grad
    assert parts and all(p.shape == () and not p.requires_grad and torch.isfinite(p) for p in parts.values())
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads, f"{name}: no parameter gets a gradient"
    for n, g in grads.items():
        assert torch.isfinite(g).all(), f"{name}: non-finite gradient of {n}"


def test_one_optimizer_step_changes_the_parameters(name):
    model = trainable(name).train()
    opt, sched = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
    assert sched is None or callable(getattr(sched, "step", None))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = make_batch(name, model)
    loss, _ = model.training_step(batch)
    opt.zero_grad()
    loss.backward()
    CASES.get(name, Case()).step(opt)
    model.after_optimizer_step(batch)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed, f"{name}: the step changed no parameter"
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert changed <= with_grad, f"{name}: parameters without a gradient moved: {changed - with_grad}"


def test_default_optimizer_is_adam_with_plateau_on_request(name):
    """A model that keeps GZSLModel.configure_optimizers: Adam(lr), no weight decay; the plateau
    scheduler only with lr_scheduler."""
    model = trainable(name)
    if type(model).configure_optimizers is not GZSLModel.configure_optimizers:
        pytest.skip(f"{name} has its own configure_optimizers")
    opt, sched = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == 1e-3 and opt.defaults["weight_decay"] == 0
    assert sched is None
    _, sched = model.configure_optimizers(lr=1e-3, lr_scheduler=True)
    ref = plateau(torch.optim.Adam([torch.zeros(1, requires_grad=True)]))
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (sched.mode, sched.patience, sched.factor) == (ref.mode, ref.patience, ref.factor) == ("max", 3, 0.1)


def test_eval_distances_one_matrix_per_declared_mode(name):
    model, split = build(name), make_split(name)
    for squared in (False, True):
        d = distances(model, split, squared)
        assert set(d) - {"zsl"} == set(model.modes), f"{name}: returns {sorted(d)}, declares {model.modes}"
        assert model.reported_mode in d
        for mode, dist in d.items():
            assert dist.shape == (N_EVAL, C), (name, mode, dist.shape)
            if mode != "zsl":                   # a ZSL matrix is +inf outside the unseen columns
                assert torch.isfinite(dist).all(), (name, mode)


def test_state_dict_round_trip(name):
    """torch.save'd state_dict loads strictly into a fresh model of the same flags (other init),
    which then gives the same distances."""
    model, split = build(name, seed=0), make_split(name)
    if model.trainable:
        model.train()
        loss, _ = model.training_step(make_batch(name, model, split))     # moves the BatchNorm statistics off their init
        loss.backward()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    fresh = build(name, seed=1)
    assert list(fresh.state_dict()) == list(model.state_dict())
    fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True), strict=True)
    d, d_fresh = distances(model, split), distances(fresh, split)
    assert set(d) == set(d_fresh)
    for mode in d:
        assert torch.equal(d[mode], d_fresh[mode]), (name, mode)


def test_optimizer_steps_lower_the_loss_on_a_fixed_batch(name):
    model = trainable(name).train()
    opt, sched = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
    step = CASES.get(name, Case()).step
    batch = make_batch(name, model)

    def loss_now():
        torch.manual_seed(123)                    # the same dropout masks and noise each time
        return model.training_step(batch)[0]

    before = loss_now()
    for _ in range(3):
        opt.zero_grad()
        loss_now().backward()
        step(opt)
        model.after_optimizer_step(batch)
    after = loss_now()
    assert after.item() < before.item(), f"{name}: {before.item()} -> {after.item()}"
