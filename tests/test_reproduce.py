"""src/reproduce.py: tables from hand-made results, and a tiny grid run locally and through
submitit's local executor (the Slurm path), re-run without retraining."""
import csv
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from src import reproduce
from src.errors import UserError
from src.families import DATASETS, FAMILIES
from src.published import PUBLISHED_CSV, load_published
from src.recipes import METHODS, exp_names
from src.reproduce import Cell, cell_text, make_tables
from src.runs import RunFolder

ROOT = Path(__file__).resolve().parents[1]


def fake(hm, zsl):
    return {"seen": 0.9, "unseen": 0.5, "hm": hm, "zsl": zsl, "beta": 0.2, "epoch": 3}


def md_rows(md):
    """The cells of every Markdown table row (tabulate pads them to the column width)."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.splitlines() if line.startswith("|")]


def test_tables_mean_std_and_missing_cells():
    results = {("avca", "UCF", "main", 1): fake(0.40, 0.30), ("avca", "UCF", "main", 2): fake(0.42, 0.34),
               ("ale", "UCF", "main", 1): fake(0.20, 0.10), ("avca", "UCF", "cls", 1): fake(0.5, 0.6)}
    t = make_tables(results, ["ale", "avca"], ["UCF"], ["main", "cls"], published={})
    gzsl = list(csv.reader(io.StringIO(t["results_gzsl.csv"])))
    # sample std of 40 and 42 = 1.414; one seed: no std; no seed: "-"; nothing published: empty
    assert gzsl == [["Method", "UCF main", "UCF main published", "UCF cls", "UCF cls published"],
                    ["ALE", "20.00", "", "-", ""], ["AVCA", "41.00 ± 1.41", "", "50.00", ""]]
    zsl = list(csv.reader(io.StringIO(t["results_zsl.csv"])))
    assert zsl[2] == ["AVCA", "32.00 ± 2.83", "", "60.00", ""]
    md = t["results.md"]
    assert ["Method", "UCF main", "UCF cls"] in md_rows(md) and ["AVCA", "41.00 ± 1.41", "50.00"] in md_rows(md)
    assert md.index("## GZSL") < md.index("## ZSL")
    long = list(csv.reader(io.StringIO(t["results_long.csv"])))
    assert long[0][:4] == ["method", "dataset", "family", "seed"] and len(long) == 5
    assert cell_text(pd.Series([3.0])) == "3.00" and cell_text(pd.Series([40.0, 42.0])) == "41.00 ± 1.41"



def test_tables_show_the_published_numbers_beside_the_measured_ones():
    """The numbers of src/published.csv beside each cell: AVCA's published UCF numbers on both
    families; none for f-VAEGAN-D2 on cls (it was not published there) or TCaF on main_temporal."""
    results = {("avca", "UCF", "main", 1): fake(0.40, 0.30), ("avca", "UCF", "main", 2): fake(0.42, 0.34),
               ("fvaegan", "UCF", "cls", 1): fake(0.2, 0.1), ("tcaf", "UCF", "main_temporal", 1): fake(0.5, 0.6),
               ("tcaf", "UCF", "cls_temporal", 1): fake(0.5, 0.6)}
    t = make_tables(results, ["fvaegan", "avca", "tcaf"], ["UCF"], ["main", "cls", "main_temporal", "cls_temporal"])
    pub = load_published()
    gzsl = {r["Method"]: r for r in csv.DictReader(io.StringIO(t["results_gzsl.csv"]))}
    assert gzsl["AVCA"]["UCF main"] == "41.00 ± 1.41" and gzsl["AVCA"]["UCF main published"] == "27.15"
    assert gzsl["AVCA"]["UCF cls published"] == f"{pub[('avca', 'UCF', 'cls')].hm:.2f}"
    assert gzsl["f-VAEGAN-D2"]["UCF cls"] == "20.00" and gzsl["f-VAEGAN-D2"]["UCF cls published"] == ""
    assert gzsl["TCaF"]["UCF main_temporal published"] == "" and gzsl["TCaF"]["UCF cls_temporal published"] != ""
    zsl = {r["Method"]: r for r in csv.DictReader(io.StringIO(t["results_zsl.csv"]))}
    assert zsl["AVCA"]["UCF main published"] == f"{pub[('avca', 'UCF', 'main')].zsl:.2f}" == "20.01"
    rows = {r[0]: r for r in md_rows(t["results.md"].split("## ZSL")[0])}       # the GZSL table
    assert rows["AVCA"][1] == "41.00 ± 1.41 (27.15)" and rows["f-VAEGAN-D2"][2] == "20.00"
    assert rows["TCaF"][3:] == ["50.00", f"50.00 ({pub[('tcaf', 'UCF', 'cls_temporal')].hm:.2f})"]
    assert "src/published.csv" in t["results.md"]


def test_every_published_number_names_a_known_cell_and_its_source():
    rows = list(csv.DictReader(open(PUBLISHED_CSV, newline="")))
    labels = {m.label for m in METHODS.values()}
    assert rows and all(r["method"] in labels and r["dataset"] in DATASETS and r["family"] in FAMILIES for r in rows)
    assert all(0.0 <= float(r[k]) <= 100.0 for r in rows for k in ("hm", "zsl"))
    assert all(r["source"].strip() for r in rows)
    assert all(r["family"] in METHODS[k].families for (k, _, _), r in zip(load_published(), rows)), \
        "a published number on a family its method does not run on"
    assert len(load_published()) == len(rows), "one row per method, dataset and family"


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(method="Nope"), "method 'Nope' is not a method label"),
    (lambda r: r.update(family="selavi"), "family 'selavi' is not a feature family"),
    (lambda r: r.update(hm="101"), "hm 101.0 is not a percentage"),
    (lambda r: r.update(zsl="n/a"), "zsl 'n/a' is not a number"),
    (lambda r: r.update(source=" "), "no source"),
])
def test_a_wrong_published_row_is_refused_naming_its_line(tmp_path, edit, message):
    row = {"method": "AVCA", "dataset": "UCF", "family": "main", "hm": "27.15", "zsl": "20.01", "source": "README"}
    edit(row)
    path = tmp_path / "published.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    with pytest.raises(UserError, match=f"line 2: {message}"):
        load_published(path)

def test_dry_run_prints_the_commands(tmp_path, capsys):
    assert reproduce.main(["--methods", "avca", "--datasets", "UCF", "--families", "cls", "--seeds", "7",
                           "--data_dir", str(tmp_path / "data"), "--out_dir", str(tmp_path / "out"),
                           "--epochs", "1", "--dry_run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "--seed 7" in lines[0] and "--epochs 1" in lines[1] and "--retrain_all" in lines[1]
    assert f"{tmp_path / 'out'}/seed_7/runs/attention_ucf_all_cls" in lines[2]
    assert not (tmp_path / "out").exists()


GRID = ["--methods", "devise", "--datasets", "UCF", "--families", "main", "--epochs", "1", "--n_batches", "2",
        "--device", "cpu", "--main_args", "--bs 32"]


def test_grid_locally_and_through_submitit(tiny_root, tmp_path, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "out"
    base = GRID + ["--data_dir", str(tiny_root.parent), "--out_dir", str(out)]
    assert reproduce.main(base + ["--seeds", "1"]) == 0                                   # locally
    assert reproduce.main(base + ["--seeds", "2", "--slurm", "--submitit_cluster", "local"]) == 0   # submitit
    assert list((out / "submitit").iterdir()), "no submitit job folder"
    capsys.readouterr()
    eval_json = Cell("devise", "UCF", "main", 1, str(tiny_root.parent), str(out)).eval_json
    mtime = eval_json.stat().st_mtime
    assert reproduce.main(base + ["--seeds", "1", "2"]) == 0                              # both finished: no run
    assert eval_json.stat().st_mtime == mtime
    md = (out / "results.md").read_text()
    assert "Mean ± std over seeds 1, 2" in md and md.strip() in capsys.readouterr().out
    row = next(r for r in csv.reader(io.StringIO((out / "results_gzsl.csv").read_text())) if r[0] == "DEVISE")
    values = [json.loads(Cell("devise", "UCF", "main", s, "", str(out)).eval_json.read_text())["hm"] for s in (1, 2)]
    mean, std = statistics.mean([100 * v for v in values]), statistics.stdev([100 * v for v in values])
    assert row[1] == f"{mean:.2f} ± {std:.2f}"
    published = f"{load_published()[('devise', 'UCF', 'main')].hm:.2f}"              # beside it, the paper's
    assert row[2] == published and f"{mean:.2f} ± {std:.2f} ({published})" in md
    assert (out / "logs" / "devise_ucf_val_main_seed1.log").read_text().count("$ ") == 3


def test_the_clip_column_holds_the_training_free_row_and_the_published_numbers(tiny_root, tmp_path):
    """On the synthetic CLIP/CLAP features: ClipClap, HSP-MoE and the training-free row each get their
    row of the CLIP/CLAP column; the first two with their published number beside the measured one, the
    training-free row with none (nobody published it)."""
    out = tmp_path / "out"
    assert reproduce.main(["--methods", "clipclap", "hspmoe", "frozen_clipclap", "--datasets", "UCF", "--families",
                           "clip", "--seeds", "1", "--epochs", "1", "--n_batches", "2", "--device", "cpu",
                           "--data_dir", str(tiny_root.parent), "--out_dir", str(out)]) == 0
    pub = load_published()
    for metric in ("gzsl", "zsl"):
        rows = {r[0]: r[1:] for r in csv.reader(io.StringIO((out / f"results_{metric}.csv").read_text()))}
        assert rows["Method"] == ["UCF clip", "UCF clip published"]
        for method in ("clipclap", "hspmoe", "frozen_clipclap"):
            result = json.loads(Cell(method, "UCF", "clip", 1, "", str(out)).eval_json.read_text())
            value = result["hm" if metric == "gzsl" else "zsl"]
            measured, published = rows[METHODS[method].label]
            assert measured == f"{100 * value:.2f}"
            paper = pub.get((method, "UCF", "clip"))
            assert published == ("" if paper is None else f"{paper.hm if metric == 'gzsl' else paper.zsl:.2f}")
    assert pub[("clipclap", "UCF", "clip")].hm == 55.97 and ("frozen_clipclap", "UCF", "clip") not in pub
    md = (out / "results.md").read_text()
    assert "| Frozen CLIP/CLAP (training-free) |" in md and "(55.97)" in md and "(67.03)" in md


def test_a_failed_cell_is_reported_and_the_tables_are_still_written(tmp_path):
    out = tmp_path / "out"
    code = reproduce.main(GRID + ["--data_dir", str(tmp_path / "missing"), "--out_dir", str(out), "--seeds", "1"])
    assert code == 1
    assert [r[1].split(" (")[0] for r in md_rows((out / "results.md").read_text()) if r[0] == "DEVISE"] == ["-", "-"]
    assert "does not exist" in (out / "logs" / "devise_ucf_val_main_seed1.log").read_text()


GRID_4 = ["--methods", "devise", "ale", "--datasets", "UCF", "--families", "main", "--seeds", "1", "2",
          "--epochs", "2", "--n_batches", "2", "--device", "cpu", "--threads", "1", "--main_args", "--bs 32"]
METRICS = ["method", "dataset", "family", "seed", "seen", "unseen", "gzsl", "zsl", "beta", "epoch"]


def long_rows(out):
    return list(csv.DictReader(io.StringIO((out / "results_long.csv").read_text())))


def metric_rows(out):
    return [{k: r[k] for k in METRICS} for r in long_rows(out)]


@pytest.fixture(scope="module")
def one_at_a_time(tiny_root, tmp_path_factory):
    """The four-cell grid (two methods x two seeds), one cell after another."""
    out = tmp_path_factory.mktemp("jobs1") / "out"
    assert reproduce.main(GRID_4 + ["--data_dir", str(tiny_root.parent), "--out_dir", str(out), "--jobs", "1"]) == 0
    return out


def test_jobs_2_gives_the_numbers_of_jobs_1_with_each_cells_time_and_memory(one_at_a_time, tiny_root, tmp_path):
    out = tmp_path / "out"
    assert reproduce.main(GRID_4 + ["--data_dir", str(tiny_root.parent), "--out_dir", str(out), "--jobs", "2"]) == 0
    assert metric_rows(out) == metric_rows(one_at_a_time) and len(metric_rows(out)) == 4
    for row in long_rows(out):
        assert float(row["wall_s"]) > 0 and 50 < float(row["peak_rss_mb"]) < 100_000 and row["threads"] == "1", row
    usage = json.loads(Cell("ale", "UCF", "main", 2, "", str(out)).usage_path.read_text())
    assert usage["done"] and usage["threads"] == 1
    before = (out / "results_long.csv").read_text()
    assert reproduce.main(GRID_4 + ["--data_dir", str(tiny_root.parent), "--out_dir", str(out), "--jobs", "2"]) == 0
    assert (out / "results_long.csv").read_text() == before, "a re-run that skips every cell keeps their usage"


def test_an_interrupted_grid_resumes_to_the_same_numbers(one_at_a_time, tiny_root, tmp_path):
    """The grid killed (SIGKILL, its cells' trainings with it) once a first epoch has ended, then run
    again: it ends with the numbers of the uninterrupted grid."""
    out = tmp_path / "out"
    argv = GRID_4 + ["--data_dir", str(tiny_root.parent), "--out_dir", str(out), "--jobs", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "src.reproduce", *argv], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("seed_*/runs/*/checkpoints/resume_state.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, "the grid ended before a first epoch"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = list(out.glob("seed_*/runs/*/evaluation.json"))
    assert len(finished) < 4, "the grid was not interrupted"
    assert reproduce.main(argv) == 0
    assert metric_rows(out) == metric_rows(one_at_a_time)


def test_two_trainings_never_share_a_run_folder_in_a_grid(tiny_root, tmp_path):
    """A cell whose stage-1 folder another training holds fails (the run-folder lock), the others of
    the grid run; once the folder is free, the grid's next run completes that cell."""
    out = tmp_path / "out"
    argv = GRID + ["--data_dir", str(tiny_root.parent), "--out_dir", str(out), "--seeds", "1", "2", "--jobs", "2"]
    held = Cell("devise", "UCF", "main", 1, "", str(out))
    lock = RunFolder(held.dump_path / "runs" / exp_names("devise", "UCF", "main")[0]).lock()
    try:
        assert reproduce.main(argv) == 1
    finally:
        lock.release()
    assert "is being written by another training" in held.log_path.read_text()
    assert not held.eval_json.exists() and Cell("devise", "UCF", "main", 2, "", str(out)).eval_json.is_file()
    assert reproduce.main(argv) == 0 and held.eval_json.is_file()


def test_jobs_and_threads_defaults_come_from_the_machine():
    assert reproduce.default_jobs("cpu", cpus=2) == 2 and reproduce.default_jobs("cpu", cpus=16) == 16
    for jobs in ("1", "2"):       # one thread a cell whatever --jobs, so that --jobs never changes the numbers
        args = reproduce.get_parser().parse_args(["--methods", "devise", "--families", "main", "--jobs", jobs])
        args.given = {"methods", "families", "jobs"}
        assert {c.threads for c in reproduce.grid(args)} == {1}
    assert reproduce.given_threads(["--bs", "32", "--num_threads", "3"]) == 3
    assert reproduce.given_threads(["--num_threads=2"]) == 2 and reproduce.given_threads(["--num_threads", "0"]) is None
    assert reproduce.given_threads(["--num_threads", "3", "--num_threads=4"]) == 4      # the last, as main.py reads it
    assert reproduce.given_threads(["--num_threads", "x"]) is None and reproduce.given_threads(["--cfg", "c.yaml"]) is None
    with pytest.raises(SystemExit):
        reproduce.main(["--slurm", "--jobs", "2"])
