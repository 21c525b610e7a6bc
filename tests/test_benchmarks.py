"""The benchmark scripts still run and print what the README says they print (a small run; the
numbers themselves are measurements, not asserted)."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_step_prints_the_step_and_its_flop_bound():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_step.py"), "--model", "avca", "--step_only",
                          "--n_batches", "10", "--bs", "64", "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    values = dict(re.findall(r"^\s*(\w+): (.+)$", out.stdout, re.M))
    assert values["threads"] == "1"
    step, flops, peak = float(values["step_ms"]), float(values["step_gflop"]), float(values["matmul_peak_gflop_s"])
    assert step > 0 and flops > 0 and peak > 0
    bound_ms = 1000 * flops / peak
    assert abs(float(values["flop_bound_ms"]) - bound_ms) < 0.02 * bound_ms + 0.01
    assert abs(float(values["step_over_bound"]) - step / bound_ms) < 0.02 * step / bound_ms + 0.01
    assert "aten::" in values["self_cpu_time"]           # where the time goes


def test_bench_step_times_a_model_with_its_own_epoch():
    """Any registered model: f-VAEGAN-D2's critic loop is timed by its epoch, per batch."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_step.py"), "--model", "fvaegan", "--step_only",
                          "--n_batches", "4", "--bs", "16", "--scale", "0.1", "--threads", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    values = dict(re.findall(r"^\s*(\w+): (.+)$", out.stdout, re.M))
    assert values["model"] == "fvaegan on main" and float(values["step_ms"]) > 0


def test_bench_memory_prints_peak_memory_against_the_features(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_memory.py"), "--dataset", "UCF", "--scale", "0.02",
                          "--n_batches", "1", "--bs", "4", "--test_maxlen", "4", "--work_dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = dict(re.findall(r"^(import|cache build|splits|training) +(\d+) ", out.stdout, re.M))
    assert set(rows) == {"import", "cache build", "splits", "training"} and all(int(v) > 0 for v in rows.values())
    assert int(re.search(r"feature_bytes_mb: (\d+)", out.stdout).group(1)) >= 0


def test_bench_seeds_prints_its_table_and_per_seed_batchnorm_statistics():
    """Seeds as a batch dimension (vmap) against k processes, on the tiny benchmark: every path's
    row, each seed's BatchNorm running statistics its own slice [k, ...], the first step's loss the
    single seed's."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_seeds.py"), "--k", "2", "--n_steps", "2",
                          "--warmup", "1", "--exact_steps", "1", "--preset", "tiny", "--bs", "16", "--n_batches", "2",
                          "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = re.findall(r"^(A |A'|A'm|B |B') .*? +(\d+\.\d+) +(\d+\.\d+) +(\d+\.\d+)x$", out.stdout, re.M)
    assert [r[0] for r in rows] == ["A ", "A'", "A'm", "B ", "B'"] and all(float(r[1]) > 0 for r in rows), out.stdout
    values = dict(re.findall(r"^\s*(\w+): (.+)$", out.stdout, re.M))
    assert values["bn_stats_per_seed"].startswith("ok: 24 running statistics, shapes [k, ...] match"), out.stdout
    loss_diff = float(re.search(r"loss \|diff\| (\S+),", values["first_step_no_dropout"]).group(1))
    assert loss_diff < 1e-4


def test_bench_seeds_per_seed_adam_is_adam_per_seed():
    """Path B's Adam with a [k] learning rate: slice i steps as torch.optim.Adam with lr[i]."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from bench_seeds import PerSeedAdam
    torch.manual_seed(0)
    stacked = torch.randn(2, 5, 3)
    lrs = torch.tensor([1e-3, 5e-2])
    mine = PerSeedAdam([stacked], lr=lrs, weight_decay=1e-5)
    theirs = [torch.nn.Parameter(stacked[i].clone()) for i in range(2)]
    opts = [torch.optim.Adam([p], lr=float(lr), weight_decay=1e-5) for p, lr in zip(theirs, lrs)]
    for _ in range(4):
        grad = torch.randn(2, 5, 3)
        stacked.grad = grad
        mine.step()
        for i, (p, opt) in enumerate(zip(theirs, opts)):
            p.grad = grad[i].clone()
            opt.step()
    for i, p in enumerate(theirs):
        torch.testing.assert_close(stacked[i], p.detach(), rtol=1e-6, atol=1e-7)
