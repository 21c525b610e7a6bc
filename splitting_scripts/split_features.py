"""Turn an extraction pickle plus the class-split csvs into the benchmark layout.

    python splitting_scripts/split_features.py --dataset ucf \
        --features out/main_features_ucf.pkl --root_dir avgzsl_benchmark_datasets/UCF \
        --w2v word_embeddings_ucf_normed.npy

writes `{root_dir}/features/{main_features|cls_features}/{audio,video}/{split}/{Class}.h5`
(`data` float32 [N, D], `video_urls` S80 [N], audio and video rows in the same order) for the
six splits, copies the word vectors to `text/word_embeddings_{stem}_normed.npy`, and writes
`split_report.txt` beside them: every csv row not found in the pickle, every name found
twice in the pickle, every split whose csv is missing (FEATURES.md, "Splitting").

The pickle's format decides the family: a dict (SeLaVi) -> main_features / main_split, a
list of `[video, class_id, audio, file_name]` (C3D/VGGish) -> cls_features / cls_split.
"""
import argparse
import pickle
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import h5py
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from src.benchmarks import ALIASES, DATASETS, FAMILIES, STAGES  # noqa: E402
from src.errors import ArgumentParser, UserError  # noqa: E402
from src.extraction.cli import DATASET_HELP, dataset_name, entry  # noqa: E402
from src.io_utils import atomic_path, atomic_write_text  # noqa: E402

URL_DTYPE = "S80"


@dataclass
class Features:
    family: str                 # "main" (SeLaVi) or "cls" (C3D/VGGish)
    names: List[str]            # file names without extension, pickle order
    video: np.ndarray           # float32 [N, D_v]
    audio: np.ndarray           # float32 [N, D_a]


@dataclass
class Report:
    written: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # split -> (classes, rows)
    missing_rows: List[Tuple[str, str, str]] = field(default_factory=list)  # split, class, name
    duplicates: List[str] = field(default_factory=list)
    missing_csv: List[str] = field(default_factory=list)
    empty_classes: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return len(self.missing_rows) + len(self.duplicates) + len(self.missing_csv) + len(self.empty_classes)

    def text(self) -> str:
        lines = [f"{s}: {c} classes, {n} rows" for s, (c, n) in self.written.items()]
        lines += [f"missing csv: {s}.csv (split not written)" for s in self.missing_csv]
        lines += [f"found twice in the pickle (first kept): {n}" for n in self.duplicates]
        lines += [f"csv row not in the pickle: {s} {c} {n}" for s, c, n in self.missing_rows]
        lines += [f"class with no row: {s} {c}" for s, c in self.empty_classes]
        return "\n".join(lines) + "\n"


def _strip(name: str) -> str:
    p = Path(name)
    return p.stem if p.suffix else p.name


def read_features(path) -> Features:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"features pickle not found: {path} (the output of the extraction)")
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, IndexError) as err:
        raise UserError(f"cannot read {path}: {type(err).__name__}: {err} (truncated or not a features "
                        f"pickle? extract it again, or resume the extraction)") from None
    if isinstance(obj, dict) and {"video", "audio", "filenames"} <= set(obj):
        as_np = lambda x: np.asarray(x.cpu().numpy() if hasattr(x, "cpu") else x, np.float32)  # noqa: E731
        return Features("main", [_strip(str(n)) for n in obj["filenames"]],
                        as_np(obj["video"]), as_np(obj["audio"]))
    if isinstance(obj, list) and all(isinstance(r, (list, tuple)) and len(r) == 4 for r in obj):
        if not obj:
            raise UserError(f"{path} holds no video")
        return Features("cls", [_strip(str(r[3])) for r in obj],
                        np.stack([np.asarray(r[0], np.float32).reshape(-1) for r in obj]),
                        np.stack([np.asarray(r[2], np.float32).reshape(-1) for r in obj]))
    raise UserError(f"{path} is neither a SeLaVi pickle (dict with video, audio, filenames) nor "
                    f"a C3D/VGGish pickle (list of [video, class_id, audio, file_name]); note the "
                    f"per-clip pickle cannot be split, use the averaged one")


def read_split_csv(path: Path) -> Dict[str, List[str]]:
    """{label: its file names, each once, in csv order} of a `stage_*.csv` (columns found by name)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    if not {"filename", "label"} <= set(table.columns):
        raise UserError(f"{path}: expected columns filename and label, got {list(table.columns) or None}")
    table = table[["label", "filename"]].apply(lambda column: column.str.strip()).drop_duplicates()
    return table.groupby("label", sort=False)["filename"].agg(list).to_dict()


def write_h5(path: Path, data: np.ndarray, names: List[str]) -> None:
    long = [n for n in names if len(n.encode()) > int(URL_DTYPE[1:])]
    if long:
        raise UserError(f"video names longer than {URL_DTYPE[1:]} bytes do not fit the benchmark's "
                        f"{URL_DTYPE} video_urls (e.g. {long[0]!r}): shorten the file names")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=np.asarray(data, np.float32))
            f.create_dataset("video_urls", data=np.array([n.encode() for n in names], dtype=URL_DTYPE))


def split_features(features_path, class_split_dir, output_root, dataset: str,
                   w2v: Optional[str] = None) -> Report:
    feats = read_features(features_path)
    family = FAMILIES[feats.family]
    class_split_dir, output_root = Path(class_split_dir), Path(output_root)
    split_dir = class_split_dir / family.split
    if not split_dir.is_dir():
        raise UserError(f"class split folder not found: {split_dir} (give --class_split, the dataset's "
                        f"class-split/ folder with {'/ and '.join(f.split for f in FAMILIES.values())}/)")
    report = Report()
    index: Dict[str, int] = {}
    for i, n in enumerate(feats.names):
        if n in index:
            report.duplicates.append(n)
        else:
            index[n] = i
    out = output_root / "features" / family.folder
    for split in STAGES:
        txt, csv_path = split_dir / f"{split}.txt", split_dir / f"{split}.csv"
        if not txt.is_file():
            raise UserError(f"missing class list {txt}")
        classes = [c.strip() for c in txt.read_text().splitlines() if c.strip()]
        if not csv_path.is_file():
            report.missing_csv.append(split)
            continue
        rows = read_split_csv(csv_path)
        total = 0
        for c in classes:
            listed = rows.get(c, [])
            found = sorted((n for n in listed if n in index), key=index.get)  # pickle order
            report.missing_rows += [(split, c, n) for n in listed if n not in index]
            if not found:
                report.empty_classes.append((split, c))
            idx = [index[n] for n in found]
            write_h5(out / "video" / split / f"{c}.h5", feats.video[idx], found)
            write_h5(out / "audio" / split / f"{c}.h5", feats.audio[idx], found)
            total += len(found)
        report.written[split] = (len(classes), total)
    if w2v:
        npy_name = DATASETS[ALIASES[dataset]].word_vector_file
        if not Path(w2v).is_file():
            raise UserError(f"word vectors not found: {w2v} ({npy_name})")
        target = out / "text" / npy_name
        with atomic_path(target) as tmp:
            shutil.copyfile(w2v, tmp)
    atomic_write_text(report.text(), out / "split_report.txt")
    return report


def get_args_parser(dataset=None) -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    if dataset is None:
        p.add_argument("--dataset", type=dataset_name, required=True, help=DATASET_HELP)
    p.add_argument("--features", required=True,
                   help="extraction pickle: main_features_{dataset}.pkl or cls_features_{dataset}.pkl")
    p.add_argument("--root_dir", required=True,
                   help="dataset folder that receives features/ (e.g. avgzsl_benchmark_datasets/UCF)")
    p.add_argument("--class_split", default=None,
                   help="class-split folder (default: {root_dir}/class-split or class_split); "
                        "copied into --root_dir when it lies elsewhere")
    p.add_argument("--w2v", default=None, help="word-vector .npy to copy into features/{method}/text/")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when a csv row is missing, a name is duplicated, ...")
    return p


def main(argv=None, dataset=None):
    args = get_args_parser(dataset).parse_args(argv)
    dataset = dataset or args.dataset
    root = Path(args.root_dir)
    class_split = Path(args.class_split) if args.class_split else next(
        (root / n for n in ("class-split", "class_split") if (root / n).is_dir()), root / "class-split")
    if not class_split.is_dir():
        raise UserError(f"class split folder not found: {class_split} (pass --class_split)")
    inside = [root / "class-split", root / "class_split"]
    if not any(class_split.resolve() == p.resolve() for p in inside if p.exists()):
        shutil.copytree(class_split, root / "class-split", dirs_exist_ok=True)
    report = split_features(args.features, class_split, root, dataset, w2v=args.w2v)
    print(report.text() if report.problems < 50 else
          "\n".join(report.text().splitlines()[:50]) + f"\n... ({report.problems} problems)")
    print(f"report written to {root / 'features'}/*/split_report.txt")
    if args.strict and report.problems:
        sys.exit(1)
    return report


if __name__ == "__main__":
    entry("split_features.py", main)
