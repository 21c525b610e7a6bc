"""How a feature folder stores its features: one file per class and split for audio and for video,
`features/{folder}/{audio,video}/{split}/{Class}{ext}`, in one of three layouts, each a small class
that reads a folder pair (its files validated, problems a UserError naming the file), names the
version of its cache (src/features_cache.py) and writes one class file (atomically by default):

- `H5Rows`: `.h5` files of 'data' [N, D] and 'video_urls' [N] (the averaged families, docs/protocol.md 1);
- `PklSequences`: `.pkl` files of {'features': one [T, D] array per video, 'video_names', 'fps'}
  (TCaF's temporal families, docs/tcaf.md 1), read as `Sequences`;
- `PklVectors`: the same files holding one 1-d vector per video (the CLIP/CLAP family,
  docs/clipclap.md 3), read as [N, D] rows.

    layout = layout_of(family)                         # FeatureFamily.layout -> its class
    raw = layout.read_folder(dirs, family, notes, notices)   # tensors, as cached
    data = layout.unpack(raw, dirs)                    # audio and video as the data layer reads them
    layout.write(path, features, names)                # one class file (splitting, synthetic data)

The data loader, the cache, the splitting scripts and the synthetic generator read and write
through these classes only.
"""
import pickle
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import torch

from .cache_file import Pieces
from .errors import UserError
from .families import FeatureFamily
from .io_utils import atomic_path
from .sequences import Sequences

URL_DTYPE = "S80"   # the benchmark's video_urls
FPS = 25            # the temporal files' `fps` entry per video (docs/tcaf.md 1: 25s, read, never used)


def _names(raw, path: Path, key: str = "video_urls") -> List[str]:
    try:
        return [u.decode("utf-8") if isinstance(u, bytes) else str(u) for u in raw]
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: {key} are not UTF-8 ({err})") from None


def _check_repeated(names: List[str], path: Path, key: str = "video_urls", rows: str = "rows (of 'data' and "
                    "'video_urls')") -> None:
    repeated = [(n, k) for n, k in Counter(names).items() if k > 1]
    if repeated:
        shown = ", ".join(f"{n!r} {k} times" for n, k in repeated[:3])
        more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
        raise UserError(f"{path}: {key} lists {len(repeated)} video name(s) more than once "
                        f"({shown}{more}); a video must appear once per class: remove the repeated "
                        f"{rows} or re-extract the file")


def _describe_dtype(dtype) -> str:
    if dtype.kind in "SUaO":
        return "string"
    if dtype.kind == "V":
        return f"compound ({dtype})"
    return str(dtype)


def read_h5(path: Path, notes: Optional[List[str]] = None):
    """(data float32 [N, D], names [N]) of one `.h5`, with its problems as UserErrors.

    Integer features (quantised codes) are read as float32 with a warning appended to `notes`
    (logged by `features_cache.load_folder`); non-numeric 'data' and repeated video names are errors.
    """
    try:
        with h5py.File(path, "r") as f:
            for key in ("data", "video_urls"):
                if key not in f:
                    raise UserError(f"{path} has no dataset '{key}' (expected 'data' [N, D] and "
                                    f"'video_urls' [N])")
                if not isinstance(f[key], h5py.Dataset):
                    raise UserError(f"{path}: '{key}' is an HDF5 group, not a dataset (expected 'data' "
                                    f"[N, D] float features and 'video_urls' [N] names)")
            dtype = f["data"].dtype
            if dtype.kind in "iu":
                if notes is not None:
                    notes.append(f"{path}: 'data' is {dtype} (integer features, e.g. quantised codes): "
                                 f"read as float32")
            elif dtype.kind != "f":
                raise UserError(f"{path}: 'data' holds {_describe_dtype(dtype)} values, not numbers; "
                                f"expected float features [N, D]: re-extract this file")
            data = np.asarray(f["data"][()], dtype=np.float32)
            names = _names(f["video_urls"][()], path)
    except UserError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if data.ndim != 2:
        raise UserError(f"{path}: 'data' must be 2-d [N, D], got shape {data.shape}")
    if data.shape[0] != len(names):
        raise UserError(f"{path}: {data.shape[0]} rows of 'data' but {len(names)} video_urls")
    _check_repeated(names, path)
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).any(axis=1).sum())
        raise UserError(f"{path}: {bad} rows hold NaN or Inf values; re-extract or drop them")
    return data, names


def _check_widths(folder: Path, widths: Dict[str, int], ext: str = ".h5") -> None:
    """UserError naming the `{ext}` files of `folder` ({file name: width}) whose width differs."""
    counts = Counter(widths.values())
    if len(counts) <= 1:
        return
    (common, n_common), (_, n_second) = counts.most_common(2)
    fix = f"all {ext} files of a folder must hold features of one extractor: re-extract or remove the odd file(s)"
    if n_common > n_second:
        odd = sorted(n for n, w in widths.items() if w != common)
        shown = ", ".join(f"{n} is {widths[n]}-d" for n in odd[:5])
        more = f" (and {len(odd) - 5} more files)" if len(odd) > 5 else ""
        others = f"the other file is {common}-d" if n_common == 1 else f"the other {n_common} files are {common}-d"
        raise UserError(f"{folder}: {shown}{more} while {others}; {fix}")
    groups = []
    for w, k in sorted(counts.items()):
        names = sorted(n for n, x in widths.items() if x == w)
        groups.append(f"{w}-d: {', '.join(names[:3])}" + (f" and {k - 3} more" if k > 3 else ""))
    raise UserError(f"{folder}: the {ext} files have different feature widths ({'; '.join(groups)}); {fix}")


def _class_files(dirs: Dict[str, Path], ext: str = ".h5"):
    """({stem: audio file}, {stem: video file}) of one folder pair; the same classes in both."""
    audio_files = {p.stem: p for p in dirs["audio"].glob(f"*{ext}")}
    video_files = {p.stem: p for p in dirs["video"].glob(f"*{ext}")}
    if set(audio_files) != set(video_files):
        only_a = sorted(set(audio_files) - set(video_files))
        only_v = sorted(set(video_files) - set(audio_files))
        raise UserError(f"audio and video folders differ: {dirs['audio']} has {only_a[:5]} without "
                        f"video, {dirs['video']} has {only_v[:5]} without audio; every class needs both its "
                        f"audio and its video {ext} file: add the missing files or remove the extra ones")
    return audio_files, video_files


def _check_same_videos(a_path: Path, v_path: Path, a_names: List[str], v_names: List[str],
                       temporal: bool = False) -> None:
    if a_names != v_names:
        first = next((k for k, (x, y) in enumerate(zip(a_names, v_names)) if x != y),
                     min(len(a_names), len(v_names)))
        if not temporal:
            raise UserError(f"{a_path} and {v_path} list different videos "
                            f"(first difference at row {first}); audio and video rows must match")
        shown = lambda names: repr(names[first]) if first < len(names) else "nothing"  # noqa: E731
        raise UserError(f"{a_path} and {v_path} list different videos ({len(a_names)} and {len(v_names)}; "
                        f"first difference at position {first}: {shown(a_names)} and {shown(v_names)}); "
                        f"audio and video files of a class must list the same videos in the same order")


def build_folder(dirs: Dict[str, Path], notes: Optional[List[str]] = None) -> dict:
    audio_files, video_files = _class_files(dirs)
    classes = sorted(audio_files)
    audio, video, row_class, urls = [], [], [], []
    for i, stem in enumerate(classes):
        a, a_names = read_h5(audio_files[stem], notes)
        v, v_names = read_h5(video_files[stem], notes)
        _check_same_videos(audio_files[stem], video_files[stem], a_names, v_names)
        audio.append(a)
        video.append(v)
        row_class.append(np.full(len(a), i, dtype=np.int64))
        urls.extend(a_names)
    _check_widths(dirs["audio"], {f"{s}.h5": x.shape[1] for s, x in zip(classes, audio)})
    _check_widths(dirs["video"], {f"{s}.h5": x.shape[1] for s, x in zip(classes, video)})
    return {"classes": classes, "audio": Pieces(audio), "video": Pieces(video),
            "row_class": torch.from_numpy(np.concatenate(row_class)) if row_class else torch.zeros(0, dtype=torch.long),
            "urls": urls}


# -- .pkl folders: token sequences (docs/tcaf.md 1) and CLIP/CLAP vectors (docs/clipclap.md 3) ----------------
PKL_FORMAT = "a pickled dict with 'features' (one [T, D] array per video) and 'video_names'"
VECTORS_FORMAT = "a pickled dict with 'features' (one 1-d [D] vector per video) and 'video_names'"   # CLIP/CLAP


def _one_line(err: Exception) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:200]


class PklFile(NamedTuple):
    """One class file of a temporal or CLIP/CLAP folder, read and checked (see `read_pkl`)."""
    values: np.ndarray      # float32 [sum T_i, D]: the tokens of every video, video after video
    lengths: np.ndarray     # int64 [N]: T_i
    names: List[str]        # its 'video_names' (more than N in an unaligned CLIP/CLAP file)
    width: Optional[int]    # D, None when N = 0
    unit_floats: bool = False   # float features all within [0, 1] where `integer_dtype` codes were expected

    @property
    def aligned(self) -> bool:
        """Whether names[i] is the name of row i (False: a CLIP/CLAP file listing more names than rows)."""
        return len(self.names) == len(self.lengths)


def read_pkl(path: Path, notes: Optional[List[str]] = None, integer_dtype: Optional[str] = None,
             vectors: bool = False) -> PklFile:
    """One temporal `.pkl` (tokens float32 [sum T_i, D], lengths [N], names, D or None when N = 0),
    with its problems as UserErrors naming the file (and the video).

    Integer tokens are read as float32 with their values unchanged; a warning is appended to
    `notes` unless their dtype is `integer_dtype` (the family's stored dtype, e.g. uint8 VGGish).
    Float tokens all within [0, 1] where `integer_dtype` is "uint8" (codes 0..255, e.g. divided by
    255 by a re-export) are flagged in `unit_floats` (the caller warns once per folder).
    vectors: a CLIP/CLAP file, one 1-d vector per video (read as one token); it may list more
    names than rows (ClipClap's splitting keeps the names of the videos it drops, docs/clipclap.md 1.4):
    its rows are then read by position and its names are neither checked nor used (`aligned`).
    """
    fmt = VECTORS_FORMAT if vectors else PKL_FORMAT
    per_video = "a 1-d [D] vector per video" if vectors else "a [T, D] float array per video"
    try:
        with open(path, "rb") as f:
            blob = pickle.load(f)
    except OSError as err:
        raise UserError(f"cannot read {path}: {_one_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - a truncated or garbage pickle fails in many ways
        raise UserError(f"cannot read {path}: not a readable pickle ({_one_line(err)}); expected "
                        f"{fmt}: re-create the file") from None
    if not isinstance(blob, dict):
        raise UserError(f"{path} holds a {type(blob).__name__}; expected {fmt}: re-create the file")
    for key in ("features", "video_names"):
        if key not in blob:
            keys = ", ".join(repr(k) for k in list(blob)[:5]) or "none"
            raise UserError(f"{path} has no '{key}' (its keys: {keys}); expected {fmt}: re-create the file")
    feats, raw_names = blob["features"], blob["video_names"]
    for key, value in (("features", feats), ("video_names", raw_names)):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__"):
            raise UserError(f"{path}: '{key}' is a {type(value).__name__}, expected a list (one entry per "
                            f"video); expected {fmt}: re-create the file")
    names = _names(raw_names, path, "video_names")
    aligned = len(feats) == len(names)
    if not aligned and not (vectors and len(names) > len(feats)):
        raise UserError(f"{path}: {len(feats)} entries in 'features' but {len(names)} in 'video_names'; "
                        f"one [T, D] array per video name")
    if aligned:
        _check_repeated(names, path, "video_names", "entries (of 'features' and 'video_names')")
        who = [f"video {n!r}" for n in names]
    else:                       # names that are not the rows' are never shown as theirs
        who = [f"the video of row {i} (its name unknown: 'video_names' lists {len(names)} names for "
               f"{len(feats)} rows)" for i in range(len(feats))]
    arrays, width, integers, floats = [], None, set(), False
    for k, x in enumerate(feats):
        try:
            arr = np.asarray(x)
        except Exception as err:  # noqa: BLE001 - ragged nested lists and the like
            raise UserError(f"{path}: the features of {who[k]} are not an array ({_one_line(err)}); "
                            f"expected {per_video}: re-extract this file") from None
        if arr.dtype.kind not in "iuf":
            what = "Python object" if arr.dtype.kind == "O" else _describe_dtype(arr.dtype)
            raise UserError(f"{path}: the features of {who[k]} hold {what} "
                            f"values, not numbers; expected {per_video}: re-extract "
                            f"this file")
        if vectors and arr.ndim == 1:
            if arr.size == 0:
                raise UserError(f"{path}: the features of {who[k]} are an empty vector (0 values); expected "
                                f"{per_video}: drop the video (from 'features' and 'video_names') or re-extract it")
            arr = arr[None]         # one vector: one token (as TCaF's collator)
        if vectors and arr.ndim != 2:
            raise UserError(f"{path}: the features of {who[k]} have shape {tuple(arr.shape)}; expected "
                            f"{per_video}: re-extract this file")
        if arr.ndim != 2:
            raise UserError(f"{path}: the features of {who[k]} have shape {tuple(arr.shape)}; "
                            f"expected 2-d [T, D] (one row per time step)")
        if arr.shape[0] == 0:
            raise UserError(f"{path}: {who[k]} has an empty sequence (0 time steps); every video "
                            f"needs at least one token: drop it (from 'features' and 'video_names') or "
                            f"re-extract it")
        if width is None:
            width = arr.shape[1]
        elif arr.shape[1] != width:
            raise UserError(f"{path}: {who[k]} has {arr.shape[1]}-d features while {who[0]} "
                            f"has {width}-d; a file holds features of one extractor: re-extract it")
        if arr.dtype.kind in "iu":
            integers.add(str(arr.dtype))
        else:
            floats = True
        arrays.append(arr)
    if notes is not None and integers - {integer_dtype}:
        notes.append(f"{path}: 'features' are {', '.join(sorted(integers))} (integer features, e.g. "
                     f"quantised codes): read as float32")
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    values = (np.concatenate(arrays, axis=0, dtype=np.float32) if arrays
              else np.zeros((0, 0), dtype=np.float32))
    if not np.isfinite(values).all():
        bad_rows = np.nonzero(~np.isfinite(values).all(axis=1))[0]
        bad = np.unique(np.searchsorted(np.cumsum(lengths), bad_rows, side="right"))
        others = f" (and {len(bad) - 1} more videos)" if len(bad) > 1 else ""
        raise UserError(f"{path}: {who[bad[0]]}{others} holds NaN or Inf values; re-extract "
                        f"or drop it")
    unit_floats = (integer_dtype == "uint8" and floats and not integers and values.size > 0
                   and float(values.min()) >= 0.0 and float(values.max()) <= 1.0)
    return PklFile(values, lengths, names, width, unit_floats)


def build_temporal_folder(dirs: Dict[str, Path], family: FeatureFamily, notes: Optional[List[str]] = None,
                          notices: Optional[List[str]] = None, vectors: bool = False) -> dict:
    """The validated `.pkl` files of one folder pair of `family`, packed: {"classes", "audio" and
    "video" as {"values" (`Pieces`: the tokens class file by class file), "offsets", "lengths"}
    (see `_as_sequences`), "row_class", "urls"};
    vectors: CLIP/CLAP files (one 1-d vector per video, read as one token).

    Reading warnings of single files go to `notes`; what the originals accept but is odd goes to
    `notices`, one line for the whole folder (without its place, which `features_cache.load_folder` puts first):
    SeLaVi videos whose audio and video token counts differ (kept: TCaF pads each modality on its
    own, docs/tcaf.md 2), and CLIP/CLAP class files listing more names than rows (their rows paired by
    position, as ClipClap; the videos of such a class are named '{split}/{Class}.pkl#row{i}', as
    its names may belong to other videos). Audio and video files of a class holding different
    numbers of videos stay an error."""
    audio_files, video_files = _class_files(dirs, ".pkl")
    classes = sorted(audio_files)
    split = dirs["audio"].name
    parts = {"audio": [], "video": []}
    widths = {"audio": {}, "video": {}}
    row_class, urls = [], []
    uneven: List[Tuple[str, int, int]] = []         # SeLaVi: (class/video, T_a, T_v) of each odd video
    unaligned: List[Tuple[str, int, int]] = []      # CLIP/CLAP: (modality/split/file, names, rows) of each file
    unaligned_classes, unaligned_videos = 0, 0
    unit_audio: List[str] = []                      # cls (uint8 VGGish codes expected): float files within [0, 1]
    for i, stem in enumerate(classes):
        a = read_pkl(audio_files[stem], notes, family.audio_dtype, vectors)
        v = read_pkl(video_files[stem], notes, vectors=vectors)
        if a.unit_floats:
            unit_audio.append(audio_files[stem].name)
        if a.aligned and v.aligned:
            _check_same_videos(audio_files[stem], video_files[stem], a.names, v.names, temporal=True)
            names = a.names
        else:       # CLIP/CLAP (docs/clipclap.md 1.4): the names are not the rows', rows pair by position
            if len(a.lengths) != len(v.lengths):
                raise UserError(f"{audio_files[stem]} and {video_files[stem]} hold {len(a.lengths)} and "
                                f"{len(v.lengths)} feature rows, but their rows are paired by position (their "
                                f"'video_names' list more names than rows, so names cannot pair them): both files "
                                f"need the same videos in the same order; re-extract the class")
            for m, f in (("audio", a), ("video", v)):
                if not f.aligned:
                    unaligned.append((f"{m}/{split}/{stem}.pkl", len(f.names), len(f.lengths)))
            unaligned_classes += 1
            unaligned_videos += len(a.lengths)
            names = [f"{split}/{stem}.pkl#row{j}" for j in range(len(a.lengths))]
        if family.same_length:
            # TCaF trains on such videos, each modality padded on its own (docs/tcaf.md 2): kept, counted
            uneven += [(f"{stem}/{names[k]}", int(a.lengths[k]), int(v.lengths[k]))
                       for k in np.nonzero(a.lengths != v.lengths)[0]]
        for m, f in (("audio", a), ("video", v)):
            parts[m].append((f.values, f.lengths))
            if f.width is not None:
                widths[m][f"{stem}.pkl"] = f.width
        row_class.append(np.full(len(a.lengths), i, dtype=np.int64))
        urls.extend(names)
    if unit_audio and notes is not None:       # one line for the folder, naming its first such file
        more = (f"as are {len(unit_audio) - 1} more of the {len(classes)} .pkl files of its folder"
                if len(unit_audio) > 1 else f"the only one of the {len(classes)} .pkl files of its folder")
        notes.append(f"{dirs['audio'] / unit_audio[0]}: float audio features all within [0, 1] ({more}), but this "
                     f"folder's VGGish audio is stored as {family.audio_dtype} codes 0..255, which TCaF divides by 255 "
                     f"(docs/tcaf.md 1): codes already divided by 255 would end near 0; re-export them as uint8 codes "
                     f"(the values times 255)")
    if uneven and notices is not None:
        name, t_a, t_v = uneven[0]
        notices.append(f"{len(uneven)} of {len(urls)} videos have different audio and video token counts "
                       f"(first: {name}, audio {t_a}, video {t_v}); each modality is padded on its own, as TCaF does")
    if unaligned and notices is not None:
        name, n_names, n_rows = unaligned[0]
        files = f"{len(unaligned)} class file{'s list' if len(unaligned) > 1 else ' lists'}"
        notices.append(f"{files} more video names than feature rows (first: {name}, {n_names} names for "
                       f"{n_rows} rows; ClipClap's splitting keeps the names of the videos it drops): the audio "
                       f"and video rows of {unaligned_classes} class{'es' if unaligned_classes > 1 else ''} "
                       f"({unaligned_videos} videos) are paired by position, as ClipClap does; their names are not "
                       f"used (the videos are called '{split}/{{Class}}.pkl#row{{i}}')")
    out = {"classes": classes, "urls": urls,
           "row_class": torch.from_numpy(np.concatenate(row_class)) if row_class else torch.zeros(0, dtype=torch.long)}
    for m in ("audio", "video"):
        _check_widths(dirs[m], widths[m], ".pkl")
        width = next(iter(widths[m].values()), 0)
        values = Pieces([v for v, _ in parts[m] if len(v)], width)    # class after class, joined by the cache
        lengths = (torch.from_numpy(np.concatenate([n for _, n in parts[m]])) if parts[m]
                   else torch.zeros(0, dtype=torch.long))
        out[m] = {"values": values, "offsets": torch.cumsum(lengths, 0) - lengths, "lengths": lengths}
    return out


def _as_sequences(data: dict) -> dict:
    """A temporal folder's cached dict with its audio and video as `Sequences`."""
    return {**data, **{m: Sequences(data[m]["values"], data[m]["offsets"], data[m]["lengths"])
                       for m in ("audio", "video")}}


def as_vectors(data: dict, dirs: Dict[str, Path]) -> dict:
    """A CLIP/CLAP folder read as one-token sequences, as [N, D] rows (every video one vector)."""
    for m in ("audio", "video"):
        lengths = data[m].lengths
        if len(lengths) and bool((lengths != 1).any()):
            k = int((lengths != 1).nonzero()[0, 0])
            raise UserError(f"{dirs[m]}: video {data['urls'][k]!r} has {int(lengths[k])} "
                            f"feature rows; in this CLIP/CLAP folder every video is one 1-d vector")
    return {**data, "audio": data["audio"].values, "video": data["video"].values}


@contextmanager
def _written(path: Path, atomic: bool):
    """The path to write `path` through: a temp file renamed onto it once complete (`atomic`), or
    `path` itself (a generator filling a new folder, where a temp file per class file costs more
    than the data)."""
    if atomic:
        with atomic_path(path) as tmp:
            yield tmp
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield path


def write_h5(path: Path, data: np.ndarray, names: List[str], atomic: bool = True) -> None:
    """One class file of an averaged family: 'data' float32 [N, D], 'video_urls' [N] as URL_DTYPE."""
    long = [n for n in names if len(n.encode()) > int(URL_DTYPE[1:])]
    if long:
        raise UserError(f"video names longer than {URL_DTYPE[1:]} bytes do not fit the benchmark's "
                        f"{URL_DTYPE} video_urls (e.g. {long[0]!r}): shorten the file names")
    with _written(Path(path), atomic) as target:
        with h5py.File(target, "w") as f:
            f.create_dataset("data", data=np.asarray(data, np.float32))
            f.create_dataset("video_urls", data=np.array([n.encode() for n in names], dtype=URL_DTYPE))


def write_pkl(path: Path, features: Sequence[np.ndarray], names: List[str], atomic: bool = True) -> None:
    """One class file of a temporal or CLIP/CLAP family (docs/tcaf.md 1): {features: one array per video
    ([T, D] tokens or a 1-d vector), video_names: bytes, fps: 25 per video (read, never used)}."""
    with _written(Path(path), atomic) as target:
        with open(target, "wb") as f:
            pickle.dump({"features": list(features), "video_names": [n.encode() for n in names],
                         "fps": [FPS] * len(names)}, f)


# -- the layouts ----------------------------------------------------------------------------------

class Layout:
    """A feature folder's storage: its files' extension, its cache's version, how a folder pair
    ({"audio": dir, "video": dir}) is read and unpacked, and how one class file is written."""
    ext: str
    cache_version: Union[int, str]

    def read_folder(self, dirs: Dict[str, Path], family: FeatureFamily, notes: Optional[List[str]] = None,
                    notices: Optional[List[str]] = None) -> dict:
        """{"classes": [file stems], "audio", "video", "row_class" [n] (index into classes), "urls":
        [n names]} as tensors (what the cache holds), the features as `Pieces` (one block of rows per
        class file, joined by `cache_file.save_pieces` or `cache_file.joined`); reading warnings go
        to `notes`, what the originals accept but is odd to `notices` (one line per folder)."""
        raise NotImplementedError

    def unpack(self, raw: dict, dirs: Dict[str, Path]) -> dict:
        """`read_folder`'s (or the cache's) dict with its audio and video as the data layer reads them."""
        return raw

    def write(self, path: Path, features, names: List[str], atomic: bool = True) -> None:
        """One class file: the features of the videos `names`, in their order (through a temp file
        renamed onto `path` unless `atomic` is False)."""
        raise NotImplementedError


class H5Rows(Layout):
    """Averaged features: one [N, D] float matrix per class file (`.h5`)."""
    ext = ".h5"
    cache_version = 2   # 2: integer-dtype warnings kept, repeated video names and widths
                        # per file checked

    def read_folder(self, dirs, family, notes=None, notices=None) -> dict:
        return build_folder(dirs, notes)

    def write(self, path: Path, features, names: List[str], atomic: bool = True) -> None:
        write_h5(path, features, names, atomic)


class PklSequences(Layout):
    """Token sequences: one [T_i, D] array per video in each class file (`.pkl`), read as `Sequences`."""
    ext = ".pkl"
    cache_version = "temporal-2"    # never equal to an averaged one; 2: the warning of float VGGish audio
                                    # within [0, 1] kept
    vectors = False

    def read_folder(self, dirs, family, notes=None, notices=None) -> dict:
        return build_temporal_folder(dirs, family, notes, notices, vectors=self.vectors)

    def unpack(self, raw: dict, dirs: Dict[str, Path]) -> dict:
        return _as_sequences(raw)

    def write(self, path: Path, features, names: List[str], atomic: bool = True) -> None:
        write_pkl(path, features, names, atomic)


class PklVectors(PklSequences):
    """CLIP/CLAP vectors: one 1-d vector per video in each class file (`.pkl`), read as [N, D] rows."""
    cache_version = "vectors-1"     # its folder name is a temporal family's
    vectors = True

    def unpack(self, raw: dict, dirs: Dict[str, Path]) -> dict:
        return as_vectors(_as_sequences(raw), dirs)


LAYOUTS: Dict[str, Layout] = {"h5": H5Rows(), "sequences": PklSequences(), "vectors": PklVectors()}


def layout_of(family: FeatureFamily) -> Layout:
    """The storage class of a family's folder."""
    return LAYOUTS[family.layout]
