"""Shared fixtures: tiny synthetic benchmarks, the real split files, and CLI runners."""
import logging
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REFERENCE = ROOT.parent / "shared" / "reference"
sys.path.insert(0, str(ROOT))

# Small AVCA configuration for fast tests (the seed's flags with small sizes).
AVCA_FLAGS = ("--AVCA --lr 0.001 --embeddings_hidden_size 64 --decoder_hidden_size 64 --embedding_dropout 0.2 "
              "--decoder_dropout 0.3 --additional_dropout 0.5 --depth_transformer 1 --additional_triplets_loss "
              "--first_additional_triplet 1 --second_additional_triplet 1 --momentum 0.1 --reg_loss "
              "--lr_scheduler").split()


def real_data_or_skip() -> Path:
    if not (SHARED_DATA / "avgzsl_benchmark_datasets").is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


def count_mispaired(dataset) -> int:
    """How many classes the original pairing gives another class's vector (an AVGZSLDataset's)."""
    from src.data import AVGZSLDataset
    other = AVGZSLDataset(dataset.root, dataset.name, dataset.feature_method, dataset.zero_shot_split,
                          pairing="original" if dataset.pairing == "correct" else "correct", family=dataset.family)
    return int((dataset.word_vectors != other.word_vectors).any(dim=1).sum())


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A tiny invented UCF-like benchmark with both feature families, averaged and temporal; and
    beside it, in ClipClap/UCF, the CLIP/CLAP family."""
    from src.synthetic import generate
    return generate(tmp_path_factory.mktemp("bench"), "UCF", preset="tiny", seed=0, noise=0.2, spread=0.5,
                    families=("main", "cls", "clip"), temporal=True)


@contextmanager
def warnings_of(name="avgzsl"):
    """The messages of one logger's warnings, caught on the logger itself: main.py's logging setup
    stops its propagation, so pytest's caplog would miss them once a training ran in this process."""
    from src.runtime import KeptRecords
    logger, kept = logging.getLogger(name), KeptRecords()
    messages = []
    kept.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(kept)
    try:
        yield messages
    finally:
        logger.removeHandler(kept)


def run_cli(*args, cwd=ROOT, check=True, env=None):
    """Run a project CLI in a subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    script = [str(ROOT / args[0])] if str(args[0]).endswith(".py") else [str(args[0])]
    proc = subprocess.run([sys.executable, *script, *map(str, args[1:])], cwd=cwd, capture_output=True, text=True, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def cli(name):
    """The main() of a top-level script (main.py, get_evaluation.py), to run it in this process."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"cli_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def main_args(root, dump, exp, *extra, epochs=2, n_batches=8, bs=64):
    return ["--root_dir", root, "--dataset_name", "UCF", "--feature_extraction_method", "main_features",
            "--zero_shot_split", "main_split", "--input_size_audio", "512", "--input_size_video", "512",
            "--epochs", epochs, "--n_batches", n_batches, "--bs", bs, "--dump_path", dump, "--exp_name", exp,
            "--device", "cpu", *extra]


def random_pair_split(b: int, c: int, d_a: int, d_v: int, seed: int = 0, nonnegative: bool = False,
                      text_dim: int = 300):
    """A SplitData of 2b samples of c classes (all seen; class ids 0, 2, 4, ..): features = class
    centres plus noise (uniform and non-negative, or Gaussian), unit class vectors [c, text_dim];
    samples 0..b-1 have labels 0, 1, .., c-1 in turn, sample b + i one of another class than
    sample i (the positives and negatives of `random_pair_batch`)."""
    import torch
    import torch.nn.functional as F
    from src.data import SplitData
    g = torch.Generator().manual_seed(seed)
    rand, noise = (torch.rand, 0.1) if nonnegative else (torch.randn, 0.3)
    class_text = F.normalize(torch.randn(c, text_dim, generator=g), dim=1)
    label = torch.arange(b) % c
    label_neg = (label + 1 + torch.randint(0, c - 1, (b,), generator=g)) % c
    centres_a, centres_v = rand(c, d_a, generator=g), rand(c, d_v, generator=g)

    def sample(lbl):
        return (centres_a[lbl] + noise * rand(len(lbl), d_a, generator=g),
                centres_v[lbl] + noise * rand(len(lbl), d_v, generator=g))

    (a, v), (a_n, v_n) = sample(label), sample(label_neg)
    labels, class_ids = torch.cat((label, label_neg)), torch.arange(c) * 2
    word_vectors = torch.zeros(2 * c, text_dim).index_copy_(0, class_ids, class_text)
    return SplitData("train", audio=torch.cat((a, a_n)), video=torch.cat((v, v_n)), targets=class_ids[labels],
                     labels=labels, class_ids=class_ids, seen_mask=torch.ones(c, dtype=torch.bool), text=class_text,
                     word_vectors=word_vectors)


def random_pair_batch(b: int, c: int, d_a: int, d_v: int, seed: int = 0, nonnegative: bool = False):
    """A PairBatch of b pairs of c classes (`random_pair_split`'s samples: b positives, their negatives)."""
    import torch
    from src.models.base import pair_batch
    return pair_batch(random_pair_split(b, c, d_a, d_v, seed, nonnegative), torch.arange(b), torch.arange(b, 2 * b))


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    """A test (or the code it calls) must not leave autograd switched off for the next ones."""
    import torch
    yield
    enabled = torch.is_grad_enabled()
    torch.set_grad_enabled(True)
    assert enabled, "autograd was left disabled"
