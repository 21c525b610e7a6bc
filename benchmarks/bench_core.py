"""Speed of the core on the synthetic UCF-sized benchmark, with the seed's AVCA flags.

    python benchmarks/bench_core.py                 # CPU (or CUDA when available)
    python benchmarks/bench_core.py --n_batches 500 --device cuda --stage_epochs 50

Prints, as it measures: cache build and cache load time; the model's own step (forward +
backward + optimiser step on batches already in memory) in ms and samples/s; on CUDA, whether
the step syncs with the host and the step replayed as one CUDA graph; a whole epoch of the
trainer (sampling, steps, validation, validation loss, checkpoints) and its ratio to the pure
compute (target <= 1.15); the whole get_evaluation (two models, val beta search, test)
in-process; with --stage_epochs N, the wall time of a whole stage of N epochs.
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from src.args import finalize_main_args, get_eval_parser, get_main_parser  # noqa: E402
from src.families import FAMILIES  # noqa: E402
from src.data import AVGZSLDataset  # noqa: E402
from src.models import create_model  # noqa: E402
from src.models.base import step_function  # noqa: E402
from src.recipes import training_flags  # noqa: E402
from src.synthetic import generate  # noqa: E402
from src.compose import build_trainer  # noqa: E402
from src.runs import RunFolder  # noqa: E402
from src.runtime import setup_logging  # noqa: E402
from src.train import pair_batch  # noqa: E402
from timing import add_machine_flags, apply_machine_flags, bound_report, graphed_step_seconds, host_sync_in_step, step_seconds  # noqa: E402

def seed_flags(family: str):
    """The seed's AVCA flags on UCF for a family (the run scripts' table)."""
    return training_flags("avca", "UCF", family)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n_batches", type=int, default=50, help="batches of the timed epoch (seed: 500)")
    p.add_argument("--bs", type=int, default=256)
    p.add_argument("--family", default="main", choices=["main", "cls"], help="feature family (AVCA's flags for it)")
    p.add_argument("--skip_trainer", action="store_true", help="only the step (no epoch, evaluation, stage)")
    p.add_argument("--compile", action="store_true", help="time main.py --compile's step (torch.compile)")
    p.add_argument("--amp", default=None, choices=["bf16"], help="time main.py --amp's step (autocast)")
    p.add_argument("--cuda_graph", action="store_true", help="train the epochs and the stage with main.py --cuda_graph")
    p.add_argument("--stage_epochs", type=int, default=0, help="also time a whole stage of this many epochs")
    p.add_argument("--work_dir", type=Path, default=None, help="default: a temp folder, deleted after")
    add_machine_flags(p)
    a = p.parse_args()
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="avgzsl_bench_"))
    device = apply_machine_flags(a)
    out = {}

    def report(key, value):
        out[key] = value
        print(f"{key:>24}: {value}", flush=True)

    report("device", torch.cuda.get_device_name(device) if device.type == "cuda" else str(device))
    report("torch", torch.__version__)
    report("threads", torch.get_num_threads())
    try:
        t = time.perf_counter()
        root = generate(work / "data", "UCF", families=(a.family,), overwrite=True)
        report("generate_s", round(time.perf_counter() - t, 2))

        t = time.perf_counter()
        folder, split = FAMILIES[a.family].folder, FAMILIES[a.family].split
        ds = AVGZSLDataset(root, "UCF", folder, split)
        splits = [ds.split(s) for s in ("train", "val", "train_val", "test")]
        report("cache_build_s", round(time.perf_counter() - t, 3))
        t = time.perf_counter()
        ds = AVGZSLDataset(root, "UCF", folder, split)
        splits = [ds.split(s) for s in ("train", "val", "train_val", "test")]
        report("cache_load_s", round(time.perf_counter() - t, 3))
        report("samples", {s.name: len(s) for s in splits})

        flags = ["--root_dir", str(root), *seed_flags(a.family), "--bs", str(a.bs), "--n_batches", str(a.n_batches),
                 "--epochs", "1", "--device", str(device), "--dump_path", str(work), "--num_threads",
                 str(torch.get_num_threads()), *(["--compile"] if a.compile else []), *(["--amp", a.amp] if a.amp else []),
                 *(["--cuda_graph"] if a.cuda_graph else [])]
        args = finalize_main_args(get_main_parser().parse_args(flags + ["--exp_name", "step"]))
        # pure compute: the model's step on batches already in memory
        train = splits[0].to(device)
        model = create_model("avca", args).to(device)
        opt, _ = model.configure_optimizers(lr=args.lr, lr_scheduler=args.lr_scheduler)
        g = torch.Generator(device=device).manual_seed(0)
        batches = [pair_batch(train, torch.randint(0, len(train), (a.bs,), device=device, generator=g),
                              torch.randint(0, len(train), (a.bs,), device=device, generator=g)) for _ in range(8)]
        fast = step_function(model, a.compile, a.amp, device.type)        # --compile / --amp, as the trainer runs them
        step = step_seconds(model, opt, lambda i: batches[i % len(batches)], max(10, min(a.n_batches, 100)), device,
                            training_step=fast)
        report("step_ms", round(1000 * step, 2))
        report("compute_samples_per_s", round(a.bs / step))
        bound_report(report, model, opt, lambda i: batches[i % len(batches)], step, device)
        if device.type == "cuda":
            report("host_sync_in_step", host_sync_in_step(model, opt, batches[0], device) or "none")
            try:
                graphed = graphed_step_seconds(model, opt, lambda i: batches[i % len(batches)], 100)
                report("cuda_graph_step_ms", round(1000 * graphed, 3))
            except Exception as err:  # noqa: BLE001 - a measurement, reported
                report("cuda_graph_step_ms", f"failed: {type(err).__name__}: {str(err)[:200]}")

        if a.skip_trainer:
            return
        # a whole epoch of the trainer (stage 1), and stage 2 for get_evaluation
        setup_logging()
        for exp, extra in (("bench_val", []), ("bench_all", ["--retrain_all", "--save_checkpoints"])):
            run = RunFolder(work / "runs" / exp)
            build_trainer(finalize_main_args(get_main_parser().parse_args(flags + ["--exp_name", exp, "--overwrite",
                                                                              *extra])), run).fit()
            if exp == "bench_val":
                line = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])
                report("epoch_s", round(line["seconds"], 2))
                report("epoch_samples_per_s", round(a.n_batches * a.bs / line["seconds"]))
                report("epoch_over_compute", round(line["seconds"] / (a.n_batches * step), 3))

        from src.two_stage import evaluate_runs
        ev = get_eval_parser().parse_args(["--load_path_stage_A", str(work / "runs/bench_val"), "--load_path_stage_B",
                                           str(work / "runs/bench_all"), "--AVCA", "--device", str(device)])
        t = time.perf_counter()
        evaluate_runs(ev)
        report("get_evaluation_s", round(time.perf_counter() - t, 3))
        if a.stage_epochs:
            t = time.perf_counter()
            build_trainer(finalize_main_args(get_main_parser().parse_args(
                flags[:flags.index("--epochs")] + flags[flags.index("--epochs") + 2:] +
                ["--epochs", str(a.stage_epochs), "--exp_name", "bench_stage", "--overwrite"])),
                RunFolder(work / "runs" / "bench_stage")).fit()
            report(f"stage_{a.stage_epochs}x{a.n_batches}_s", round(time.perf_counter() - t, 1))
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
