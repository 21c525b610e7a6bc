"""Turn an extraction pickle plus the class-split csvs into the benchmark layout.

    python splitting_scripts/split_features.py --dataset ucf \
        --features out/main_features_ucf.pkl --root_dir avgzsl_benchmark_datasets/UCF \
        --w2v word_embeddings_ucf_normed.npy
    python splitting_scripts/split_features.py --dataset ucf --temporal \
        --features out/main_features_ucf.pkl --root_dir avgzsl_benchmark_non_averaged_datasets/UCF ...

writes `{root_dir}/features/{main_features|cls_features}/{audio,video}/{split}/{Class}.h5`
(`data` float32 [N, D], `video_urls` S80 [N], audio and video rows in the same order) for the
six splits, copies the word vectors to `text/word_embeddings_{stem}_normed.npy`, and writes
`split_report.txt` beside them: every csv row not found in the pickle, every name found
twice in the pickle, every split whose csv is missing (docs/features.md, "Splitting").

The pickle's format decides the family: a dict (SeLaVi) -> main_features / main_split, a
list of `[video, class_id, audio, file_name]` (C3D/VGGish) -> cls_features / cls_split.
A per-window SeLaVi pickle (`video`/`audio` lists of [K, 512] arrays) or a per-clip C3D/VGGish
pickle (rows of [K, 4096] clips and [M, 128] uint8 examples) gives TCaF's temporal layout
(docs/tcaf.md 1): `features/{main|cls}_features_non_averaged/{audio,video}/{split}/{Class}.pkl`, each
a pickled dict {features: one [T, D] array per video, video_names: bytes, fps: 25s}, with the
same csv matching and report. `--temporal` given an averaged pickle reads its per-window /
per-clip sibling (`{stem}_per_window.pkl`, `{stem}_per_clip.pkl`).

A CLIP/CLAP pickle (rows `[image float16[512], class_id, audio float32[1024], file_name]`,
clip_feature_extraction; `--family clip` insists on it) gives ClipClap's layout (docs/clipclap.md 1.4):
`features/cls_features_non_averaged/{audio,video}/{split}/{Class}.pkl`, each {features: one 1-D
vector per video, video_names, fps: 25s} with the names aligned with the features (the
original's are not), videos with an empty image feature skipped and reported; `--clip_text`
copies both class-embedding files into `text/`. Several pickles (the original's 3 shards of
ActivityNet and VGGSound) are read as one.
"""
import argparse
import pickle
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from src.families import ALIASES, DATASETS, FAMILIES, STAGES  # noqa: E402
from src.errors import ArgumentParser, UserError  # noqa: E402
from src.extraction.cli import DATASET_HELP, dataset_name, entry  # noqa: E402
from src.io_utils import atomic_path, atomic_write_text  # noqa: E402
from src.storage import layout_of  # noqa: E402


@dataclass
class Features:
    family: str                 # FAMILIES key: "main" / "cls" (averaged), "main_temporal" / "cls_temporal", "clip"
    names: List[str]            # file names without extension, pickle order
    video: Union[np.ndarray, List[np.ndarray]]   # float32 [N, D_v], or temporal: N arrays [T_i, D_v],
    audio: Union[np.ndarray, List[np.ndarray]]   # or CLIP/CLAP: N vectors [D] (image float16, audio float32)
    skipped: List[str] = field(default_factory=list)   # CLIP/CLAP: videos with an empty image feature

    @property
    def temporal(self) -> bool:
        return FAMILIES[self.family].temporal

    @property
    def pickled(self) -> bool:
        """One .pkl per class (temporal sequences, or CLIP/CLAP vectors), not .h5 files."""
        return FAMILIES[self.family].pickled

    def rows(self, modality: str, idx: List[int]):
        x = getattr(self, modality)
        return [x[i] for i in idx] if self.pickled else x[idx]


@dataclass
class Report:
    written: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # split -> (classes, rows)
    missing_rows: List[Tuple[str, str, str]] = field(default_factory=list)  # split, class, name
    duplicates: List[str] = field(default_factory=list)
    missing_csv: List[str] = field(default_factory=list)
    empty_classes: List[Tuple[str, str]] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)   # CLIP/CLAP: empty image feature, not written
    notes: List[str] = field(default_factory=list)     # what the training code will miss (not counted)

    @property
    def problems(self) -> int:
        return (len(self.missing_rows) + len(self.duplicates) + len(self.missing_csv) + len(self.empty_classes)
                + len(self.skipped))

    def text(self) -> str:
        lines = [f"{s}: {c} classes, {n} rows" for s, (c, n) in self.written.items()]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"empty image feature (skipped): {n}" for n in self.skipped]
        lines += [f"missing csv: {s}.csv (split not written)" for s in self.missing_csv]
        lines += [f"found twice in the pickle (first kept): {n}" for n in self.duplicates]
        lines += [f"csv row not in the pickle: {s} {c} {n}" for s, c, n in self.missing_rows]
        lines += [f"class with no row: {s} {c}" for s, c in self.empty_classes]
        return "\n".join(lines) + "\n"


def _strip(name: str) -> str:
    p = Path(name)
    return p.stem if p.suffix else p.name


TEMPORAL_SUFFIXES = ("_per_window", "_per_clip")   # the extractors' temporal pickles beside the averaged one


def _load(path: Path):
    if not path.is_file():
        raise UserError(f"features pickle not found: {path} (the output of the extraction)")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, IndexError) as err:
        raise UserError(f"cannot read {path}: {type(err).__name__}: {err} (truncated or not a features "
                        f"pickle? extract it again, or resume the extraction)") from None


def _numpy(x) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def _tokens(x, path: Path, name: str, what: str, dtype: str = "float32") -> np.ndarray:
    """One video's [T, D] tokens: float32, or uint8 where the family stores quantised codes and
    the values are integers 0..255."""
    arr = _numpy(x)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.dtype.kind not in "iuf":
        raise UserError(f"{path}: the {what} of {name!r} are {arr.dtype} of shape {tuple(arr.shape)}; "
                        f"expected a non-empty [T, D] array of numbers per video (a per-window / per-clip "
                        f"pickle of the extraction)")
    if dtype == "uint8" and arr.dtype.kind in "iu" and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8)
    return arr.astype(np.float32)


def read_features(path, temporal: bool = False, family: Optional[str] = None) -> Features:
    """The features of an extraction pickle, or of several list pickles read as one (the
    original's shards); the format decides the family, or `family` ("clip") insists on one.
    With `temporal`, an averaged pickle is replaced by its per-window / per-clip sibling."""
    paths = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    if len(paths) > 1:
        objs = [_load(p) for p in paths]
        odd = [p for p, o in zip(paths, objs) if not isinstance(o, list)]
        if odd:
            raise UserError(f"{odd[0]} is not a list of [video, class_id, audio, file_name] rows: only such "
                            f"pickles (C3D/VGGish, CLIP/CLAP shards) can be given together; give one pickle")
        obj, path = [row for o in objs for row in o], paths[0]
    else:
        path = paths[0]
        obj = _load(path)
    feats = _parse(obj, path, family)
    if temporal and not feats.temporal:
        if feats.pickled:
            raise UserError(f"--temporal: {path} holds CLIP/CLAP vectors (one per video, no sequence); "
                            f"leave --temporal out")
        siblings = [path.with_name(path.stem + s + path.suffix) for s in TEMPORAL_SUFFIXES]
        found = [s for s in siblings if s.is_file()]
        if not found:
            raise UserError(f"--temporal: {path} holds averaged features and neither "
                            f"{' nor '.join(s.name for s in siblings)} is beside it; give the per-window "
                            f"(SeLaVi) or per-clip (C3D/VGGish) pickle of the extraction, which writes it "
                            f"unless --no_per_window / --no_per_clip")
        feats = _parse(_load(found[0]), found[0])
        if not feats.temporal:
            raise UserError(f"{found[0]} holds averaged features, not one sequence per video")
    return feats


CLIP_WIDTHS = (FAMILIES["clip"].video_width, FAMILIES["clip"].audio_width)   # image 512, audio 1024


def _is_clip(rows: list) -> bool:
    """Rows of CLIP/CLAP vectors: 1-D image vectors of 512 (or empty) and audio ones of 1024."""
    def shape(x):
        return np.shape(_numpy(x))

    return all(len(shape(r[0])) <= 1 and np.prod(shape(r[0])) in (0, CLIP_WIDTHS[0])
               and shape(r[2]) == (CLIP_WIDTHS[1],) for r in rows)


def _vector(x, path: Path, name: str, what: str, width: int) -> np.ndarray:
    """One video's CLIP/CLAP vector [width] in its float dtype (the image's float16 is kept)."""
    arr = _numpy(x).reshape(-1)
    if arr.shape != (width,) or arr.dtype.kind != "f":
        raise UserError(f"{path}: the {what} of {name!r} is {arr.dtype} of shape {tuple(arr.shape)}; expected "
                        f"a float [{width}] vector per video (a clip_features_*.pkl of clip_feature_extraction)")
    return arr if arr.dtype in (np.float16, np.float32) else arr.astype(np.float32)


def _parse_clip(rows: list, path: Path) -> Features:
    """docs/clipclap.md 1.4: videos with an empty image feature are skipped (kept in `skipped`)."""
    kept = [r for r in rows if _numpy(r[0]).size > 0]
    names = [_strip(str(r[3])) for r in kept]
    return Features("clip", names,
                    [_vector(r[0], path, n, "image feature", CLIP_WIDTHS[0]) for r, n in zip(kept, names)],
                    [_vector(r[2], path, n, "audio feature", CLIP_WIDTHS[1]) for r, n in zip(kept, names)],
                    skipped=[_strip(str(r[3])) for r in rows if _numpy(r[0]).size == 0])


def _parse(obj, path: Path, family: Optional[str] = None) -> Features:
    rows_format = isinstance(obj, list) and all(isinstance(r, (list, tuple)) and len(r) == 4 for r in obj)
    if family == "clip":
        if not (rows_format and obj and _is_clip(obj)):
            raise UserError(f"--family clip: {path} is not a CLIP/CLAP pickle (a list of [image float[512], "
                            f"class_id, audio float[1024], file_name] rows, clip_feature_extraction's output)")
        return _parse_clip(obj, path)
    if rows_format and obj and _is_clip(obj):
        return _parse_clip(obj, path)
    if isinstance(obj, dict) and {"video", "audio", "filenames"} <= set(obj):
        names = [_strip(str(n)) for n in obj["filenames"]]
        if isinstance(obj["video"], (list, tuple)):          # per-window: one [K, 512] per video
            if not (isinstance(obj["audio"], (list, tuple)) and len(obj["video"]) == len(obj["audio"])
                    == len(names)):
                raise UserError(f"{path}: a per-window pickle needs 'video' and 'audio' lists of one "
                                f"[K, 512] array per entry of 'filenames'")
            video = [_tokens(v, path, n, "video features") for v, n in zip(obj["video"], names)]
            audio = [_tokens(a, path, n, "audio features") for a, n in zip(obj["audio"], names)]
            odd = [n for n, v, a in zip(names, video, audio) if len(v) != len(a)]
            if odd:
                raise UserError(f"{path}: {len(odd)} videos (e.g. {odd[0]!r}) have different numbers of "
                                f"audio and video windows; SeLaVi's tokens are the same windows: "
                                f"re-extract them")
            return Features("main_temporal", names, video, audio)
        as_np = lambda x: np.asarray(_numpy(x), np.float32)  # noqa: E731
        return Features("main", names, as_np(obj["video"]), as_np(obj["audio"]))
    if isinstance(obj, list) and all(isinstance(r, (list, tuple)) and len(r) == 4 for r in obj):
        if not obj:
            raise UserError(f"{path} holds no video")
        ndims = {np.ndim(r[0]) for r in obj}
        names = [_strip(str(r[3])) for r in obj]
        if ndims == {2}:                                     # per-clip: [K, 4096] clips, [M, 128] examples
            audio_dtype = FAMILIES["cls_temporal"].audio_dtype
            return Features("cls_temporal", names,
                            [_tokens(r[0], path, n, "clip features") for r, n in zip(obj, names)],
                            [_tokens(r[2], path, n, "example features", audio_dtype)
                             for r, n in zip(obj, names)])
        if 2 in ndims:
            raise UserError(f"{path} mixes per-clip rows ([K, D] features) with averaged ones")
        return Features("cls", names,
                        np.stack([np.asarray(r[0], np.float32).reshape(-1) for r in obj]),
                        np.stack([np.asarray(r[2], np.float32).reshape(-1) for r in obj]))
    raise UserError(f"{path} is neither a SeLaVi pickle (dict with video, audio, filenames), a "
                    f"C3D/VGGish pickle nor a CLIP/CLAP pickle (lists of [video, class_id, audio, file_name])")


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


def split_features(features_path, class_split_dir, output_root, dataset: str,
                   w2v: Optional[str] = None, temporal: bool = False, family: Optional[str] = None,
                   clip_text: Optional[str] = None) -> Report:
    """Split one extraction pickle (or several list pickles read as one); `temporal`: the
    temporal layout even when given the averaged pickle (its per-window / per-clip sibling is
    read); `family="clip"`: insist on a CLIP/CLAP pickle; `clip_text`: the folder of its two
    class-embedding files (get_clip_embeddings.py --output_dir)."""
    feats = read_features(features_path, temporal, family)
    family = FAMILIES[feats.family]
    info = DATASETS[ALIASES[dataset]]
    if w2v and family.vectors:
        raise UserError(f"--w2v: CLIP/CLAP features use CLIP and WavCaps class embeddings, not word2vec; give "
                        f"--clip_text, the folder of {' and '.join(family.text_files(info))}")
    if clip_text and not family.vectors:
        raise UserError(f"--clip_text is for CLIP/CLAP pickles; the one given holds {family.networks} features "
                        f"(give --w2v)")
    class_split_dir, output_root = Path(class_split_dir), Path(output_root)
    split_dir = class_split_dir / family.split
    if not split_dir.is_dir():
        raise UserError(f"class split folder not found: {split_dir} (give --class_split, the dataset's "
                        f"class-split/ folder with {'/ and '.join(sorted({f.split for f in FAMILIES.values()}))}/)")
    report = Report(skipped=list(feats.skipped))
    skipped = set(feats.skipped)
    index: Dict[str, int] = {}
    for i, n in enumerate(feats.names):
        if n in index:
            report.duplicates.append(n)
        else:
            index[n] = i
    out = output_root / "features" / family.folder
    layout = layout_of(family)
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
            report.missing_rows += [(split, c, n) for n in listed if n not in index and n not in skipped]
            if not found:
                report.empty_classes.append((split, c))
            idx = [index[n] for n in found]
            for m in ("video", "audio"):
                # TCaF's sequences, or CLIP/CLAP's vectors with the names of the videos written (the
                # original listed every csv name: misaligned after a skip, docs/clipclap.md 1.4), or .h5 rows
                layout.write(out / m / split / f"{c}{layout.ext}", feats.rows(m, idx), found)
            total += len(found)
        report.written[split] = (len(classes), total)
    if w2v:
        npy_name = info.word_vector_file
        if not Path(w2v).is_file():
            raise UserError(f"word vectors not found: {w2v} ({npy_name})")
        target = out / "text" / npy_name
        with atomic_path(target) as tmp:
            shutil.copyfile(w2v, tmp)
    if family.vectors:
        _clip_text(report, family, info, clip_text, out / "text", class_split_dir)
    atomic_write_text(report.text(), out / "split_report.txt")
    return report


def _clip_text(report: Report, family, info, clip_text: Optional[str], text_dir: Path, class_split_dir: Path):
    """Copy the CLIP/CLAP class embeddings into `text_dir` and note what the training code
    will miss: without them the folder reads as TCaF's, and UCF needs ucf_clip_class_names.csv."""
    names = family.text_files(info)
    if clip_text:
        missing = [n for n in names if not (Path(clip_text) / n).is_file()]
        if missing:
            raise UserError(f"--clip_text {clip_text}: {', '.join(missing)} not found (make them with "
                            f"clip_feature_extraction/get_clip_embeddings.py --output_dir {clip_text})")
        for n in names:
            with atomic_path(text_dir / n) as tmp:
                shutil.copyfile(Path(clip_text) / n, tmp)
    elif not all((text_dir / n).is_file() for n in names):
        report.notes.append(f"no class embeddings in {text_dir} ({', '.join(names)}): give --clip_text; "
                            f"without them the training code reads this folder as TCaF's")
    csv_name, column = info.clip_names
    if not (class_split_dir / csv_name).is_file():
        fix = ("make it with clip_feature_extraction/get_clip_embeddings.py --make_ucf_class_names"
               if column == "clip_class_name" else "the class-split's word2vec mapping")
        report.notes.append(f"{class_split_dir / csv_name} is missing (the class names, column {column}): {fix}")


def get_args_parser(dataset=None) -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    if dataset is None:
        p.add_argument("--dataset", type=dataset_name, required=True, help=DATASET_HELP)
    p.add_argument("--features", required=True, nargs="+",
                   help="extraction pickle: main_features_{dataset}.pkl or cls_features_{dataset}.pkl "
                        "(averaged: .h5 layout), their _per_window / _per_clip pickles (temporal "
                        "layout), or clip_features_{dataset}.pkl (CLIP/CLAP: ClipClap's layout), found "
                        "from the pickle's format; several list pickles (the original's shards) are "
                        "read as one")
    p.add_argument("--family", choices=["clip"], default=None,
                   help="clip: insist that --features is a CLIP/CLAP pickle (found from its format "
                        "anyway): writes features/cls_features_non_averaged/{audio,video}/{split}/"
                        "{Class}.pkl, one vector per video (docs/clipclap.md 1.4; put it in its own dataset "
                        "folder, {data_dir}/ClipClap/{Dataset}, as TCaF's folder has the same name)")
    p.add_argument("--clip_text", default=None,
                   help="CLIP/CLAP: the folder holding word_embeddings_{ucf,activitynet,vggsound}_normed.npy "
                        "and wavcaps_word_embeddings_*_normed.npy (get_clip_embeddings.py --output_dir), "
                        "copied into features/cls_features_non_averaged/text/")
    p.add_argument("--temporal", action="store_true",
                   help="write TCaF's temporal layout, features/{main,cls}_features_non_averaged/"
                        "{audio,video}/{split}/{Class}.pkl (docs/tcaf.md 1); given the averaged pickle, "
                        "its _per_window / _per_clip sibling is read")
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
    report = split_features(args.features, class_split, root, dataset, w2v=args.w2v,
                            temporal=args.temporal, family=args.family, clip_text=args.clip_text)
    print(report.text() if report.problems < 50 else
          "\n".join(report.text().splitlines()[:50]) + f"\n... ({report.problems} problems)")
    print(f"report written to {root / 'features'}/*/split_report.txt")
    if args.strict and report.problems:
        sys.exit(1)
    return report


if __name__ == "__main__":
    entry("split_features.py", main)
