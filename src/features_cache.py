"""Read one feature folder's `.h5` files into validated tensors, through an atomic cache.

`load_folder` returns {"classes": [file stems], "audio" [n, D_a], "video" [n, D_v],
"row_class" [n] (index into classes), "urls": [n names]}. The cache
`{root}/_features_processed/{method}/{folder}.pt` records the name, size and mtime of every
source file; a cache that does not match them, or cannot be read, is rebuilt. Warnings found
while reading (integer features read as float32) are kept in the cache and logged at every load.
"""
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import h5py
import numpy as np
import torch

from .benchmarks import FAMILIES
from .errors import UserError
from .io_utils import atomic_torch_save

log = logging.getLogger(__name__)
CACHE_VERSION = 2      # 2: integer-dtype warnings kept, repeated video names and widths per file checked


def _sources(dirs: Dict[str, Path]) -> List[tuple]:
    out = []
    for modality, d in dirs.items():
        for p in sorted(d.glob("*.h5")):
            st = p.stat()
            out.append((modality, p.name, st.st_size, st.st_mtime_ns))
    return out


def _names(raw, path: Path) -> List[str]:
    try:
        return [u.decode("utf-8") if isinstance(u, bytes) else str(u) for u in raw]
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: video_urls are not UTF-8 ({err})") from None


def _describe_dtype(dtype) -> str:
    if dtype.kind in "SUaO":
        return "string"
    if dtype.kind == "V":
        return f"compound ({dtype})"
    return str(dtype)


def read_h5(path: Path, notes: Optional[List[str]] = None):
    """(data float32 [N, D], names [N]) of one `.h5`, with its problems as UserErrors.

    Integer features (quantised codes) are read as float32 with a warning appended to `notes`
    (logged by `load_folder`); non-numeric 'data' and repeated video names are errors.
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
    repeated = [(n, k) for n, k in Counter(names).items() if k > 1]
    if repeated:
        shown = ", ".join(f"{n!r} {k} times" for n, k in repeated[:3])
        more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
        raise UserError(f"{path}: video_urls lists {len(repeated)} video name(s) more than once "
                        f"({shown}{more}); a video must appear once per class: remove the repeated "
                        f"rows (of 'data' and 'video_urls') or re-extract the file")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).any(axis=1).sum())
        raise UserError(f"{path}: {bad} rows hold NaN or Inf values; re-extract or drop them")
    return data, names


def _check_widths(folder: Path, widths: Dict[str, int]) -> None:
    """UserError naming the `.h5` files of `folder` ({file name: width}) whose width differs."""
    counts = Counter(widths.values())
    if len(counts) <= 1:
        return
    (common, n_common), (_, n_second) = counts.most_common(2)
    fix = "all .h5 files of a folder must hold features of one extractor: re-extract or remove the odd file(s)"
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
    raise UserError(f"{folder}: the .h5 files have different feature widths ({'; '.join(groups)}); {fix}")


def build_folder(dirs: Dict[str, Path], notes: Optional[List[str]] = None) -> dict:
    audio_files = {p.stem: p for p in dirs["audio"].glob("*.h5")}
    video_files = {p.stem: p for p in dirs["video"].glob("*.h5")}
    if set(audio_files) != set(video_files):
        only_a = sorted(set(audio_files) - set(video_files))
        only_v = sorted(set(video_files) - set(audio_files))
        raise UserError(f"audio and video folders differ: {dirs['audio']} has {only_a[:5]} without "
                        f"video, {dirs['video']} has {only_v[:5]} without audio")
    classes = sorted(audio_files)
    audio, video, row_class, urls = [], [], [], []
    for i, stem in enumerate(classes):
        a, a_names = read_h5(audio_files[stem], notes)
        v, v_names = read_h5(video_files[stem], notes)
        if a_names != v_names:
            first = next((k for k, (x, y) in enumerate(zip(a_names, v_names)) if x != y),
                         min(len(a_names), len(v_names)))
            raise UserError(f"{audio_files[stem]} and {video_files[stem]} list different videos "
                            f"(first difference at row {first}); audio and video rows must match")
        audio.append(a)
        video.append(v)
        row_class.append(np.full(len(a), i, dtype=np.int64))
        urls.extend(a_names)
    _check_widths(dirs["audio"], {f"{s}.h5": x.shape[1] for s, x in zip(classes, audio)})
    _check_widths(dirs["video"], {f"{s}.h5": x.shape[1] for s, x in zip(classes, video)})
    cat = lambda xs, w: torch.from_numpy(np.concatenate(xs)) if xs else torch.zeros(0, w)  # noqa: E731
    return {"classes": classes, "audio": cat(audio, 0), "video": cat(video, 0),
            "row_class": torch.from_numpy(np.concatenate(row_class)) if row_class else torch.zeros(0, dtype=torch.long),
            "urls": urls}


def load_folder(root: Path, feature_dir: Path, folder: str, sizes: Dict[str, Optional[int]],
                use_cache: bool = True) -> dict:
    dirs = {m: feature_dir / m / folder for m in ("audio", "video")}
    for m, d in dirs.items():
        if not d.is_dir():
            raise UserError(f"missing feature folder {d}")
    sources = _sources(dirs)
    cache = Path(root) / "_features_processed" / feature_dir.name / f"{folder}.pt"
    data, notes = None, []
    if use_cache and cache.exists():
        try:
            blob = torch.load(cache, map_location="cpu", weights_only=True)
            if blob.get("version") == CACHE_VERSION and [tuple(s) for s in blob["sources"]] == sources:
                data, notes = blob["data"], list(blob.get("warnings", []))
            else:
                log.info("cache %s is out of date: rebuilding", cache)
        except Exception as err:  # noqa: BLE001 - a corrupt cache is rebuilt whatever broke it
            log.warning("cache %s is unreadable (%s): rebuilding", cache, type(err).__name__)
    if data is None:
        t0 = time.perf_counter()
        data = build_folder(dirs, notes)
        if use_cache:
            try:
                atomic_torch_save({"version": CACHE_VERSION, "sources": sources, "data": data,
                                   "warnings": notes}, cache)
            except OSError as err:
                log.warning("cannot write cache %s (%s); continuing without it", cache, err)
        log.info("read %s/%s: %d samples in %.2fs", feature_dir.name, folder, len(data["urls"]),
                 time.perf_counter() - t0)
    for note in notes:          # each time the folder is loaded, from the cache or not
        log.warning("%s", note)
    for m in ("audio", "video"):
        want, got = sizes.get(m), data[m].shape[1]
        if want is not None and data[m].shape[0] and got != want:
            raise UserError(f"{dirs[m]}: {m} features are {got}-d but --input_size_{m} is {want} "
                            f"({', '.join(f'{f.folder}: {f.widths}' for f in FAMILIES.values())})")
    return data
