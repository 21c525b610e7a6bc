"""Speed of the core on the synthetic UCF-sized benchmark, with the seed's AVCA flags.

    python benchmarks/bench_core.py                 # CPU (or CUDA when available)
    python benchmarks/bench_core.py --n_batches 500 --device cuda

Prints: cache build and cache load time; the model's own step (forward + backward + optimiser
step on batches already in memory) in ms and samples/s; a whole epoch of the trainer
(sampling, steps, validation, validation loss, checkpoints) and its ratio to the pure compute
(target <= 1.15); the whole get_evaluation (two models, val beta search, test) in-process.
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
from src.data import AVGZSLDataset  # noqa: E402
from src.models import create_model  # noqa: E402
from src.synthetic import generate  # noqa: E402
from src.compose import build_trainer  # noqa: E402
from src.runs import RunFolder  # noqa: E402
from src.runtime import resolve_device, setup_logging  # noqa: E402
from src.train import pair_batch  # noqa: E402
from timing import step_seconds  # noqa: E402

SEED_AVCA = ("--AVCA --lr 0.001 --embeddings_hidden_size 512 --decoder_hidden_size 512 --embedding_dropout 0.2 "
             "--decoder_dropout 0.3 --additional_dropout 0.5 --depth_transformer 1 --additional_triplets_loss "
             "--first_additional_triplet 1 --second_additional_triplet 1 --momentum 0.1 --reg_loss "
             "--lr_scheduler --input_size_audio 512 --input_size_video 512 --dataset_name UCF "
             "--feature_extraction_method main_features --zero_shot_split main_split").split()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n_batches", type=int, default=50, help="batches of the timed epoch (seed: 500)")
    p.add_argument("--bs", type=int, default=256)
    p.add_argument("--device", default=None)
    p.add_argument("--work_dir", type=Path, default=None, help="default: a temp folder, deleted after")
    a = p.parse_args()
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="avgzsl_bench_"))
    device = resolve_device(a.device)
    out = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        t = time.perf_counter()
        root = generate(work / "data", "UCF", families=("main",), overwrite=True)
        out["generate_s"] = round(time.perf_counter() - t, 2)

        t = time.perf_counter()
        ds = AVGZSLDataset(root, "UCF")
        splits = [ds.split(s) for s in ("train", "val", "train_val", "test")]
        out["cache_build_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        ds = AVGZSLDataset(root, "UCF")
        splits = [ds.split(s) for s in ("train", "val", "train_val", "test")]
        out["cache_load_s"] = round(time.perf_counter() - t, 3)
        out["samples"] = {s.name: len(s) for s in splits}

        flags = ["--root_dir", str(root), *SEED_AVCA, "--bs", str(a.bs), "--n_batches", str(a.n_batches),
                 "--epochs", "1", "--device", str(device), "--dump_path", str(work)]
        args = finalize_main_args(get_main_parser().parse_args(flags + ["--exp_name", "step"]))
        # pure compute: the model's step on batches already in memory
        train = splits[0].to(device)
        model = create_model("avca", args).to(device)
        opt, _ = model.configure_optimizers(lr=args.lr, lr_scheduler=args.lr_scheduler)
        g = torch.Generator(device=device).manual_seed(0)
        batches = [pair_batch(train, torch.randint(0, len(train), (a.bs,), device=device, generator=g),
                              torch.randint(0, len(train), (a.bs,), device=device, generator=g)) for _ in range(8)]
        step = step_seconds(model, opt, lambda i: batches[i % len(batches)], max(10, min(a.n_batches, 100)), device)
        out["step_ms"] = round(1000 * step, 2)
        out["compute_samples_per_s"] = round(a.bs / step)

        # a whole epoch of the trainer (stage 1), and stage 2 for get_evaluation
        setup_logging()
        for exp, extra in (("bench_val", []), ("bench_all", ["--retrain_all", "--save_checkpoints"])):
            run = RunFolder(work / "runs" / exp)
            build_trainer(finalize_main_args(get_main_parser().parse_args(flags + ["--exp_name", exp, "--overwrite",
                                                                              *extra])), run).fit()
            if exp == "bench_val":
                line = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])
                out["epoch_s"] = round(line["seconds"], 2)
                out["epoch_samples_per_s"] = round(a.n_batches * a.bs / line["seconds"])
                out["epoch_over_compute"] = round(line["seconds"] / (a.n_batches * step), 3)

        from src.two_stage import evaluate_runs
        ev = get_eval_parser().parse_args(["--load_path_stage_A", str(work / "runs/bench_val"), "--load_path_stage_B",
                                           str(work / "runs/bench_all"), "--AVCA", "--device", str(device)])
        t = time.perf_counter()
        evaluate_runs(ev)
        out["get_evaluation_s"] = round(time.perf_counter() - t, 3)
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    for k, v in out.items():
        print(f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
