"""Speed of ClipClap on the synthetic UCF-sized CLIP/CLAP benchmark, with its published UCF settings.

    python benchmarks/bench_clipclap.py                    # CPU (or CUDA when available)
    python benchmarks/bench_clipclap.py --device cuda --run_all

Prints: the model's own step (forward + backward + Adam + the extra train-mode pass) on batches
already drawn, in ms and samples/s; a whole epoch of the trainer (sampling, steps, val GZSL over
the 76-beta grid, val loss, checkpoints; the second of two, past the first one's warm-up) and its
ratio to the pure compute (target <= 1.15); with
--run_all, the wall time of the published `main.py ... --run all` (stage 1, stage 2, evaluation).
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
from src.models.clipclap import vector_batch  # noqa: E402
from src.recipes import cell_commands  # noqa: E402
from src.runs import RunFolder  # noqa: E402
from src.runtime import setup_logging  # noqa: E402
from src.sampler import PairSampler  # noqa: E402
from src.synthetic import generate  # noqa: E402
from timing import add_machine_flags, apply_machine_flags, host_sync_in_step, step_seconds  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n_batches", type=int, default=300, help="batches of the timed epoch (published: 300)")
    p.add_argument("--run_all", action="store_true", help="also time the published `--run all` (20 epochs)")
    p.add_argument("--work_dir", type=Path, default=None, help="default: a temp folder, deleted after")
    add_machine_flags(p)
    a = p.parse_args()
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="avgzsl_clipclap_"))
    device = apply_machine_flags(a)      # the step and the trainer's epochs on the same threads

    def report(key, value):
        print(f"{key:>24}: {value}", flush=True)

    report("device", torch.cuda.get_device_name(device) if device.type == "cuda" else str(device))
    report("threads", torch.get_num_threads())
    try:
        root = generate(work / "data", "UCF", families=("clip",), overwrite=True)
        base = cell_commands("clipclap", "UCF", "clip", work / "data")[0][1:]
        base = base[:base.index("--exp_name")] + ["--device", str(device), "--dump_path", str(work),
                                                  "--num_threads", str(torch.get_num_threads())]
        args = finalize_main_args(get_main_parser().parse_args(base + ["--n_batches", str(a.n_batches),
                                                                       "--epochs", "1", "--exp_name", "step"]))
        ds = AVGZSLDataset(root, "UCF", args.feature_extraction_method, args.zero_shot_split)
        train = ds.split("train").to(device)
        args.text_dim = ds.text_dim
        report("samples", {"train": len(train), "classes": len(train.class_ids)})
        model = create_model("clipclap", args).to(device)
        opt, _ = model.configure_optimizers(lr=args.lr, lr_scheduler=args.lr_scheduler)
        idx = PairSampler(train.labels, len(train.class_ids), 0, device).draw(8 * args.bs)[0].view(8, args.bs)
        step = step_seconds(model, opt, lambda i: vector_batch(train, idx[i % 8]), max(20, min(a.n_batches, 200)), device)
        report("step_ms", round(1000 * step, 3))
        report("compute_samples_per_s", round(args.bs / step))
        if device.type == "cuda":
            report("host_sync_in_step", host_sync_in_step(model, opt, vector_batch(train, idx[0]), device) or "none")

        setup_logging()
        folder = RunFolder(work / "runs" / "epoch")
        build_trainer(finalize_main_args(get_main_parser().parse_args(
            base + ["--n_batches", str(a.n_batches), "--epochs", "2", "--exp_name", "epoch", "--overwrite"])), folder).fit()
        line = json.loads((folder.path / "metrics.jsonl").read_text().splitlines()[-1])
        report("epoch_s", round(line["seconds"], 3))
        report("epoch_over_compute", round(line["seconds"] / (a.n_batches * step), 3))
        if a.run_all:
            t = time.perf_counter()
            run(finalize_main_args(get_main_parser().parse_args(base + ["--exp_name", "all", "--run", "all",
                                                                        "--overwrite"])))
            report("run_all_s", round(time.perf_counter() - t, 1))
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
