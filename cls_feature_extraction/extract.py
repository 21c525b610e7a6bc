"""One CLI for the C3D / VGGish features of UCF101, ActivityNet and VGGSound.

    python cls_feature_extraction/extract.py --dataset ucf --root_dir UCF101/ --output_dir out/ \
        --c3d_weights c3d.pickle --vggish_weights pytorch_vggish.pth --vggish_pca vggish_pca_params.npz
    torchrun --nproc_per_node 4 cls_feature_extraction/extract.py ...   # 4 ranks, one shard each

See docs/extraction.md.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from cls_feature_extraction.family import ClsFamily  # noqa: E402
from src.errors import ArgumentParser  # noqa: E402
from src.extraction.cli import DATASET_HELP, add_run_args, dataset_name, entry, run  # noqa: E402


def get_args_parser(dataset=None) -> argparse.ArgumentParser:
    p = ArgumentParser(
        description="C3D (video, 4096-d) and VGGish (audio, 128-d) features per video, written as "
                    "cls_features_{dataset}.pkl and cls_features_{dataset}_per_clip.pkl "
                    "(docs/features.md); failures go to cls_features_{dataset}.failures.tsv.")
    if dataset is None:
        p.add_argument("--dataset", type=dataset_name, required=True,
                       help=f"{DATASET_HELP} (decides the published quirks)")
    add_run_args(p, batch_help="C3D clips / VGGish examples per forward pass")
    g = p.add_argument_group("networks and pre-processing")
    g.add_argument("--c3d_weights", default=None, help="c3d.pickle (the Sports-1M C3D state_dict)")
    g.add_argument("--vggish_weights", default=None, help="pytorch_vggish.pth (the ported VGGish)")
    g.add_argument("--vggish_pca", default=None, help="vggish_pca_params.npz (the VGGish PCA)")
    g.add_argument("--fps", type=float, default=25.0,
                   help="convert the video to this frame rate before C3D, as the authors "
                        "re-encoded every video to 25 fps (0: every decoded frame as it is; default 25)")
    g.add_argument("--no_per_clip", action="store_true",
                   help="do not write the per-clip pickle (it is large for big datasets)")
    return p


def main(argv=None, dataset=None):
    args = get_args_parser(dataset).parse_args(argv)
    family = ClsFamily(dataset or args.dataset, fps=args.fps, match_published=args.match_published,
                       c3d_weights=args.c3d_weights, vggish_weights=args.vggish_weights,
                       vggish_pca=args.vggish_pca, random_init=args.random_init, seed=args.seed,
                       per_clip=not args.no_per_clip)
    return run(family, args)


if __name__ == "__main__":
    entry("extract.py", main)
