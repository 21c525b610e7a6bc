"""Read one feature folder's class files into validated tensors, through an atomic cache.

`load_folder` returns {"classes": [file stems], "audio" [n, D_a], "video" [n, D_v],
"row_class" [n] (index into classes), "urls": [n names]}, read by the storage class of the
folder's family (src/storage.py): for a temporal family (docs/tcaf.md 1) "audio" and "video" are
`Sequences` (float32 tokens, one [T_i, D] sequence per video; quantised uint8 audio read as
float32 values 0..255). The cache `{root}/_features_processed/{method}/{folder}.pt` (a torch.save
archive, written class file by class file and read memory-mapped: src/cache_file.py) records its
storage class's version and the name, size and mtime of every source file; a cache that does
not match them, or cannot be read, is rebuilt; temp files that a killed cache write left in its
folder are removed at the next load (those of live writes kept).
Warnings found while reading (integer features read as float32; float VGGish audio within [0, 1]
where uint8 codes 0..255 are stored) are kept in the cache and logged at every load;
so are the notices of data the originals accept but that is odd (SeLaVi videos with different
audio and video token counts, CLIP/CLAP class files listing more names than rows), one line per
folder on the project's logger "avgzsl", each time the folder is loaded, from the cache or not.
"""
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional


from .errors import UserError
from .families import FAMILIES, FeatureFamily
from .cache_file import joined, load_mapped, save_pieces
from .io_utils import remove_stale_temp_files
from .sequences import Sequences
from .storage import layout_of

log = logging.getLogger(__name__)
notices_log = logging.getLogger("avgzsl")       # odd data that is accepted: the project's own logger


def _sources(dirs: Dict[str, Path], ext: str = ".h5") -> List[tuple]:
    out = []
    for modality, d in dirs.items():
        for p in sorted(d.glob(f"*{ext}")):
            st = p.stat()
            out.append((modality, p.name, st.st_size, st.st_mtime_ns))
    return out


def _check_sizes(data: dict, dirs: Dict[str, Path], sizes: Dict[str, Optional[int]], ext: str) -> None:
    for m in ("audio", "video"):
        x = data[m]
        want = sizes.get(m)
        got = x.width if isinstance(x, Sequences) else x.shape[1]
        if want is not None and len(x) and got != want:
            example = f" (e.g. {dirs[m] / (data['classes'][0] + ext)})" if ext != ".h5" else ""
            raise UserError(f"{dirs[m]}: {m} features are {got}-d{example} but --input_size_{m} is {want} "
                            f"({', '.join(f'{f.folder}: {f.widths}' for f in FAMILIES.values())})")


def load_folder(root: Path, feature_dir: Path, folder: str, sizes: Dict[str, Optional[int]],
                family: FeatureFamily, use_cache: bool = True, quiet: bool = False) -> dict:
    """One feature folder pair (features/{method}/{audio,video}/{folder}) of `family`, validated and
    read through its storage class (src/storage.py), through the cache; "mapped": whether its
    tensors are memory-mapped from the cache file (loading it again costs next to nothing).
    quiet: its warnings and notices not logged (a folder loaded again)."""
    layout = layout_of(family)
    dirs = {m: feature_dir / m / folder for m in ("audio", "video")}
    for m, d in dirs.items():
        if not d.is_dir():
            raise UserError(f"missing feature folder {d}")
    sources = _sources(dirs, layout.ext)
    cache = Path(root) / "_features_processed" / feature_dir.name / f"{folder}.pt"
    if cache.parent.is_dir():       # temp files of cache writes killed midway (not those of live writes)
        try:
            for tmp in remove_stale_temp_files(cache.parent):
                log.info("removed %s, left by a cache write that was killed", tmp)
        except OSError as err:      # a read-only copy of the data, say: the load goes on
            log.info("cannot remove the temp files of killed cache writes in %s (%s)", cache.parent, err)
    data, notes, notices = None, [], []
    if use_cache and cache.exists():
        try:
            blob = load_mapped(cache)
            if blob.get("version") == layout.cache_version and [tuple(s) for s in blob["sources"]] == sources:
                # "notices": none in a cache written before they existed, as its data could hold none
                data, notes, notices = blob["data"], list(blob.get("warnings", [])), list(blob.get("notices", []))
                data = layout.unpack(data, dirs)
            else:
                log.info("cache %s is out of date: rebuilding", cache)
        except UserError:           # what the cached data holds is wrong, not the cache
            raise
        except Exception as err:  # noqa: BLE001 - a corrupt cache is rebuilt whatever broke it
            data, notes, notices = None, [], []
            log.warning("cache %s is unreadable (%s): rebuilding", cache, type(err).__name__)
    mapped = data is not None
    if data is None:
        t0 = time.perf_counter()
        raw = layout.read_folder(dirs, family, notes, notices)     # the features class by class (`Pieces`)
        _check_sizes(layout.unpack(raw, dirs), dirs, sizes, layout.ext)     # before anything is written
        if use_cache:
            try:        # written class by class, then read back memory-mapped: the folder is never held twice
                save_pieces({"version": layout.cache_version, "sources": sources, "data": raw,
                             "warnings": notes, "notices": notices}, cache)
                data, mapped = layout.unpack(load_mapped(cache)["data"], dirs), True
            except OSError as err:
                log.warning("cannot write cache %s (%s); continuing without it", cache, err)
        if data is None:
            data = layout.unpack(joined(raw), dirs)
        del raw
        log.info("read %s/%s: %d samples in %.2fs", feature_dir.name, folder, len(data["urls"]),
                 time.perf_counter() - t0)
    for note in () if quiet else notes:         # each time the folder is loaded, from the cache or not
        log.warning("%s", note)
    _check_sizes(data, dirs, sizes, layout.ext)
    for notice in () if quiet else notices:     # data the originals accept, said once per load of the folder
        notices_log.warning("%s/{audio,video}/%s: %s", feature_dir, folder, notice)
    return {**data, "mapped": mapped}
