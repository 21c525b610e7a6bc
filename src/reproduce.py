"""The seed's results tables: methods x datasets x feature families x seeds, both stages and the
evaluation of each, then GZSL (HM) and ZSL tables (mean +- std over seeds).

    python -m src.reproduce --data_dir avgzsl_benchmark_datasets --out_dir reproduction
    python -m src.reproduce --methods avca ale --datasets UCF --families main --seeds 1 2 \\
        --data_dir DIR --out_dir DIR --epochs 2 --n_batches 5                     # a smoke grid
    python -m src.reproduce ... --slurm --slurm_partition gpu --slurm_time 600    # one Slurm job per cell

A cell (method, dataset, family, seed) runs main.py (stage 1), main.py --retrain_all
--save_checkpoints (stage 2) and get_evaluation.py as subprocesses, with the flags of the run
scripts (`src/recipes.py` is the one table both read).
Runs go to {out_dir}/seed_{seed}/runs/{exp_name}/, logs to {out_dir}/logs/. Re-running the
command skips every cell whose evaluation JSON exists, continues interrupted trainings
(--resume) and restarts those killed before their first epoch ended (--overwrite). Tables:
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
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pandas as pd

from .families import AVERAGED_FAMILIES, DATASETS, FAMILIES
from .errors import ArgumentParser, UserError, command_line_fields, exit_on_user_error
from .io_utils import atomic_write_text
from .published import PUBLISHED_CSV, Published, load_published
from .recipes import METHODS, cell_commands, exp_names, not_its_families

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

    @property
    def dump_path(self) -> Path:
        return Path(self.out_dir) / f"seed_{self.seed}"

    @property
    def eval_json(self) -> Path:
        return self.dump_path / "runs" / exp_names(self.method, self.dataset, self.family)[1] / "evaluation.json"

    @property
    def log_path(self) -> Path:
        return Path(self.out_dir) / "logs" / f"{exp_names(self.method, self.dataset, self.family)[0]}_seed{self.seed}.log"

    def __str__(self) -> str:
        return f"{self.method} {self.dataset} {self.family} seed {self.seed}"


def run_cell(cell: Cell) -> dict:
    """Stage 1, stage 2 and the evaluation of one cell (subprocesses); returns the evaluation JSON.
    A top-level function, so that submitit can pickle it."""
    if cell.eval_json.is_file():
        return json.loads(cell.eval_json.read_text())
    cell.log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(cell.log_path, "a") as logf:
        for cmd in cell_commands(cell.method, cell.dataset, cell.family, cell.data_dir, cell.dump_path.resolve(),
                                 cell.seed, cell.extra):
            argv = [sys.executable, str(REPO / cmd[0]), *cmd[1:]]
            logf.write("$ " + " ".join(shlex.quote(a) for a in argv) + "\n")
            logf.flush()
            proc = subprocess.run(argv, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT, env=env)
            if proc.returncode != 0:
                logf.flush()
                tail = "".join(Path(cell.log_path).read_text().splitlines(keepends=True)[-15:])
                raise RuntimeError(f"{cell}: {cmd[0]} exited with {proc.returncode}; log {cell.log_path}:\n{tail}")
    return json.loads(cell.eval_json.read_text())


# -- tables --------------------------------------------------------------------------------------

LONG_COLUMNS = ["method", "dataset", "family", "seed", "seen", "unseen", "gzsl", "zsl", "beta", "epoch"]


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
    runs = pd.DataFrame([(*cell, *(100 * r[k] for k in ("seen", "unseen", "hm", "zsl")), r["beta"], r["epoch"])
                         for cell, r in results.items()], columns=LONG_COLUMNS)
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
                       beta=long["beta"].map("{:.6f}".format))
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
    methods, families = grid_axes(args)
    extra = list(shlex.split(args.main_args))
    for name in ("epochs", "n_batches", "device"):
        if vars(args)[name] is not None:
            extra += [f"--{name}", str(vars(args)[name])]
    # absolute: the cells' subprocesses run in the repository root
    data_dir, out_dir = Path(args.data_dir).resolve(), Path(args.out_dir).resolve()
    return [Cell(m, d, f, s, str(data_dir), str(out_dir), tuple(extra))
            for m in methods for d in dict.fromkeys(args.datasets) for f in families for s in dict.fromkeys(args.seeds)
            if f in METHODS[m].families]


def run_local(cells: List[Cell]) -> Dict[Cell, object]:
    out = {}
    for i, cell in enumerate(cells):
        log.info("[%d/%d] %s", i + 1, len(cells), cell)
        try:
            out[cell] = run_cell(cell)
            log.info("[%d/%d] %s: GZSL %.2f ZSL %.2f", i + 1, len(cells), cell, 100 * out[cell]["hm"],
                     100 * out[cell]["zsl"])
        except Exception as err:  # noqa: BLE001 - one failed cell must not stop the grid
            log.error("%s", err)
            out[cell] = err
    return out


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
    outcome = (run_submitit(todo, args) if args.slurm else run_local(todo)) if todo else {}
    results = {(c.method, c.dataset, c.family, c.seed): json.loads(c.eval_json.read_text())
               for c in cells if c.eval_json.is_file()}
    tables = make_tables(results, methods, list(dict.fromkeys(args.datasets)), families, published)
    write_tables(args.out_dir, tables)
    print(tables["results.md"])
    failed = [c for c, r in outcome.items() if isinstance(r, Exception)]
    log.info("tables in %s%s", args.out_dir, f"; {len(failed)} cells failed (see {args.out_dir}/logs)" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
