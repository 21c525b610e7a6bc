"""The seed's results tables: methods x datasets x feature families x seeds, both stages and the
evaluation of each, then GZSL (HM) and ZSL tables (mean +- std over seeds).

    python -m src.reproduce --data_dir avgzsl_benchmark_datasets --out_dir reproduction
    python -m src.reproduce --methods avca ale --datasets UCF --families main --seeds 1 2 \\
        --data_dir DIR --out_dir DIR --epochs 2 --n_batches 5                     # a smoke grid
    python -m src.reproduce ... --jobs 4 --threads 2                              # 4 cells at once here
    python -m src.reproduce ... --slurm --slurm_partition gpu --slurm_time 600    # one Slurm job per cell

A cell (method, dataset, family, seed) runs main.py (stage 1), main.py --retrain_all
--save_checkpoints (stage 2) and get_evaluation.py as subprocesses, with the flags of the run
scripts (`src/recipes.py` is the one table both read).
Runs go to {out_dir}/seed_{seed}/runs/{exp_name}/, logs to {out_dir}/logs/. Re-running the
command skips every cell whose evaluation JSON exists, continues interrupted trainings
(--resume) and restarts those killed before their first epoch ended (--overwrite). Locally,
--jobs cells run at once (default: one per CPU on the CPU, up to 4 on a GPU), each with --threads
CPU threads (default 1; the numbers depend on it, never on --jobs),
under one progress line; each cell's wall time, peak memory and threads go to
{out_dir}/logs/{run}_seed{seed}.usage.json and results_long.csv. Tables:
{out_dir}/results.md, results_gzsl.csv, results_zsl.csv (the tables, with the published number beside
each cell: src/published.csv, each with its source; empty where none was published) and
results_long.csv (one row per cell and seed), written atomically, also when some cells failed
(shown as "-").

Methods x families is a grid with holes (TCaF runs on the temporal families only, ClipClap on clip):
a method skips the families it does not run on, with one logged line per method naming them. A
method named in --methods that runs on none of --families, or a family named in --families that
none of the methods runs on, would be a row or column of nothing: refused (exit 2) before any run.
"""
import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pandas as pd
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .families import AVERAGED_FAMILIES, DATASETS, FAMILIES
from .errors import ArgumentParser, UserError, command_line_fields, exit_on_user_error
from .io_utils import atomic_write_json, atomic_write_text
from .models.flags import positive_int
from .published import PUBLISHED_CSV, Published, load_published
from .recipes import METHODS, cell_commands, exp_names, not_its_families
from .runtime import available_cpus, resolve_device

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("avgzsl.reproduce")


# -- running a cell ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    method: str
    dataset: str
    family: str
    seed: int
    data_dir: str
    out_dir: str
    extra: tuple = ()
    threads: int = 0            # OMP_NUM_THREADS of its runs (main.py's and get_evaluation's); 0: theirs

    @property
    def dump_path(self) -> Path:
        return Path(self.out_dir) / f"seed_{self.seed}"

    @property
    def eval_json(self) -> Path:
        return self.dump_path / "runs" / exp_names(self.method, self.dataset, self.family)[1] / "evaluation.json"

    @property
    def log_path(self) -> Path:
        return Path(self.out_dir) / "logs" / f"{exp_names(self.method, self.dataset, self.family)[0]}_seed{self.seed}.log"

    @property
    def usage_path(self) -> Path:
        """Its wall time and peak memory (see run_cell), beside its log: kept when its runs are redone."""
        return self.log_path.with_suffix(".usage.json")

    def __str__(self) -> str:
        return f"{self.method} {self.dataset} {self.family} seed {self.seed}"


def run_command(argv: List[str], logf, env: dict) -> Tuple[int, float, float]:
    """One subprocess, its output to `logf`: (exit code, wall seconds, peak resident memory in MB).
    os.wait4 gives the child's own peak (getrusage(RUSAGE_CHILDREN) would be the largest of all the
    children so far, those of other cells running at the same time included)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT, env=env)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:                   # Ctrl-C: stop the child too
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)      # reaped here: Popen must not wait again
    return proc.returncode, time.monotonic() - start, usage.ru_maxrss / 1024      # Linux: ru_maxrss in KiB


def read_usage(cell: Cell) -> dict:
    try:
        return json.loads(cell.usage_path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def run_cell(cell: Cell) -> dict:
    """Stage 1, stage 2 and the evaluation of one cell (subprocesses); returns the evaluation JSON.
    Writes {log}.usage.json after each command: the cell's wall time (summed over the commands, also
    over the tries of an interrupted cell), its peak memory (the largest of its processes) and its
    threads. A top-level function, so that submitit can pickle it."""
    if cell.eval_json.is_file():
        return json.loads(cell.eval_json.read_text())
    cell.log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if cell.threads:
        env["OMP_NUM_THREADS"] = str(cell.threads)
    before = read_usage(cell)
    usage = {"wall_s": 0.0, "peak_rss_mb": 0.0} if before.get("done") else before
    usage = {"wall_s": usage.get("wall_s", 0.0), "peak_rss_mb": usage.get("peak_rss_mb", 0.0),
             "threads": cell.threads or None, "done": False}
    with open(cell.log_path, "a") as logf:
        for cmd in cell_commands(cell.method, cell.dataset, cell.family, cell.data_dir, cell.dump_path.resolve(),
                                 cell.seed, cell.extra):
            argv = [sys.executable, str(REPO / cmd[0]), *cmd[1:]]
            logf.write("$ " + " ".join(shlex.quote(a) for a in argv) + "\n")
            logf.flush()
            code, wall_s, peak_mb = run_command(argv, logf, env)
            usage.update(wall_s=usage["wall_s"] + wall_s, peak_rss_mb=max(usage["peak_rss_mb"], peak_mb))
            atomic_write_json(usage, cell.usage_path)
            if code != 0:
                logf.flush()
                tail = "".join(Path(cell.log_path).read_text().splitlines(keepends=True)[-15:])
                raise RuntimeError(f"{cell}: {cmd[0]} exited with {code}; log {cell.log_path}:\n{tail}")
    atomic_write_json({**usage, "done": True}, cell.usage_path)
    return json.loads(cell.eval_json.read_text())


# -- tables --------------------------------------------------------------------------------------

LONG_COLUMNS = ["method", "dataset", "family", "seed", "seen", "unseen", "gzsl", "zsl", "beta", "epoch"]
USAGE_COLUMNS = {"wall_s": "{:.1f}", "peak_rss_mb": "{:.0f}", "threads": "{:.0f}"}    # run_cell's usage.json


def usage_values(result: dict) -> list:
    """A result's "usage" (run_cell's usage.json) in USAGE_COLUMNS order, None where unknown."""
    usage = result.get("usage") or {}
    return [usage.get(k) for k in USAGE_COLUMNS]


def cell_text(values: pd.Series) -> str:
    """The seeds of one table cell: "mean ± sample std", the mean alone for one seed."""
    return f"{values.mean():.2f}" if len(values) == 1 else f"{values.mean():.2f} ± {values.std():.2f}"


PUBLISHED_FIELD = {"gzsl": "hm", "zsl": "zsl"}     # a table's metric -> its field in src/published.csv


def published_table(published: Dict[tuple, Published], methods: Sequence[str], columns: Sequence[tuple],
                    metric: str) -> pd.DataFrame:
    """The published numbers of a table's cells as text, "" where none was published; rows and columns
    named as the table's (method labels, "{dataset} {family}")."""
    field = PUBLISHED_FIELD[metric]
    return pd.DataFrame([[f"{getattr(published[(m, d, f)], field):.2f}" if (m, d, f) in published else ""
                          for d, f in columns] for m in methods],
                        index=pd.Index([METHODS[m].label for m in methods], name="Method"),
                        columns=[f"{d} {f}" for d, f in columns])


def make_tables(results: Dict[tuple, dict], methods: Sequence[str], datasets: Sequence[str],
                families: Sequence[str], published: Optional[Dict[tuple, Published]] = None) -> Dict[str, str]:
    """results {(method, dataset, family, seed): evaluation JSON} -> {file name: text}.

    Tables of GZSL (HM) and ZSL in percent, methods as rows, dataset x family as columns
    (grouped by family: every dataset of the first family, then of the next),
    "mean ± std" over the seeds that finished (sample std), "-" where none did. Beside each
    cell, the published number (`published`, default src/published.csv): in parentheses in
    results.md, a "{column} published" column after it in the CSV tables; empty where none was."""
    published = load_published() if published is None else published
    runs = pd.DataFrame([(*cell, *(100 * r[k] for k in ("seen", "unseen", "hm", "zsl")), r["beta"], r["epoch"],
                          *usage_values(r)) for cell, r in results.items()], columns=LONG_COLUMNS + list(USAGE_COLUMNS))
    columns = [(d, f) for f in families for d in datasets]                       # families as groups
    md, out = [], {}
    for metric, what in (("gzsl", "harmonic mean of seen and unseen"), ("zsl", "unseen only")):
        table = (runs.pivot_table(index="method", columns=["dataset", "family"], values=metric, aggfunc=cell_text)
                 .reindex(index=list(methods), columns=pd.MultiIndex.from_tuples(columns))
                 .astype(object).fillna("-"))
        paper = published_table(published, methods, columns, metric)
        table.index, table.columns = paper.index, paper.columns
        beside = table.where(paper == "", table + " (" + paper + ")")
        md += [f"## {metric.upper()} ({what}, %)", "",
               beside.to_markdown(tablefmt="github", disable_numparse=True), "",
               f"In parentheses: the published number, where one was ({PUBLISHED_CSV.relative_to(REPO)} names "
               "the source of each).", ""]
        both = pd.concat([table, paper.add_suffix(" published")], axis=1)[
            [c for n in paper.columns for c in (n, f"{n} published")]]
        out[f"results_{metric}.csv"] = both.to_csv(lineterminator="\r\n")
    seeds = sorted(set(runs["seed"]))
    out["results.md"] = (f"# Audio-visual GZSL results\n\nMean ± std over seeds {', '.join(map(str, seeds)) or '-'} "
                         f"(stage-2 test numbers of get_evaluation.py).\n\n" + "\n".join(md))
    order = list(METHODS).index
    long = runs.sort_values(["method", "dataset", "family", "seed"],
                            key=lambda col: col.map(order) if col.name == "method" else col)
    long = long.assign(**{k: long[k].map("{:.4f}".format) for k in ("seen", "unseen", "gzsl", "zsl")},
                       beta=long["beta"].map("{:.6f}".format),
                       **{k: long[k].map(lambda v, f=f: "" if pd.isna(v) else f.format(v)) for k, f in USAGE_COLUMNS.items()})
    out["results_long.csv"] = long.to_csv(index=False, lineterminator="\r\n")
    return out


def write_tables(out_dir: Path, tables: Dict[str, str]) -> None:
    for name, text in tables.items():
        atomic_write_text(text, Path(out_dir) / name)


# -- the grid ------------------------------------------------------------------------------------

def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"account\": \"x\"}}', got {text!r}")
    return value


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m src.reproduce", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                   help="table rows")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--families", nargs="+", default=list(AVERAGED_FAMILIES), choices=list(FAMILIES),
                   help=" and/or ".join(f"{k} ({f.networks}, {f.split})" for k, f in FAMILIES.items())
                   + "; a method skips those it does not run on (TCaF: the temporal ones only; ClipClap: clip)")
    p.add_argument("--seeds", nargs="+", type=int, default=[42], help="--seed of each repetition")
    p.add_argument("--data_dir", default=os.environ.get("AVGZSL_DATA", "avgzsl_benchmark_datasets"),
                   help="folder holding UCF/, ActivityNet/, VGGSound/, and ClipClap/{UCF,...}/ for the clip "
                        "family (default: $AVGZSL_DATA or avgzsl_benchmark_datasets)")
    p.add_argument("--out_dir", type=Path, default=Path("reproduction"), help="runs, logs and tables")
    p.add_argument("--epochs", type=int, default=None, help="override the scripts' 50 epochs (smoke runs)")
    p.add_argument("--n_batches", type=int, default=None, help="override the scripts' 500 batches per epoch")
    p.add_argument("--device", default=None, help="main.py --device (default: cuda when available)")
    p.add_argument("--main_args", default="", help="more main.py flags for every training, one shell-quoted string")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="cells run at once here (default: one per CPU on the CPU, each with one thread; up to 4 "
                        "sharing a GPU); not with --slurm")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads of each cell's runs (their OMP_NUM_THREADS; a --num_threads in --main_args "
                        "wins for main.py); default 1, whatever --jobs: the numbers depend on the thread count, "
                        "never on --jobs")
    p.add_argument("--dry_run", action="store_true", help="print the commands of the unfinished cells and stop")
    g = p.add_argument_group("Slurm (submitit): one job per cell")
    g.add_argument("--slurm", action="store_true", help="submit the cells to Slurm instead of running them here")
    g.add_argument("--slurm_partition", default=None)
    g.add_argument("--slurm_time", type=int, default=24 * 60, help="minutes per job")
    g.add_argument("--slurm_gpus", type=int, default=1, help="GPUs per job")
    g.add_argument("--slurm_cpus", type=int, default=8, help="CPUs per job")
    g.add_argument("--slurm_mem_gb", type=int, default=64)
    g.add_argument("--slurm_parallelism", type=int, default=32, help="jobs running at once (array throttle)")
    g.add_argument("--slurm_additional", type=json_object, default={}, help="extra sbatch parameters as JSON, e.g. '{\"account\": \"x\"}'")
    g.add_argument("--submitit_cluster", default="slurm", choices=["slurm", "local", "debug"],
                   help="submitit executor (local/debug: run the jobs on this machine, for tests)")
    p.set_defaults(given=frozenset())       # the flags the user named (main: command_line_fields)
    return p


def grid_axes(args) -> Tuple[List[str], List[str]]:
    """The table's rows and columns: the methods and families with at least one cell. A method skips the
    families it does not run on (one logged line per method; the methods with no cell, in one line); a
    method or a family the user named that would have no cell at all is a UserError, as a row or column
    of nothing would be a silent loss."""
    methods, families = list(dict.fromkeys(args.methods)), list(dict.fromkeys(args.families))
    runs_on = {m: [f for f in families if f in METHODS[m].families] for m in methods}
    empty = [m for m in methods if not runs_on[m]]
    if "methods" in args.given and empty:
        raise UserError("; ".join(not_its_families(m, families) for m in empty) +
                        ": no cell in this grid; add its families to --families or drop it from --methods")
    lonely = [f for f in families if not any(f in runs_on[m] for m in methods)]
    if "families" in args.given and lonely:
        who = lambda f: ", ".join(m for m, e in METHODS.items() if f in e.families)
        raise UserError("; ".join(f"none of --methods {' '.join(methods)} runs on {f} ({who(f)} does)" for f in lonely)
                        + ": no cell in this grid; add such a method to --methods or drop it from --families")
    for m in methods:
        if runs_on[m] and len(runs_on[m]) < len(families):
            log.info("skipped: %s", not_its_families(m, families))
    if empty:       # --methods left at its default: the methods of other families, in one line
        log.info("skipped: %s (no cell on %s)", ", ".join(empty), ", ".join(families))
    return [m for m in methods if runs_on[m]], [f for f in families if f not in lonely]


def grid(args) -> List[Cell]:
    """The cells, in table order; each with its threads (--threads, a --num_threads of --main_args, else 1)."""
    methods, families = grid_axes(args)
    extra = list(shlex.split(args.main_args))
    for name in ("epochs", "n_batches", "device"):
        if vars(args)[name] is not None:
            extra += [f"--{name}", str(vars(args)[name])]
    # absolute: the cells' subprocesses run in the repository root
    data_dir, out_dir = Path(args.data_dir).resolve(), Path(args.out_dir).resolve()
    threads = args.threads or given_threads(extra) or (0 if args.slurm else 1)
    return [Cell(m, d, f, s, str(data_dir), str(out_dir), tuple(extra), threads)
            for m in methods for d in dict.fromkeys(args.datasets) for f in families for s in dict.fromkeys(args.seeds)
            if f in METHODS[m].families]


def given_threads(main_args: Sequence[str]) -> Optional[int]:
    """A --num_threads N in --main_args (N > 0; the last one, as main.py reads it): the cells' threads,
    get_evaluation's too. A bad value is main.py's to refuse."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--num_threads", default="")
    value = parser.parse_known_args(list(main_args))[0].num_threads
    return int(value) if value.isdigit() and int(value) > 0 else None


def default_jobs(device: Optional[str], cpus: Optional[int] = None) -> int:
    """Cells at once without --jobs. On the CPU, one per CPU, each with one thread: a cell's models are
    small, so two 1-thread cells on 2 cores finish two epochs in about the time one 1-thread epoch
    takes (44.6 s for AVCA here), where one 2-thread cell after another takes 28 s each (README
    "Speed"). On a GPU, up to 4 cells share it (a small model leaves it mostly idle), one per CPU at most."""
    cpus = cpus or available_cpus()
    return cpus if resolve_device(device).type == "cpu" else min(4, cpus)


def clock(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}" if minutes >= 60 else f"{minutes}:{s:02d}"


class Progress:
    """One line for the whole grid: cells done (finished or failed), running and waiting, the time
    since the start and an estimate of the time left (the cells not done at the rate of those done).
    On a terminal, a status line kept below the log; the line also heads each cell's log line."""

    def __init__(self, total: int):
        self.total, self.done, self.running, self.start = total, 0, 0, time.monotonic()
        self.bar = tqdm(total=total, file=sys.stderr, bar_format="grid: {desc}", disable=not sys.stderr.isatty())
        self.show()

    def text(self) -> str:
        elapsed = time.monotonic() - self.start
        eta = f"~{clock(elapsed / self.done * (self.total - self.done))} left" if self.done else "time left unknown"
        return (f"{self.done}/{self.total} cells done, {self.running} running, "
                f"{self.total - self.done - self.running} waiting; {clock(elapsed)} elapsed, {eta}")

    def show(self) -> None:
        self.bar.set_description_str(self.text())

    def started(self) -> None:
        self.running += 1
        self.show()

    def finished(self) -> None:
        self.running, self.done = self.running - 1, self.done + 1
        self.show()

    def close(self) -> None:
        self.bar.close()


def run_local(cells: List[Cell], jobs: int = 1) -> Dict[Cell, object]:
    """The cells here, `jobs` at once (a thread each, waiting on the cell's subprocesses; the
    run-folder lock keeps two trainings off one folder), with one progress line for all."""
    progress, out = Progress(len(cells)), {}
    lock = threading.Lock()

    def one(cell: Cell):
        with lock:
            progress.started()
            log.info("[%s] started: %s", progress.text(), cell)
        try:
            return run_cell(cell)
        finally:
            with lock:
                progress.finished()

    def report(future) -> None:
        cell = futures[future]
        try:
            out[cell] = future.result()
            log.info("[%s] %s: GZSL %.2f ZSL %.2f (%s)", progress.text(), cell, 100 * out[cell]["hm"],
                     100 * out[cell]["zsl"], usage_text(read_usage(cell)))
        except Exception as err:  # noqa: BLE001 - one failed cell must not stop the grid
            log.error("[%s] %s", progress.text(), err)
            out[cell] = err

    with logging_redirect_tqdm(), ThreadPoolExecutor(max(1, min(jobs, len(cells)))) as pool:
        futures = {pool.submit(one, cell): cell for cell in cells}
        try:
            for future in as_completed(futures):
                report(future)
        except BaseException:            # Ctrl-C: start no other cell (the running ones got it too)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    progress.close()
    return {cell: out[cell] for cell in cells}


def usage_text(usage: dict) -> str:
    return f"{usage.get('wall_s', 0):.0f} s, peak {usage.get('peak_rss_mb', 0):.0f} MB"


def run_submitit(cells: List[Cell], args) -> Dict[Cell, object]:
    import submitit
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    executor = submitit.AutoExecutor(folder=str(Path(args.out_dir) / "submitit" / "%j"), cluster=args.submitit_cluster)
    params = dict(name="avgzsl", timeout_min=args.slurm_time, gpus_per_node=args.slurm_gpus,
                  cpus_per_task=args.slurm_cpus, mem_gb=args.slurm_mem_gb, slurm_array_parallelism=args.slurm_parallelism)
    if args.slurm_partition:
        params["slurm_partition"] = args.slurm_partition
    if args.slurm_additional:
        params["slurm_additional_parameters"] = args.slurm_additional
    if args.submitit_cluster != "slurm":          # local/debug executors take the generic parameters only
        params = {k: v for k, v in params.items() if not k.startswith("slurm_") and k not in ("gpus_per_node", "mem_gb", "cpus_per_task")}
    executor.update_parameters(**params)
    with executor.batch():
        jobs = [executor.submit(run_cell, cell) for cell in cells]
    log.info("submitted %d jobs (%s)", len(jobs), ", ".join(str(j.job_id) for j in jobs[:5]) + (" ..." if len(jobs) > 5 else ""))
    out = {}
    for cell, job in zip(cells, jobs):
        try:
            out[cell] = job.result()
            log.info("%s: GZSL %.2f ZSL %.2f (job %s)", cell, 100 * out[cell]["hm"], 100 * out[cell]["zsl"], job.job_id)
        except Exception as err:  # noqa: BLE001
            log.error("%s: job %s failed: %s", cell, job.job_id, err)
            out[cell] = err
    return out


def main(argv=None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    args.given = command_line_fields(get_parser, sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.slurm and args.jobs:
        parser.error("--jobs runs cells on this machine; with --slurm, --slurm_parallelism throttles the jobs")
    with exit_on_user_error(parser.prog):
        return run_grid(args)


def run_grid(args) -> int:
    cells = grid(args)
    published = load_published()          # a broken file fails here, before any run
    methods = list(dict.fromkeys(c.method for c in cells))              # the rows and columns with cells
    families = [f for f in dict.fromkeys(args.families) if any(c.family == f for c in cells)]
    todo = [c for c in cells if not c.eval_json.is_file()]
    log.info("%d cells, %d finished, %d to run", len(cells), len(cells) - len(todo), len(todo))
    if args.dry_run:
        for cell in todo:
            for cmd in cell_commands(cell.method, cell.dataset, cell.family, cell.data_dir, cell.dump_path, cell.seed,
                                     cell.extra):
                print("python " + " ".join(shlex.quote(a) for a in cmd))
        return 0
    if todo and not args.slurm:
        jobs = args.jobs or default_jobs(args.device)
        log.info("%d at once, %d CPU threads each%s", min(jobs, len(todo)), todo[0].threads,
                 "" if args.jobs else f" (--jobs default on {available_cpus()} CPUs)")
    outcome = (run_submitit(todo, args) if args.slurm else run_local(todo, jobs)) if todo else {}
    results = {(c.method, c.dataset, c.family, c.seed): {**json.loads(c.eval_json.read_text()), "usage": read_usage(c)}
               for c in cells if c.eval_json.is_file()}
    tables = make_tables(results, methods, list(dict.fromkeys(args.datasets)), families, published)
    write_tables(args.out_dir, tables)
    print(tables["results.md"])
    failed = [c for c, r in outcome.items() if isinstance(r, Exception)]
    log.info("tables in %s%s", args.out_dir, f"; {len(failed)} cells failed (see {args.out_dir}/logs)" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
