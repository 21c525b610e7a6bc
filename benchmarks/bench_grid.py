"""Wall time of a smoke grid of `python -m src.reproduce` at several --jobs (default: 1 and the
machine's default; each cell with --threads CPUs // jobs, at least 1), on a synthetic UCF benchmark;
prints each, its ratio to --jobs 1, and the projected wall time of the full UCF grid (every cell's
run-script schedule, --project_seeds seeds) from the measured cells.

    python benchmarks/bench_grid.py                                  # 4 AVCA cells, 2 epochs x 50 batches
    python benchmarks/bench_grid.py --methods avca ale --seeds 1 2 --epochs 1 --n_batches 5 --preset tiny
    python benchmarks/bench_grid.py --methods all --families all --seeds 1 2 --epochs 2 --n_batches 20   # the smoke grid
    python benchmarks/bench_grid.py --methods all --families all --seeds 1 2 --epochs 2 --n_batches 20 \
        --device cuda --jobs 1 4 8                                   # the same on a GPU

The projection of a cell: each stage's steadiest measured epoch split into training (metrics.jsonl's
`train_seconds`, scaled by the full schedule's --n_batches over the smoke's) and the rest
(validation, checkpoints), times the full schedule's --epochs (a training-free method keeps its one
epoch), plus what the cell spent besides (process starts, data, warm-up, evaluation), measured.
The grid's cells, each the mean of its smoke seeds, are then dealt in table order to --jobs
workers, as `python -m src.reproduce` runs them. Validation and evaluation are taken as they ran
on the smoke benchmark's val and test splits (the synthetic UCF's are UCF's sizes).

Run it on an otherwise idle machine: a neighbour's load changes the times. Grids with other
thread counts train with other numbers at rounding level (README "Speed").
"""
import argparse
import heapq
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.args import get_main_parser  # noqa: E402
from src.families import FAMILIES  # noqa: E402
from src.recipes import METHODS, cell_commands, exp_names  # noqa: E402
from src.reproduce import Cell, default_jobs, read_usage  # noqa: E402
from src.runtime import available_cpus  # noqa: E402
from src.synthetic import generate  # noqa: E402

DATASET = "UCF"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["avca"], help="methods-table keys, or all")
    p.add_argument("--families", nargs="+", default=["main"], help="feature families, or all (each is generated)")
    p.add_argument("--seeds", nargs="+", default=["1", "2", "3", "4"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n_batches", type=int, default=50)
    p.add_argument("--jobs", type=int, nargs="+", default=None,
                   help="the --jobs to time, one grid each (default: 1 and the machine's default)")
    p.add_argument("--threads", type=int, default=None, help="each cell's threads (default: CPUs // jobs, at least 1)")
    p.add_argument("--project_seeds", type=int, default=3, help="seeds of the projected full grid")
    p.add_argument("--preset", default="UCF", choices=["UCF", "tiny"], help="synthetic benchmark's sizes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--work_dir", type=Path, default=None, help="keep the benchmark and the grids here "
                   "(default: a temporary folder, removed at the end)")
    return p


def timed_grid(data_dir: Path, out_dir: Path, a, jobs: int, threads: int) -> float:
    argv = [sys.executable, "-m", "src.reproduce", "--methods", *a.methods, "--datasets", DATASET,
            "--families", *a.families, "--seeds", *a.seeds, "--epochs", str(a.epochs), "--n_batches", str(a.n_batches),
            "--device", a.device, "--data_dir", str(data_dir), "--out_dir", str(out_dir), "--threads", str(threads),
            "--jobs", str(jobs)]
    start = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"the grid in {out_dir} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - start


def full_schedule(method: str, family: str, data_dir: Path) -> List[Tuple[int, int]]:
    """(--epochs, --n_batches) of the cell's two run-script trainings, as main.py's parser reads them."""
    parsed = [get_main_parser().parse_known_args(cmd[1:])[0] for cmd in cell_commands(method, DATASET, family, data_dir)[:2]]
    return [(args.epochs, args.n_batches) for args in parsed]


def epochs_logged(run: Path) -> List[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def projected_cell(cell: Cell, a) -> float:
    """The cell's seconds at its full schedule, from its smoke run (module docstring): per stage, its
    steadiest epoch (the least training time, and the least of the rest) scaled; the first epoch's
    warm-up counts with the time outside the epochs, once per stage."""
    runs = [cell.dump_path / "runs" / name for name in exp_names(cell.method, DATASET, cell.family)]
    outside, total = read_usage(cell)["wall_s"], 0.0
    for run, (epochs, n_batches) in zip(runs, full_schedule(cell.method, cell.family, Path(cell.data_dir))):
        lines = epochs_logged(run)
        train = min(line["train_seconds"] for line in lines)
        rest = min(line["seconds"] - line["train_seconds"] for line in lines)
        outside -= len(lines) * (train + rest)
        epochs = epochs if len(lines) == a.epochs else len(lines)       # training-free: its one epoch
        total += epochs * (train * n_batches / a.n_batches + rest)
    return total + outside


def dealt(seconds: Sequence[float], jobs: int) -> float:
    """The wall time of cells of `seconds` dealt in order to `jobs` workers (each takes the next when free)."""
    free = [0.0] * jobs
    for s in seconds:
        heapq.heapreplace(free, free[0] + s)
    return max(free)


def projection(out_dir: Path, data_dir: Path, a, jobs: int) -> Tuple[float, Dict[Tuple[str, str], float]]:
    """The projected full grid's wall time at `jobs` and each (method, family)'s projected cell (mean over seeds)."""
    per = {(m, f): sum(projected_cell(Cell(m, DATASET, f, int(s), str(data_dir), str(out_dir)), a)
                       for s in a.seeds) / len(a.seeds)
           for m in a.methods for f in a.families if f in METHODS[m].families}
    return dealt([t for t in per.values() for _ in range(a.project_seeds)], jobs), per


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def main(argv=None) -> None:
    a = get_parser().parse_args(argv)
    a.methods = list(METHODS) if a.methods == ["all"] else a.methods
    a.families = list(FAMILIES) if a.families == ["all"] else a.families
    cpus = available_cpus()
    a.jobs = list(dict.fromkeys(a.jobs or [1, default_jobs(a.device)]))
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="bench_grid_"))
    try:
        data = (work / "data").resolve()
        if not (data / DATASET).is_dir():
            generate(data, DATASET, preset=a.preset, families=tuple(a.families))
        print(f"{cpus} CPUs; grid: {' '.join(a.methods)} x seeds {' '.join(a.seeds)} on {DATASET} {' '.join(a.families)} "
              f"({a.preset} synthetic), {a.epochs} epochs x {a.n_batches} batches, {a.device}")
        walls = {}
        for jobs in a.jobs:
            threads = a.threads or max(1, cpus // jobs)
            out = (work / f"jobs_{jobs}").resolve()
            walls[jobs] = wall = timed_grid(data, out, a, jobs, threads)
            full, per = projection(out, data, a, jobs)
            ratio = f", {walls[a.jobs[0]] / wall:.2f}x --jobs {a.jobs[0]}" if jobs != a.jobs[0] else ""
            print(f"--jobs {jobs} --threads {threads}: {wall:.1f} s{ratio}; projected full {DATASET} grid "
                  f"({len(per)} cells x {a.project_seeds} seeds, run-script schedules): {hours(full)}", flush=True)
            if jobs == a.jobs[0]:
                print("  projected full cells (s): " + ", ".join(f"{m} {f} {t:.0f}" for (m, f), t in per.items()))
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
