"""The benchmark scripts still run and print what the README says they print (a small run; the
numbers themselves are measurements, not asserted)."""
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

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


def bench_grid():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_grid as module
    return module


def test_bench_grid_projects_a_cell_from_its_steadiest_epochs(tmp_path):
    """AVCA's UCF run-script schedule is 50 epochs x 500 batches a stage: a smoke epoch of 20 batches
    that trained 2 s and validated 1 s projects to 50 x (2 x 25 + 1) s a stage; the cell's time
    outside its steady epochs (here 100 s of wall time, 10 s of first-epoch warm-up) is added once."""
    grid = bench_grid()
    cell = grid.Cell("avca", "UCF", "main", 1, str(tmp_path / "data"), str(tmp_path / "out"))
    for name in grid.exp_names("avca", "UCF", "main"):
        run = cell.dump_path / "runs" / name
        run.mkdir(parents=True)
        (run / "metrics.jsonl").write_text("".join(json.dumps({"seconds": s, "train_seconds": t}) + "\n"
                                                   for s, t in [(8.0, 7.0), (3.0, 2.0)]))
    cell.usage_path.parent.mkdir(parents=True)
    cell.usage_path.write_text(json.dumps({"wall_s": 100.0}))
    smoke = SimpleNamespace(epochs=2, n_batches=20)
    assert grid.full_schedule("avca", "main", tmp_path) == [(50, 500), (50, 500)]
    assert grid.projected_cell(cell, smoke) == 2 * 50 * (2 * 25 + 1) + 100 - 2 * 2 * 3
    smoke.epochs = 3                 # fewer epochs logged than asked: a training-free method's one epoch kept
    assert grid.projected_cell(cell, smoke) == 2 * 2 * (2 * 25 + 1) + 100 - 2 * 2 * 3
    assert grid.dealt([3, 1, 1, 1], 2) == 3 and grid.dealt([1, 1, 1, 1], 2) == 2 and grid.dealt([2, 2, 1], 1) == 5


def test_bench_grid_times_each_jobs_and_projects_the_full_grid(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_grid.py"), "--preset", "tiny", "--methods",
                          "devise", "--families", "clip", "--seeds", "1", "--epochs", "2",
                          "--n_batches", "2", "--jobs", "1", "2", "--work_dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = re.findall(r"^--jobs (\d) --threads (\d+): ([\d.]+) s(?:, ([\d.]+)x --jobs 1)?; projected full UCF grid "
                       r"\(1 cells x 3 seeds, run-script schedules\): ([\d.]+) h$", out.stdout, re.M)
    assert [line[0] for line in lines] == ["1", "2"] and lines[1][3], out.stdout
    assert all(float(line[2]) > 0 and float(line[4]) > 0 for line in lines)
    assert re.search(r"projected full cells \(s\): devise clip \d+$", out.stdout, re.M), out.stdout


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
