"""The CPU fast paths (issue: closer to the hardware): dropout masks from 16-bit random words, fused
Adam, the thread default. Each keeps what the training promises: the distribution, the scaling,
the seed's determinism and --resume's exactness, results within rounding."""
import argparse

import pytest
import torch
import torch.nn.functional as F

from src.models import dropout as fast
from src.models.base import adam, set_fast_paths
from src.runtime import configure_threads, default_threads


def test_masks_keep_the_rate_and_the_scale():
    torch.manual_seed(0)
    for p in (0.1, 0.2, 0.3, 0.5):
        m = fast.keep_mask((1000, 1000), p)
        assert m.dtype == torch.bool and m.shape == (1000, 1000)
        assert abs(m.float().mean().item() - (1 - p)) < 3e-3, p       # 1e6 draws: std 5e-4
    x = torch.randn(300, 700)
    y = fast.Dropout(0.3).train()(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.7)
    assert 0.67 < kept.float().mean().item() < 0.73


@pytest.mark.parametrize("p", [0.0001, 0.1, 0.3, 0.5, 0.9999])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_scaled_mask_is_the_bool_mask_times_the_scale(p, dtype):
    """The float path (clamp of threshold - word) keeps exactly the elements the comparison keeps,
    at exactly 1 / (1 - p) in the tensor's dtype, from the same draws."""
    torch.manual_seed(11)
    kept = fast.keep_mask((37, 301), p)
    torch.manual_seed(11)
    m = fast.scaled_mask((37, 301), p, dtype)
    assert m.dtype == dtype and m.shape == (37, 301)
    assert torch.equal(m != 0, kept)
    assert torch.all(m[kept] == torch.tensor(1 / (1 - p), dtype=dtype))


def test_masks_are_uniform_over_elements():
    """Each of the four 16-bit parts of a random word is used alike (no biased lane)."""
    torch.manual_seed(1)
    m = fast.keep_mask((4 * 250_000,), 0.5).view(-1, 4).float().mean(dim=0)
    assert torch.all((m - 0.5).abs() < 5e-3), m


def test_masks_follow_the_seed_and_the_rng_state():
    torch.manual_seed(7)
    a = fast.keep_mask((64, 300), 0.2)
    state = torch.get_rng_state()
    b = fast.keep_mask((64, 300), 0.2)
    torch.manual_seed(7)
    assert torch.equal(fast.keep_mask((64, 300), 0.2), a)
    torch.set_rng_state(state)                        # what --resume restores
    assert torch.equal(fast.keep_mask((64, 300), 0.2), b)
    assert not torch.equal(a, b)


def test_gradient_and_the_identity_cases():
    x = torch.randn(50, 40, requires_grad=True)
    torch.manual_seed(3)
    y = fast.dropout(x, 0.4, True)
    y.sum().backward()
    assert torch.allclose(x.grad, (y != 0).float() / 0.6)
    assert torch.equal(fast.dropout(x, 0.4, False), x) and torch.equal(fast.dropout(x, 0.0, True), x)
    assert torch.equal(fast.dropout(x, 1.0, True), torch.zeros_like(x))


def test_inplace_dropout_only_outside_autograd():
    """`inplace=True` masks the tensor itself without autograd, with the same values; under
    autograd it leaves its input alone (a ReLU before it keeps its output for its backward)."""
    drop = fast.Dropout(0.3, inplace=True).train()
    x = torch.randn(64, 80)
    torch.manual_seed(2)
    expected = fast.Dropout(0.3).train()(x)
    torch.manual_seed(2)
    with torch.no_grad():
        y = x.clone()
        out = drop(y)
    assert out.data_ptr() == y.data_ptr() and torch.equal(out, expected)
    a = torch.randn(64, 80, requires_grad=True)
    h = torch.relu(a)
    kept = h.clone()
    drop(h).sum().backward()                 # would fail if the ReLU's saved output had changed
    assert torch.equal(h, kept) and a.grad is not None


def test_the_switch_restores_torch_masks_and_adams_loop():
    x = torch.randn(100, 100)
    params = [torch.nn.Parameter(torch.randn(3))]
    assert adam(params, lr=1e-3).defaults["fused"]
    set_fast_paths(False)
    try:
        torch.manual_seed(5)
        got = fast.Dropout(0.2).train()(x)
        torch.manual_seed(5)
        assert torch.equal(got, F.dropout(x, 0.2, True))
        assert not adam(params, lr=1e-3).defaults["fused"]
    finally:
        set_fast_paths(True)


def test_fused_adam_stays_within_rounding_over_300_steps():
    def train(fused: bool):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
        opt = adam(net.parameters(), lr=1e-3, weight_decay=1e-5) if fused else \
            torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
        g = torch.Generator().manual_seed(1)
        for _ in range(300):
            x, y = torch.randn(32, 64, generator=g), torch.randint(0, 10, (32,), generator=g)
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        return opt, torch.cat([p.detach().flatten() for p in net.parameters()])
    opt, a = train(True)
    assert opt.defaults["fused"]
    _, b = train(False)
    assert (a - b).abs().max().item() < 1e-4, (a - b).abs().max()
    assert set(opt.state_dict()["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}


def test_thread_default_and_option(tiny_root, tmp_path, monkeypatch):
    # from the machine, never its load (the numbers depend on the count): 1 up to 2 CPUs, else half, at most 8
    assert [default_threads(c) for c in (1, 2, 3, 4, 16, 64)] == [1, 1, 1, 2, 8, 8]
    before = torch.get_num_threads()
    try:
        assert configure_threads(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "3")            # src.reproduce gives each cell its threads so
        assert configure_threads(0) == 3 and configure_threads(1) == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        from src.args import finalize_main_args, get_main_parser
        from src.compose import build_trainer
        from src.runs import RunFolder
        args = finalize_main_args(get_main_parser().parse_args(
            ["--root_dir", str(tiny_root), "--dataset_name", "UCF", "--AVCA", "--epochs", "1", "--n_batches", "2",
             "--num_threads", "1", "--dump_path", str(tmp_path), "--exp_name", "t"]))
        build_trainer(args, RunFolder(tmp_path / "runs" / "t"))
        assert torch.get_num_threads() == 1
        with pytest.raises(SystemExit):
            get_main_parser().parse_args(["--num_threads", "-1"])
        assert isinstance(args, argparse.Namespace)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("mode", [["--amp", "bf16"], ["--compile"]])
def test_opt_in_modes_train_and_evaluate(mode, tiny_root, tmp_path):
    """--amp bf16 and --compile: stage 1, stage 2 and get_evaluation run; the numbers are finite."""
    import json
    import math

    from conftest import AVCA_FLAGS, main_args
    from src.args import finalize_main_args, get_eval_parser, get_main_parser
    from src.compose import train
    from src.two_stage import evaluate_runs
    for exp, extra in (("val", []), ("all", ["--retrain_all", "--save_checkpoints"])):
        argv = [str(a) for a in main_args(tiny_root, tmp_path, exp, *AVCA_FLAGS, *extra, *mode, epochs=2, n_batches=4)]
        train(finalize_main_args(get_main_parser().parse_args(argv)))
        assert json.loads((tmp_path / "runs" / exp / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 2
    result = evaluate_runs(get_eval_parser().parse_args(
        ["--load_path_stage_A", str(tmp_path / "runs" / "val"), "--load_path_stage_B", str(tmp_path / "runs" / "all"),
         "--AVCA", "--device", "cpu"]))
    assert all(math.isfinite(result[k]) for k in ("seen", "unseen", "hm", "zsl"))


def test_cuda_graph_needs_cuda(tiny_root, tmp_path):
    from conftest import AVCA_FLAGS, main_args
    from src.args import finalize_main_args, get_main_parser
    from src.compose import train
    from src.errors import UserError
    argv = [str(a) for a in main_args(tiny_root, tmp_path, "g", *AVCA_FLAGS, "--cuda_graph")]
    with pytest.raises(UserError, match="needs --device cuda"):
        train(finalize_main_args(get_main_parser().parse_args(argv)))
