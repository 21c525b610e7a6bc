"""One CLI for the CLIP (image, 512-d) / WavCaps (audio, 1024-d) features of UCF101, ActivityNet
and VGGSound (docs/clipclap.md 1).

    python clip_feature_extraction/extract.py --dataset ucf --root_dir UCF101/ --output_dir out/ \
        --clip_weights ViT-B-32.pt --wavcaps_weights HTSAT_BERT_zero_shot.pt
    torchrun --nproc_per_node 4 clip_feature_extraction/extract.py ...   # 4 ranks, one shard each

See docs/extraction.md.
"""
import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from clip_feature_extraction.family import ClipFamily  # noqa: E402
from src.errors import ArgumentParser, UserError  # noqa: E402
from src.extraction.cli import DATASET_HELP, add_run_args, dataset_name, entry, run  # noqa: E402
from src.extraction.videos import VIDEO_EXTENSIONS  # noqa: E402
from src.io_utils import atomic_path  # noqa: E402


def get_args_parser(dataset=None) -> argparse.ArgumentParser:
    p = ArgumentParser(
        description="CLIP ViT-B/32 image features (one frame per video, float16 512-d) and WavCaps "
                    "HTSAT-BERT audio features (the centre 10 s at 32 kHz, float32 1024-d), written as "
                    "clip_features_{ucf,activitynet,vggsound}.pkl, a list of [image_feature, class_id, "
                    "audio_feature, file_name] (docs/clipclap.md 1); failures go to "
                    "clip_features_{dataset}.failures.tsv. Split them with "
                    "splitting_scripts/split_features.py.")
    if dataset is None:
        p.add_argument("--dataset", type=dataset_name, required=True,
                       help=f"{DATASET_HELP} (decides the published quirks and the output name)")
    add_run_args(p, batch_help="frames (CLIP) / 10 s windows (WavCaps) per forward pass")
    g = p.add_argument_group("networks and inputs")
    g.add_argument("--clip_weights", default=None,
                   help="ViT-B-32.pt, OpenAI CLIP ViT-B/32 (github.com/openai/CLIP, or the open-clip-torch "
                        "ViT-B-32-quickgelu/openai weights)")
    g.add_argument("--wavcaps_weights", default=None,
                   help="HTSAT_BERT_zero_shot.pt from the WavCaps release (a dict whose 'model' entry is "
                        "the audio-text model's state_dict)")
    g.add_argument("--vggsound_csv", default=None,
                   help="VGGSound's vggsound.csv (rows youtube_id,start_seconds,label,split): lists the "
                        "{youtube_id}_{start}.mp4 files of --root_dir (any sub-folder) with their classes, "
                        "instead of class folders or --video_list; the list used is written to "
                        "{output_dir}/clip_features_vggsound.videos.csv")
    p.epilog = ("--match_published here: the per-dataset frame rules (UCF: frameCount // 2 of a "
                "zero-filled buffer; ActivityNet / VGGSound: the (n // 2)-th frame counted from 1), "
                "BGR channels for every dataset and UCF's overflow inversion (docs/clipclap.md 1.1); the "
                "default is the frame n // 2 in RGB for every dataset.")
    return p


def vggsound_video_list(root, vggsound_csv, output) -> Path:
    """Write `output`, a `video,class` csv of the `{youtube_id}_{start}.{ext}` videos under
    `root` whose (youtube_id, int(start)) is a row of `vggsound_csv` (docs/clipclap.md 1); a video
    missing from the csv is an error."""
    root, vggsound_csv = Path(root), Path(vggsound_csv)
    if not vggsound_csv.is_file():
        raise UserError(f"--vggsound_csv: {vggsound_csv} not found (VGGSound's vggsound.csv, rows "
                        f"youtube_id,start_seconds,label,split)")
    if not root.is_dir():
        raise UserError(f"videos folder not found: {root} (pass --root_dir)")
    labels = {}
    with open(vggsound_csv, newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            try:
                labels[(row[0].strip(), int(float(row[1])))] = row[2].strip()
            except (IndexError, ValueError):
                if line == 1:
                    continue  # a header
                raise UserError(f"{vggsound_csv}: line {line} is not youtube_id,start_seconds,label,...: "
                                f"{row}") from None
    rows, unknown = [], []
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS):
        vid, _, start = f.stem.rpartition("_")
        label = labels.get((vid, int(start))) if start.isdigit() else None
        if label is None:
            unknown.append(f.name)
        else:
            rows.append((f.relative_to(root).as_posix(), label))
    if unknown:
        raise UserError(f"{len(unknown)} videos of {root} are not rows of {vggsound_csv} (e.g. {unknown[:3]}): "
                        f"VGGSound files are named {{youtube_id}}_{{start}}.mp4; move the others away")
    if not rows:
        raise UserError(f"no video of {root} is a row of {vggsound_csv}")
    with atomic_path(output) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["video", "class"])
            w.writerows(rows)
    return Path(output)


def main(argv=None, dataset=None):
    args = get_args_parser(dataset).parse_args(argv)
    family = ClipFamily(dataset or args.dataset, match_published=args.match_published,
                        clip_weights=args.clip_weights, wavcaps_weights=args.wavcaps_weights,
                        random_init=args.random_init, seed=args.seed)
    if args.vggsound_csv:
        if args.video_list:
            raise UserError("give --vggsound_csv or --video_list, not both")
        args.video_list = str(vggsound_video_list(args.root_dir, args.vggsound_csv,
                                                  Path(args.output_dir) / f"{family.name}.videos.csv"))
    return run(family, args)


if __name__ == "__main__":
    entry("extract.py", main)
