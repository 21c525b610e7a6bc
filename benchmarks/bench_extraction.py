"""Extraction throughput: the pipeline next to decode-only and model-only on the same videos.

    python benchmarks/bench_extraction.py                      # C3D/VGGish, CPU, generated videos
    python benchmarks/bench_extraction.py --family selavi --device cuda --videos 64
    python benchmarks/bench_extraction.py --family clip --device cuda --videos 32   # CLIP ViT-B/32 + WavCaps HTS-AT

Prints videos/s and clips/s (C3D clips, or SeLaVi windows) of
- decode-only: the DataLoader workers' decoding and pre-processing, nothing else;
- model-only: the networks on the already decoded units, batched as the pipeline does;
- pipeline: both overlapped, as `extract()` runs them (records stored, no output files);
and the ratio of the pipeline to the slower of the two (the goal is >= 0.8). Random weights;
videos generated with PyAV (moving bars and a tone) unless --videos_root is given.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from src.extraction.pipeline import Batcher, ShardStore, default_device, prepared, run_shard  # noqa: E402
from src.extraction.videos import list_videos  # noqa: E402


def make_family(name: str, dataset: str = "ucf"):
    if name == "cls":
        from cls_feature_extraction.family import ClsFamily
        return ClsFamily(dataset, random_init=True)
    if name == "clip":
        from clip_feature_extraction.family import ClipFamily
        return ClipFamily(dataset, random_init=True)
    from selavi_feature_extraction.family import SelaviFamily
    return SelaviFamily(dataset, random_init=True)


def generate(root: Path, n: int, seconds: float, size, fps: int) -> None:
    from tests.extraction.media import make_video
    for i in range(n):
        make_video(root / f"class{i % 2}/video{i:03d}.mp4", seconds=seconds, fps=fps, size=size,
                   rate=44100, channels=2, tone_hz=220 + 40 * i)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=("cls", "selavi", "clip"), default="cls")
    p.add_argument("--videos", type=int, default=6, help="number of generated videos (default 6)")
    p.add_argument("--seconds", type=float, default=2.0, help="length of each generated video")
    p.add_argument("--size", default="320x240", help="WxH of the generated videos")
    p.add_argument("--fps", type=int, default=30, help="frame rate of the generated videos")
    p.add_argument("--videos_root", default=None, help="benchmark these videos instead (class folders)")
    p.add_argument("--device", default=None, help="default: cuda when visible, else cpu")
    p.add_argument("--batch_size", type=int, default=4,
                   help="units per forward pass (default 4: several batches even on a CPU, so "
                        "that decoding can overlap the model)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2,
                   help="run model-only and the pipeline this many times, alternating, and keep "
                        "the best time of each (robust to other load on the machine)")
    args = p.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    torch.set_grad_enabled(False)
    family = make_family(args.family)
    stream = "video"

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.videos_root or Path(tmp) / "videos")
        if not args.videos_root:
            w, h = map(int, args.size.split("x"))
            generate(root, args.videos, args.seconds, (w, h), args.fps)
        items = list_videos(root)
        todo = list(range(len(items)))
        models = family.build_models(device)
        print(f"{args.family} on {device} ({torch.get_num_threads()} threads), {len(items)} videos, "
              f"batch {args.batch_size}, {args.workers} workers")

        # decode-only (also keeps the units for model-only)
        t = time.perf_counter()
        units = [(i, u) for i, u, reason in prepared(family, root, items, todo, args.workers) if u]
        decode_s = time.perf_counter() - t
        n_units = sum(len(next(iter(u[stream].values()))) for _, u in units)

        # model-only: the same batches, the decoded units already in memory (one warm-up batch)
        warm = Batcher(models, args.batch_size, device)
        warm.add(*units[0])
        warm.run(final=True)
        sync(device)

        def model_only():
            batcher = Batcher(models, args.batch_size, device)
            for i, u in units:
                batcher.add(i, u)
                batcher.run()
            batcher.run(final=True)

        def pipeline(r):  # decoding overlapped with the models, records finished and stored
            store = ShardStore(Path(tmp) / f"parts{r}", {"bench": True}, save_every=10 ** 9)
            run_shard(family, items, root, todo, store, device=device, batch_size=args.batch_size,
                      workers=args.workers, total=len(todo), progress=False, models=models)

        model_s = pipe_s = float("inf")
        for r in range(args.repeats):
            for name, fn in (("model", model_only), ("pipe", lambda: pipeline(r))):
                t = time.perf_counter()
                fn()
                sync(device)
                s = time.perf_counter() - t
                if name == "model":
                    model_s = min(model_s, s)
                else:
                    pipe_s = min(pipe_s, s)

    n = len(units)
    rows = [("decode-only", decode_s), ("model-only", model_s), ("pipeline", pipe_s)]
    unit = "clips" if args.family == "cls" else "windows"
    for name, s in rows:
        print(f"{name:12s} {n / s:8.3f} videos/s {n_units / s:9.3f} {unit}/s  ({s:.1f} s)")
    slower = max(decode_s, model_s)
    print(f"pipeline / slower of decode-only and model-only: {slower / pipe_s:.2f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
