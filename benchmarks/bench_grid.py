"""Wall time of a smoke grid of `python -m src.reproduce` run one cell at a time (--jobs 1, each
cell with as many threads as CPUs) and with the defaults (--jobs one cell per CPU on the CPU, each with
--threads 1), on a synthetic UCF benchmark; prints both and their ratio.

    python benchmarks/bench_grid.py                                  # 4 AVCA cells, 2 epochs x 50 batches
    python benchmarks/bench_grid.py --methods avca ale --seeds 1 2 --epochs 1 --n_batches 5 --preset tiny
    python benchmarks/bench_grid.py --methods all --families all --seeds 1 2 --epochs 2 --n_batches 20   # the smoke grid

Run it on an otherwise idle machine: a neighbour's load changes both times. The two grids train
with other thread counts, so their numbers differ at rounding level (README "Speed").
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.families import FAMILIES  # noqa: E402
from src.recipes import METHODS  # noqa: E402
from src.reproduce import default_jobs  # noqa: E402
from src.runtime import available_cpus  # noqa: E402
from src.synthetic import generate  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["avca"], help="methods-table keys, or all")
    p.add_argument("--families", nargs="+", default=["main"], help="feature families, or all (each is generated)")
    p.add_argument("--seeds", nargs="+", default=["1", "2", "3", "4"])
    p.add_argument("--epochs", default="2")
    p.add_argument("--n_batches", default="50")
    p.add_argument("--preset", default="UCF", choices=["UCF", "tiny"], help="synthetic benchmark's sizes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--work_dir", type=Path, default=None, help="keep the benchmark and the grids here "
                   "(default: a temporary folder, removed at the end)")
    return p


def timed_grid(data_dir: Path, out_dir: Path, a, jobs, threads: int) -> float:
    argv = [sys.executable, "-m", "src.reproduce", "--methods", *a.methods, "--datasets", "UCF", "--families", *a.families,
            "--seeds", *a.seeds, "--epochs", a.epochs, "--n_batches", a.n_batches, "--device", a.device,
            "--data_dir", str(data_dir), "--out_dir", str(out_dir), "--threads", str(threads),
            *(["--jobs", str(jobs)] if jobs else [])]
    start = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"the grid in {out_dir} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - start


def main(argv=None) -> None:
    a = get_parser().parse_args(argv)
    a.methods = list(METHODS) if a.methods == ["all"] else a.methods
    a.families = list(FAMILIES) if a.families == ["all"] else a.families
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="bench_grid_"))
    try:
        data = work / "data"
        if not (data / "UCF").is_dir():
            generate(data, "UCF", preset=a.preset, families=tuple(a.families))
        cpus, jobs = available_cpus(), default_jobs(a.device)
        print(f"{cpus} CPUs; grid: {' '.join(a.methods)} x seeds {' '.join(a.seeds)} on UCF {' '.join(a.families)} ({a.preset} "
              f"synthetic), {a.epochs} epochs x {a.n_batches} batches, {a.device}")
        one = timed_grid(data, work / "jobs_1", a, 1, cpus)
        print(f"--jobs 1 --threads {cpus}: {one:.1f} s", flush=True)
        many = timed_grid(data, work / "jobs_default", a, None, 1)
        print(f"--jobs default = {jobs} --threads 1: {many:.1f} s")
        print(f"ratio (--jobs 1 / default): {one / many:.2f}x")
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
