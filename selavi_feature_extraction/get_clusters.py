"""SeLaVi features per video, with the seed's command line:

    python3 selavi_feature_extraction/get_clusters.py --root_dir UCF101/ \
        --weights_path selavi_vgg_sound.pth --mode train --pretrained False \
        --aud_sample_rate 44100 --use_mlp False --dataset ucf --headcount 10 \
        --exp_desc selavi --output_dir out/ --batch_size 8 --workers 4

Writes `{output_dir}/main_features_{dataset}[_{exp_desc}].pkl` (docs/features.md, SeLaVi Output),
`main_features_{dataset}[_{exp_desc}]_per_window.pkl` (the features of every window, for
TCaF: docs/tcaf.md 1; skipped with --no_per_window) and
`main_features_{dataset}[_{exp_desc}].failures.tsv`. See docs/extraction.md.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from selavi_feature_extraction.family import SelaviFamily  # noqa: E402
from src.errors import ArgumentParser  # noqa: E402
from src.extraction.cli import DATASET_HELP, add_run_args, bool_flag, dataset_name, entry, run  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        description="SeLaVi video (R(2+1)D-18) and audio (ResNet-9) features, 512-d each, "
                    "averaged over one-second windows (docs/features.md), and the features of every "
                    "window (TCaF's temporal features, docs/tcaf.md 1) in "
                    "main_features_{dataset}[_{exp_desc}]_per_window.pkl.")
    add_run_args(p, batch_help="one-second windows per forward pass")
    g = p.add_argument_group("SeLaVi")
    g.add_argument("--weights_path", default=None, help="selavi_vgg_sound.pth (SeLaVi on VGGSound)")
    g.add_argument("--dataset", type=dataset_name, required=True, help=DATASET_HELP)
    g.add_argument("--aud_sample_rate", type=int, default=44100,
                   help="audio sample rate of the filterbank front end (default 44100)")
    g.add_argument("--exp_desc", default="", help="suffix of the output name (default none)")
    g.add_argument("--no_per_window", action="store_true",
                   help="do not write the per-window pickle (TCaF's temporal features: one 512-d "
                        "audio and video vector per window; default: written, about 4 KB per window)")
    g = p.add_argument_group("accepted for the seed's command; they do not change the features")
    g.add_argument("--mode", default="train", help="the seed's dataset mode (ignored)")
    g.add_argument("--pretrained", type=bool_flag, nargs="?", const=True, default=False,
                   help="the seed's torchvision initialisation switch (ignored: every backbone "
                        "weight is loaded from --weights_path)")
    g.add_argument("--use_mlp", type=bool_flag, nargs="?", const=True, default=False,
                   help="whether the checkpoint has MLP projection heads (ignored: heads unused)")
    g.add_argument("--headcount", type=int, default=1,
                   help="number of clustering heads in the checkpoint (ignored: heads unused)")
    return p


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    family = SelaviFamily(args.dataset, weights_path=args.weights_path,
                          aud_sample_rate=args.aud_sample_rate, match_published=args.match_published,
                          random_init=args.random_init, seed=args.seed, exp_desc=args.exp_desc,
                          per_window=not args.no_per_window)
    return run(family, args)


if __name__ == "__main__":
    entry("get_clusters.py", main)
