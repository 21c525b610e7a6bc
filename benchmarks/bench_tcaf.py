"""Speed of TCaF on the synthetic UCF-sized temporal benchmark, with the best UCF configurations.

    python benchmarks/bench_tcaf.py                          # both families, CPU (or CUDA when available)
    python benchmarks/bench_tcaf.py --families cls_temporal --n_batches 300 --device cuda --two_stage

Prints, per feature family: the model's own step (collation on the device, forward + backward +
Adam + the extra train-mode forward) on batches already drawn, in ms and samples/s; a whole epoch
of the trainer (sampling, collation, steps, val GZSL, val loss, checkpoints) and its ratio to the
pure compute (target <= 1.15); with --two_stage, the wall time of `main.py --run all` (stage 1,
stage 2, evaluation) on that schedule.
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

from src.args import finalize_main_args, get_main_parser  # noqa: E402
from src.compose import build_trainer, run  # noqa: E402
from src.data import AVGZSLDataset  # noqa: E402
from src.models import create_model  # noqa: E402
from src.models.tcaf import temporal_batch  # noqa: E402
from src.recipes import cell_commands  # noqa: E402
from src.runs import RunFolder  # noqa: E402
from src.runtime import setup_logging  # noqa: E402
from src.sampler import PairSampler  # noqa: E402
from src.synthetic import generate  # noqa: E402
from timing import add_machine_flags, apply_machine_flags, bound_report, host_sync_in_step, step_seconds  # noqa: E402


def bench_family(family: str, root: Path, work: Path, a, device) -> dict:
    out = {}
    base = cell_commands("tcaf", "UCF", family, root.parent)[0][1:]
    base = base[:base.index("--exp_name")] + ["--num_threads", str(torch.get_num_threads()), "--n_batches",
                                              str(a.n_batches), "--epochs", "1", "--device",
                                              str(device), "--dump_path", str(work)]
    args = finalize_main_args(get_main_parser().parse_args(base + ["--exp_name", "step"]))
    ds = AVGZSLDataset(root, "UCF", args.feature_extraction_method, args.zero_shot_split)
    train = ds.split("train").to(device)
    out["train_tokens"] = {"audio": int(train.audio.lengths.sum()), "video": int(train.video.lengths.sum())}
    model = create_model("tcaf", args).to(device)
    opt, _ = model.configure_optimizers(lr=args.lr, lr_scheduler=args.lr_scheduler)
    sampler = PairSampler(train.labels, len(train.class_ids), 0, device)
    idx = sampler.draw(8 * args.bs)[0].view(8, args.bs)
    def make_batch(i):
        return temporal_batch(train, idx[i % 8], model.train_collation, sampler.generator)
    step = step_seconds(model, opt, make_batch, max(10, min(a.n_batches, 60)), device)
    out["step_ms"] = round(1000 * step, 2)
    out["compute_samples_per_s"] = round(args.bs / step)
    bound_report(out.__setitem__, model, opt, make_batch, step, device)
    if device.type == "cuda":
        out["host_sync_in_step"] = host_sync_in_step(
            model, opt, temporal_batch(train, idx[0], model.train_collation, sampler.generator), device) or "none"
    print(f"{family:>24}: {out}", flush=True)
    if a.step_only:
        return out

    setup_logging()
    run_folder = RunFolder(work / "runs" / f"epoch_{family}")
    build_trainer(finalize_main_args(get_main_parser().parse_args(base + ["--exp_name", f"epoch_{family}",
                                                                          "--overwrite"])), run_folder).fit()
    line = json.loads((run_folder.path / "metrics.jsonl").read_text().splitlines()[-1])
    out["epoch_s"] = round(line["seconds"], 2)
    out["epoch_over_compute"] = round(line["seconds"] / (a.n_batches * step), 3)
    if a.two_stage:
        t = time.perf_counter()
        run(finalize_main_args(get_main_parser().parse_args(
            base[:base.index("--epochs")] + base[base.index("--epochs") + 2:] +
            ["--epochs", str(a.epochs), "--exp_name", f"two_{family}", "--run", "all", "--overwrite"])))
        out["two_stage_run_s"] = round(time.perf_counter() - t, 1)
    print(f"{family:>24}: {out}", flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=["main_temporal", "cls_temporal"],
                   choices=["main_temporal", "cls_temporal"])
    p.add_argument("--n_batches", type=int, default=50, help="batches of the timed epoch (best configs: 300)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each stage with --two_stage (best: 50)")
    p.add_argument("--scale", type=float, default=0.25, help="samples per class of the synthetic benchmark")
    p.add_argument("--two_stage", action="store_true", help="also time a whole `main.py --run all`")
    p.add_argument("--step_only", action="store_true", help="only the step and its FLOP bound (no trainer epoch)")
    p.add_argument("--work_dir", type=Path, default=None, help="default: a temp folder, deleted after")
    add_machine_flags(p)
    a = p.parse_args()
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="avgzsl_tcaf_"))
    device = apply_machine_flags(a)
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(out, flush=True)
    try:
        t = time.perf_counter()
        root = generate(work / "data", "UCF", families=tuple(a.families), scale=a.scale, overwrite=True)
        out["generate_s"] = round(time.perf_counter() - t, 1)
        for family in a.families:
            out[family] = bench_family(family, root, work, a, device)
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    for k, v in out.items():
        print(f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
