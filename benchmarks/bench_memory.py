"""Peak resident memory of a stage-1 training against the feature bytes of the splits it uses, on a
scaled synthetic benchmark (TCaF on the temporal VGGish/C3D features of ActivityNet by default).

    python benchmarks/bench_memory.py                                  # ActivityNet cls_temporal, --scale 0.05
    python benchmarks/bench_memory.py --scale 0.15 --work_dir /tmp/mem # kept for a rerun (the data is reused)
    python benchmarks/bench_memory.py --dataset UCF --scale 1          # UCF, for comparison

Generates the synthetic dataset (or reuses the one in --work_dir), removes its feature cache, then
runs, each in a fresh process whose peak resident set size (ru_maxrss of os.wait4, the process
and its children) is measured:
  - `import`: Python importing the training code (what any process costs before any data);
  - `cache build`: the dataset reading the stage-1 feature folders of the train and val splits and
    writing their cache;
  - `splits`: the train and val splits made from the cache (it prints their feature bytes: the
    audio and video tensors' nbytes, the denominator of the table);
  - `training`: main.py, one TCaF stage-1 epoch of --n_batches batches and its validation (every
    val video, at most --test_maxlen tokens), the cache present;
  - with --first_run, `first run`: the same main.py without a cache (it builds it, then trains).
Prints one row per process: peak RSS in MB, its ratio to the splits' feature bytes, and the ratio
of what it holds beyond the `import` process (Python, torch and its libraries: a fixed cost).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.recipes import METHODS, cell_commands  # noqa: E402
from src.synthetic import generate  # noqa: E402

# The cache build's process: the stage-1 feature folders of the train and val splits read, their cache written.
BUILD = """
import sys
sys.path.insert(0, sys.argv[1])
from src.args import finalize_main_args, get_main_parser
from src.data import dataset_from_args
from src.families import SPLITS
ds = dataset_from_args(finalize_main_args(get_main_parser().parse_args(sys.argv[2:])))
for folder in dict.fromkeys(SPLITS["train"][0] + SPLITS["val"][0]):
    ds.folder(folder)
"""
# The splits' process: the train and val splits made from the cache, their feature bytes printed.
SPLIT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from src.args import finalize_main_args, get_main_parser
from src.data import dataset_from_args
ds = dataset_from_args(finalize_main_args(get_main_parser().parse_args(sys.argv[2:])))
def nbytes(x):
    return x.values.nbytes if hasattr(x, "values") else x.nbytes
out = {}
for name in ("train", "val"):
    split = ds.split(name)
    out[name] = {"samples": len(split), "bytes": nbytes(split.audio) + nbytes(split.video)}
    del split
print("SPLITS " + json.dumps(out), flush=True)
"""
IMPORT = "import sys; sys.path.insert(0, sys.argv[1]); import src.compose"


def measured(cmd, cwd) -> tuple:
    """(peak RSS in bytes of `cmd`'s process and its children, seconds, stdout); raises on failure."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        raise SystemExit(f"bench_memory.py: {' '.join(map(str, cmd[:4]))} ... failed ({p.returncode}):\n{stderr[-3000:]}")
    kb = 1 if sys.platform == "darwin" else 1024          # ru_maxrss: bytes on macOS, KiB on Linux
    return usage.ru_maxrss * kb, seconds, stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ActivityNet", choices=["ActivityNet", "UCF", "VGGSound"])
    p.add_argument("--family", default="cls_temporal", help="feature family of TCaF (cls_temporal or main_temporal)")
    p.add_argument("--scale", type=float, default=0.05, help="samples per class of the synthetic benchmark")
    p.add_argument("--n_batches", type=int, default=5, help="batches of the one training epoch")
    p.add_argument("--bs", type=int, default=16, help="batch size (and evaluation batch size)")
    p.add_argument("--test_maxlen", type=int, default=60,
                   help="tokens per video in validation (the run script's 300 only makes the run slower)")
    p.add_argument("--threads", type=int, default=1, help="main.py's --num_threads")
    p.add_argument("--device", default="cpu", help="main.py's --device")
    p.add_argument("--first_run", action="store_true", help="also measure main.py without a cache (build + train)")
    p.add_argument("--work_dir", type=Path, default=None,
                   help="where the dataset is written (reused when there); default: a temp folder, deleted after")
    a = p.parse_args()
    if a.family not in METHODS["tcaf"].families:
        p.error(f"--family {a.family}: TCaF runs on {', '.join(METHODS['tcaf'].families)}")
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="avgzsl_mem_"))

    def report(key, value):
        print(f"{key:>24}: {value}", flush=True)

    try:
        root = work / "data" / a.dataset
        if not (root / "features").is_dir():
            t = time.perf_counter()
            generate(work / "data", a.dataset, families=(a.family,), scale=a.scale, overwrite=True)
            report("generate_s", round(time.perf_counter() - t, 1))
        flags = cell_commands("tcaf", a.dataset, a.family, work / "data")[0][1:]
        flags = flags[:flags.index("--exp_name")]
        data_flags = flags[:flags.index("--epochs")]
        folders = [f for f in (root / "features").iterdir() if f.is_dir()]
        disk = sum(f.stat().st_size for d in folders for f in d.rglob("*/stage_1_*/*") if f.is_file())
        report("dataset", f"{a.dataset} {a.family} --scale {a.scale}: stage-1 files {disk / 2 ** 20:.0f} MB")
        train = [sys.executable, str(ROOT / "main.py"), *flags, "--epochs", "1", "--n_batches", str(a.n_batches),
                 "--bs", str(a.bs), "--eval_bs", str(a.bs), "--batch_seqlen_test_maxlen", str(a.test_maxlen), "--num_threads", str(a.threads), "--device", a.device,
                 "--dump_path", str(work), "--exp_name", "mem", "--overwrite"]
        cache = root / "_features_processed"
        shutil.rmtree(cache, ignore_errors=True)
        rows = []
        rss, s, _ = measured([sys.executable, "-c", IMPORT, str(ROOT)], ROOT)
        rows.append(("import", rss, s))
        rss, s, _ = measured([sys.executable, "-c", BUILD, str(ROOT), *data_flags], ROOT)
        rows.append(("cache build", rss, s))
        rss, s, out = measured([sys.executable, "-c", SPLIT, str(ROOT), *data_flags], ROOT)
        rows.append(("splits", rss, s))
        splits = json.loads(next(line for line in out.splitlines() if line.startswith("SPLITS "))[7:])
        feature_bytes = sum(v["bytes"] for v in splits.values())
        cache_bytes = sum(f.stat().st_size for f in cache.rglob("*.pt"))
        report("splits", ", ".join(f"{k} {v['samples']} videos {v['bytes'] / 2 ** 20:.0f} MB" for k, v in splits.items()))
        report("feature_bytes_mb", round(feature_bytes / 2 ** 20))
        report("cache_files_mb", round(cache_bytes / 2 ** 20))
        rss, s, _ = measured(train, ROOT)
        rows.append(("training", rss, s))
        if a.first_run:
            shutil.rmtree(cache, ignore_errors=True)
            rss, s, _ = measured(train, ROOT)
            rows.append(("first run", rss, s))
        base = rows[0][1]
        print(f"\n{'process':<12} {'peak RSS MB':>12} {'x features':>11} {'(less import)':>14} {'seconds':>8}")
        for name, rss, s in rows:
            print(f"{name:<12} {rss / 2 ** 20:>12.0f} {rss / feature_bytes:>11.2f} "
                  f"{(rss - base) / feature_bytes:>14.2f} {s:>8.1f}")
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
