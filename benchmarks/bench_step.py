"""Speed of one registered model's training on the synthetic UCF-sized benchmark, with its run
script's flags (the methods table of src/recipes.py).

    python benchmarks/bench_step.py --model avca                    # CPU (or CUDA when available)
    python benchmarks/bench_step.py --model avca --family cls --threads 1
    python benchmarks/bench_step.py --model tcaf --scale 0.25 --step_only --threads 1
    python benchmarks/bench_step.py --model clipclap --device cuda --run_all
    python benchmarks/bench_step.py --model avca --device cuda --cuda_graph --n_batches 500 --stage_epochs 50

Prints, as it measures: cache build and load time; the trainer's step of the model
(`src.steps.Step`: forward, backward, optimiser step, the after-step pass, as --compile, --amp and
--cuda_graph make it) on batches its registry entry's `batches` built beforehand, in ms and
samples/s, its FLOPs (`torch.utils.flop_counter`), this machine's float32 matmul peak, the step's
FLOP bound and its ratio to it, where its time goes (`torch.profiler`, CPU); on CUDA, whether the
step syncs with the host, whether building a batch does (TCaF's padded batches get their lengths
read once for the epoch, as the trainer's), and the step replayed as CUDA graphs. Then (not with --step_only) two
epochs of the trainer (sampling, batches, steps, validation, validation loss, checkpoints), the
second's time and its ratio to the pure compute (target <= 1.15), and get_evaluation's two-stage
evaluation; with --stage_epochs N, a whole stage of N epochs; with --run_all, `main.py --run all`
(stage 1, stage 2, evaluation) of --epochs epochs. A model with its own epoch (f-VAEGAN-D2's
critic loop) is timed by that epoch: its step is the epoch's time per batch.
"""
import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from src.args import finalize_main_args, get_eval_parser, get_main_parser  # noqa: E402
from src.compose import build_trainer, run  # noqa: E402
from src.data import dataset_from_args  # noqa: E402
from src.models import get_entry, list_models  # noqa: E402
from src.recipes import METHODS, cell_commands  # noqa: E402
from src.runs import RunFolder  # noqa: E402
from src.runtime import setup_logging  # noqa: E402
from src.sampler import PairSampler  # noqa: E402
from src.steps import Step, epoch_lengths  # noqa: E402
from src.synthetic import generate  # noqa: E402
from src.two_stage import evaluate_runs  # noqa: E402
from timing import add_machine_flags, apply_machine_flags, bound_report, host_sync_in_step, step_seconds, sync  # noqa: E402

SPLITS = ("train", "val", "train_val", "test")


def main_flags(model: str, family: str, work: Path, a, device) -> list:
    """The model's stage-1 flags of its run script's UCF cell, on this benchmark and machine."""
    base = cell_commands(model, "UCF", family, work / "data")[0][1:]
    base = base[:base.index("--exp_name")]
    return [*base, "--n_batches", str(a.n_batches), "--device", str(device), "--dump_path", str(work),
            "--num_threads", str(torch.get_num_threads()), *(["--bs", str(a.bs)] if a.bs else []),
            *(["--compile"] if a.compile else []), *(["--amp", a.amp] if a.amp else []),
            *(["--cuda_graph"] if a.cuda_graph else [])]


def parse(flags, *extra):
    return finalize_main_args(get_main_parser().parse_args([*flags, *map(str, extra)]))


def bench_step(report, trainer, entry, a, device) -> float:
    """The trainer's step on batches built beforehand; seconds per step."""
    model, opt, train, bs = trainer.model, trainer.optimizer, trainer.train, trainer.config.bs
    model.train()
    if entry.epoch_fn is not None:          # its own epoch: the time of one (after one untimed), per batch
        inp = dataclasses.replace(trainer.epoch_inputs(0), retrain_all=True)     # no stage-1 choices on val
        entry.epoch_fn(inp)
        sync(device)
        t = time.perf_counter()
        entry.epoch_fn(inp)
        sync(device)
        step = (time.perf_counter() - t) / inp.n_batches
        report("step_ms", round(1000 * step, 2))
        report("compute_samples_per_s", round(bs / step))
        return step
    sampler = PairSampler(train.labels, len(train.class_ids), 0, device)
    pos, neg = (t.view(8, bs) for t in sampler.draw(8 * bs))
    lengths = epoch_lengths(entry.batches, model, train, pos)        # as the trainer's epoch: read at once

    def build(i):
        return entry.batches.train(model, train, pos[i], neg[i], z_score=trainer.config.z_score,
                                   generator=sampler.generator, lengths=lengths[i])
    batches = [build(i) for i in range(8)]
    step = trainer.steps("train", model.training_step, opt)       # as the trainer runs it
    seconds = step_seconds(step, lambda i: batches[i % 8], max(10, min(a.n_batches, 100)), device)
    report("step_ms", round(1000 * seconds, 2))
    report("compute_samples_per_s", round(bs / seconds))
    eager = Step(model, model.training_step, opt)
    bound_report(report, eager, lambda i: batches[i % 8], seconds, device)
    if device.type == "cuda":
        report("host_sync_in_step", host_sync_in_step(eager, batches[0], device) or "none")
        report("host_sync_in_batch", host_sync_in_step(build, 0, device) or "none")
        if not a.cuda_graph:
            try:
                graphed = Step(model, model.training_step, opt, cuda_graph=True, device_type="cuda")
                report("cuda_graph_step_ms", round(1000 * step_seconds(graphed, lambda i: batches[i % 8], 100,
                                                                       device), 3))
            except Exception as err:  # noqa: BLE001 - a measurement, reported
                report("cuda_graph_step_ms", f"failed: {type(err).__name__}: {str(err)[:200]}")
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, choices=list_models(), help="a registered model")
    p.add_argument("--family", default=None, help="feature family (default: the model's first in the methods table)")
    p.add_argument("--n_batches", type=int, default=50, help="batches of the timed epoch (AVCA's run scripts: 500)")
    p.add_argument("--bs", type=int, default=None, help="batch size (default: the run script's)")
    p.add_argument("--scale", type=float, default=1.0, help="samples per class of the synthetic benchmark")
    p.add_argument("--compile", action="store_true", help="time main.py --compile's step (torch.compile)")
    p.add_argument("--amp", default=None, choices=["bf16"], help="time main.py --amp's step (autocast)")
    p.add_argument("--cuda_graph", action="store_true", help="time main.py --cuda_graph's step and epochs")
    p.add_argument("--step_only", action="store_true", help="only the step (no trainer epoch, no evaluation)")
    p.add_argument("--stage_epochs", type=int, default=0, help="also time a whole stage of this many epochs")
    p.add_argument("--run_all", action="store_true", help="also time `main.py --run all` of --epochs epochs")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each stage with --run_all")
    p.add_argument("--work_dir", type=Path, default=None, help="default: a temp folder, deleted after")
    add_machine_flags(p)
    a = p.parse_args()
    recipe = METHODS[a.model]
    family = a.family or recipe.families[0]
    if family not in recipe.families:
        p.error(f"--family {family}: {a.model} runs on {', '.join(recipe.families)}")
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="avgzsl_bench_"))
    device = apply_machine_flags(a)
    entry = get_entry(a.model)

    def report(key, value):
        print(f"{key:>24}: {value}", flush=True)

    report("device", torch.cuda.get_device_name(device) if device.type == "cuda" else str(device))
    report("torch", torch.__version__)
    report("threads", torch.get_num_threads())
    report("model", f"{a.model} on {family}")
    try:
        t = time.perf_counter()
        generate(work / "data", "UCF", families=(family,), scale=a.scale, overwrite=True)
        report("generate_s", round(time.perf_counter() - t, 2))
        flags = main_flags(a.model, family, work, a, device)
        for what in ("cache_build_s", "cache_load_s"):
            t = time.perf_counter()
            ds = dataset_from_args(parse(flags, "--exp_name", "data"))
            splits = [ds.split(s) for s in SPLITS]
            report(what, round(time.perf_counter() - t, 3))
        report("samples", {s.name: len(s) for s in splits})

        setup_logging()
        trainer = build_trainer(parse(flags, "--epochs", 1, "--exp_name", "step"), RunFolder(work / "runs" / "step"))
        if not trainer.model.trainable:
            raise SystemExit(f"bench_step.py: {a.model} has nothing to train (no trainable parameter): no step to time")
        step, bs = bench_step(report, trainer, entry, a, device), trainer.config.bs
        if a.step_only:
            return
        # two epochs of the trainer (the second's time: past the first one's warm-up), stage 2, get_evaluation
        for exp, extra in (("bench_val", []), ("bench_all", ["--retrain_all", "--save_checkpoints"])):
            folder = RunFolder(work / "runs" / exp)
            build_trainer(parse(flags, "--epochs", 2, "--exp_name", exp, "--overwrite", *extra), folder).fit()
            if exp == "bench_val":
                line = json.loads((folder.path / "metrics.jsonl").read_text().splitlines()[-1])
                report("epoch_s", round(line["seconds"], 3))
                report("epoch_samples_per_s", round(a.n_batches * bs / line["seconds"]))
                report("epoch_over_compute", round(line["seconds"] / (a.n_batches * step), 3))
        ev = get_eval_parser().parse_args(["--load_path_stage_A", str(work / "runs/bench_val"), "--load_path_stage_B",
                                           str(work / "runs/bench_all"), *([f"--{entry.flag}"] if entry.flag else []),
                                           "--device", str(device)])
        t = time.perf_counter()
        evaluate_runs(ev)
        report("get_evaluation_s", round(time.perf_counter() - t, 3))
        if a.stage_epochs:
            t = time.perf_counter()
            build_trainer(parse(flags, "--epochs", a.stage_epochs, "--exp_name", "bench_stage", "--overwrite"),
                          RunFolder(work / "runs" / "bench_stage")).fit()
            report(f"stage_{a.stage_epochs}x{a.n_batches}_s", round(time.perf_counter() - t, 1))
        if a.run_all:
            t = time.perf_counter()
            run(parse(flags, "--epochs", a.epochs, "--exp_name", "two", "--run", "all", "--overwrite"))
            report("run_all_s", round(time.perf_counter() - t, 1))
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
