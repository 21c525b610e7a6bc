"""The list of videos to extract: one folder per class, or a csv of `video,class`.

    items = list_videos("UCF101/")                 # {root}/{ClassName}/{video}.{avi,mp4,...}
    items = list_videos("vggsound/", "list.csv")   # rows `video,class`, paths under root

Classes are numbered by their index in the sorted class list (docs/features.md, Output). The
order of the list is the order of every output (folder layout: by class, then file name;
csv: the csv's row order), whatever the number of ranks that extract it.
"""
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from src.errors import UserError

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")


@dataclass(frozen=True)
class VideoItem:
    path: str       # relative to the videos root (or absolute), as listed
    label: str      # class name
    class_id: int   # index of `label` in the sorted class list

    @property
    def file_name(self) -> str:
        """The file name with its extension (the cls pickles' `file_name`)."""
        return Path(self.path).name

    @property
    def stem(self) -> str:
        """The file name without its extension (the SeLaVi pickle's `filenames`)."""
        return Path(self.path).stem


def list_videos(root, video_list: Optional[str] = None) -> List[VideoItem]:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"videos folder not found: {root}. Pass --root_dir, the folder that "
                        f"holds one sub-folder per class (or the paths of --video_list).")
    pairs = _read_csv(Path(video_list)) if video_list else _walk(root)
    if not pairs:
        where = video_list or f"{root}/{{ClassName}}/*{{{','.join(VIDEO_EXTENSIONS)}}}"
        raise UserError(f"no videos found in {where}")
    classes = sorted({label for _, label in pairs})
    index = {c: i for i, c in enumerate(classes)}
    return [VideoItem(p, label, index[label]) for p, label in pairs]


def _walk(root: Path):
    pairs = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(class_dir.iterdir()):
            if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS:
                pairs.append((f"{class_dir.name}/{f.name}", class_dir.name))
    return pairs


def _read_csv(path: Path):
    if not path.is_file():
        raise UserError(f"video list not found: {path}. Give a csv of `video,class` rows.")
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(x.strip() for x in r)]
    if rows and [x.strip().lower() for x in rows[0][:2]] == ["video", "class"]:
        rows = rows[1:]
    bad = [i for i, r in enumerate(rows) if len(r) < 2 or not r[0].strip() or not r[1].strip()]
    if bad:
        raise UserError(f"{path}: row {bad[0] + 1} is not `video,class`: {rows[bad[0]]}")
    return [(r[0].strip(), r[1].strip()) for r in rows]


def resolve(root, item: VideoItem) -> Path:
    p = Path(item.path)
    return p if p.is_absolute() else Path(root) / p
