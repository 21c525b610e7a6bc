"""The class vectors' width is a model argument: `text_dim` (300 for word2vec, 1536 for CLIP+CLAP).

Parametrised over `list_models()`: every registered model is built from its registry flag with
`args.text_dim` set (as src/compose.py does from the data), trains a step and evaluates on a batch
whose class vectors have that width (built by its registry entry's `batches`); with text_dim 300 (or an args.pkl without it) it is the model
it always was: the same state_dict, initialised the same under a seed. A model with nothing to train
(the frozen CLIP/CLAP row) only evaluates.
"""
import pytest
import torch

import test_models_registry as checks
from conftest import random_pair_split
from src.args import finalize_main_args, get_main_parser, resolve_model_name, upgrade_run_args
from src.families import WORD_DIM
from src.models import get_entry, list_models
from src.models.base import GZSLModel
from src.models.registry import text_dim
from src.steps import build_model

CLIP_CLAP_DIM = 1536
D_A, D_V = 1024, 512          # WavCaps audio, CLIP video (the CLIP/CLAP family's widths)
B, C, N_EVAL = 16, 5, 7
HIDDEN = ["--embeddings_hidden_size", "32", "--decoder_hidden_size", "16"]


def parse(name, d_a=D_A, d_v=D_V):
    """The Namespace main.py would give `name` with small hidden sizes (and the refinements of
    tests/test_models_registry.py's CASES)."""
    flag = get_entry(name).flag
    argv = ["--root_dir", "x", "--dataset_name", "UCF", "--input_size_audio", str(d_a),
            "--input_size_video", str(d_v), *HIDDEN, *([f"--{flag}"] if flag else []),
            *checks.CASES.get(name, checks.Case()).extra]
    args = finalize_main_args(get_main_parser().parse_args(argv))
    assert resolve_model_name(args) == name
    return args


def build(name, dim, seed=0, **sizes) -> GZSLModel:
    """`name` built for class vectors of width `dim` (None: the width main.py's arguments record,
    word2vec's 300 here)."""
    args = parse(name, **sizes)
    if dim is not None:
        args.text_dim = dim
    torch.manual_seed(seed)
    return build_model(name, args)           # as training and evaluation build it


def split_of(dim, seed=0):
    """2B samples of C classes with class vectors [C, dim] (unit norm), non-negative features (class
    centres plus noise): B positives, then a negative of another class for each."""
    return random_pair_split(B, C, D_A, D_V, seed, nonnegative=True, text_dim=dim)


@pytest.fixture(params=list_models())
def name(request):
    return request.param


def test_text_dim_of_a_namespace():
    args = parse("avca")
    assert args.text_dim == text_dim(args) == WORD_DIM == 300     # recorded with the (word2vec) family
    del args.text_dim                                 # an args.pkl made before text_dim was recorded:
    assert upgrade_run_args(args).text_dim is None    # None at loading; the evaluation sets the data's
    args.text_dim = CLIP_CLAP_DIM
    assert text_dim(args) == CLIP_CLAP_DIM


def test_trains_and_evaluates_on_1536_d_class_vectors(name):
    model, split = build(name, CLIP_CLAP_DIM).train(), split_of(CLIP_CLAP_DIM)
    if model.trainable:
        train_one_step(name, model, split)

    checks.attach_training_split(model, split)
    model.eval()
    g = torch.Generator().manual_seed(1)
    audio, video = torch.rand(N_EVAL, D_A, generator=g), torch.rand(N_EVAL, D_V, generator=g)
    with torch.no_grad():
        d = model.eval_distances(audio, video, split.text)
    assert set(d) - {"zsl"} == set(model.modes) and model.reported_mode in d
    for mode, dist in d.items():
        assert dist.shape == (N_EVAL, C), (name, mode, dist.shape)
        if mode != "zsl":                    # a ZSL matrix is +inf outside the unseen columns
            assert torch.isfinite(dist).all(), (name, mode)


def train_one_step(name, model, split) -> None:
    """One optimiser step of `model` on a batch of `split` (1536-d class vectors): finite loss and gradients."""
    batch = get_entry(name).batches.train(model, split, torch.arange(B), torch.arange(B, 2 * B))
    assert any(CLIP_CLAP_DIM in p.shape for p in model.parameters()), f"{name}: no layer reads the class vectors"
    opt, _ = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
    loss, parts = model.training_step(batch)
    assert loss.shape == () and torch.isfinite(loss) and loss.requires_grad
    assert all(torch.isfinite(p) for p in parts.values())
    opt.zero_grad()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    checks.CASES.get(name, checks.Case()).step(opt)
    model.after_optimizer_step(batch)


def test_text_dim_300_is_the_default_model(name):
    """text_dim 300 and an args.pkl without text_dim give the same state_dict (keys, shapes, and
    values under one seed) as the model built before the argument existed; 1536 changes only
    shapes, not the keys."""
    sizes = {"d_a": checks.D_A, "d_v": checks.D_V}
    default = build(name, None, **sizes).state_dict()
    explicit = build(name, 300, **sizes).state_dict()
    assert list(explicit) == list(default)
    for k, v in default.items():
        assert explicit[k].shape == v.shape and torch.equal(explicit[k], v), (name, k)
    wide = build(name, CLIP_CLAP_DIM, **sizes).state_dict()
    assert list(wide) == list(default)
    assert any(wide[k].shape != v.shape for k, v in default.items()) or not default, \
        f"{name}: text_dim changes no layer"      # (a model with no state has none)
