"""Flags and the run step that every extraction CLI shares (docs/extraction.md)."""
import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Callable, List, Optional

from src.families import ALIASES, DATASETS
from src.errors import UserError, exit_on_user_error

from .pipeline import Family, extract, merge
from .videos import list_videos

_NAMES = [d.aliases[0] for d in DATASETS.values()]
DATASET_HELP = ", ".join(_NAMES[:-1]) + " or " + _NAMES[-1]        # ucf, activity or vggsound


def dataset_name(value: str) -> str:
    """The name the extraction uses (pickle names, quirks) of a --dataset value: any alias, any case."""
    try:
        return DATASETS[ALIASES[value.lower()]].aliases[0]
    except KeyError:
        raise argparse.ArgumentTypeError(f"unknown dataset {value!r}: use {DATASET_HELP}") from None


def bool_flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False), got {value!r}")


def add_run_args(parser: argparse.ArgumentParser, batch_help: str) -> None:
    g = parser.add_argument_group("videos and outputs")
    g.add_argument("--root_dir", required=True,
                   help="videos root: one folder per class, {root_dir}/{ClassName}/{video}.{avi,mp4,...}")
    g.add_argument("--video_list", default=None,
                   help="optional csv of `video,class` rows (paths relative to --root_dir) "
                        "instead of the class folders; its row order is the output order")
    g.add_argument("--output_dir", required=True, help="folder for the pickles and the failures file")
    g.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    g = parser.add_argument_group("run")
    g.add_argument("--batch_size", type=int, default=8, help=batch_help + " (default 8)")
    g.add_argument("--workers", type=int, default=4,
                   help="decoding worker processes per rank (0: decode in the main process; default 4)")
    g.add_argument("--device", default=None,
                   help="torch device (default: cuda:LOCAL_RANK when a GPU is visible, else cpu)")
    g.add_argument("--save_every", type=int, default=50,
                   help="save progress every N finished videos; an interrupted run resumes "
                        "from the last save (default 50)")
    g.add_argument("--keep_parts", action="store_true",
                   help="keep the per-rank parts folder after merging")
    g.add_argument("--merge_only", action="store_true",
                   help="only merge the complete shards found in --output_dir (e.g. after "
                        "copying them from several machines without a shared disk)")
    g.add_argument("--no_progress", action="store_true", help="no progress bar")
    g.add_argument("--random_init", action="store_true",
                   help="random network weights instead of the pretrained files (tests, timing)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the random weights under --random_init (same on every rank)")
    g.add_argument("--match_published", action="store_true",
                   help="reproduce every [published quirk] of docs/features.md, to rebuild the "
                        "released features (default: the corrected pipeline); SeLaVi's per-window "
                        "features then follow TCaF's window rule (docs/tcaf.md 1); C3D/VGGish also "
                        "resample the audio with resampy 0.2.2's kaiser_best filter, regenerated "
                        "from its design (close to, not proven bit-identical with, resampy 0.2.2: "
                        "see docs/extraction.md)")


def run(family: Family, args) -> List[Path]:
    """Extract (or, with --merge_only, merge) `family` over the videos of the flags."""
    if args.batch_size < 1 or args.workers < 0 or args.save_every < 1:
        raise UserError("--batch_size and --save_every must be >= 1 and --workers >= 0")
    items = list_videos(args.root_dir, args.video_list)
    output_dir = Path(args.output_dir)
    if args.merge_only:
        folders = sorted((output_dir / f"{family.name}.parts").glob("rank-*-of-*"))
        worlds = {int(re.search(r"-of-(\d+)$", f.name).group(1)) for f in folders}
        if len(worlds) != 1:
            raise UserError(f"--merge_only: expected the shards of one run in "
                            f"{output_dir / (family.name + '.parts')}, found {len(folders)} "
                            f"folders of world sizes {sorted(worlds)}")
        return merge(family, items, output_dir, worlds.pop(), keep_parts=args.keep_parts)
    paths = extract(family, items, root=args.root_dir, output_dir=output_dir, device=args.device,
                    batch_size=args.batch_size, workers=args.workers, save_every=args.save_every,
                    overwrite=args.overwrite, keep_parts=args.keep_parts,
                    progress=not args.no_progress)
    for p in paths:
        print(f"wrote {p}")
    return paths


def entry(prog: str, main: Callable[[Optional[list]], object], argv: Optional[list] = None):
    """Run a CLI `main(argv)`: logging to stderr, bad input as one line and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    with exit_on_user_error(prog):
        return main(argv)
