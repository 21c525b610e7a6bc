"""The decode -> batch -> model -> write loop that every extractor shares.

An extractor is a `Family`: what differs between C3D/VGGish and SeLaVi is only
- `prepare(path)`: decoding and pre-processing of one video, run in worker processes; it
  returns, per stream (`video`, `audio`), arrays whose first axis counts the stream's units
  (C3D clips, VGGish examples, SeLaVi windows), or raises `Failure(reason)`. It may return
  them as `Prepared(units, info)`, a dict like the others whose `info` (small, picklable)
  is handed to `finish`;
- `build_models(device)`: per stream, a callable that maps a device batch of units to
  features `[B, D]`;
- `finish(features)`, or `finish(features, info)` when `prepare` gave an `info`: one video's
  record from its per-unit features (numpy, CPU);
- `write(items, records, output_dir)`: the output files, records in list order (None for a
  failed video).

`extract()` runs it: this rank's shard of the list (`items[rank::world]`) is decoded by a
DataLoader's workers while the main process packs units of successive videos into batches
of `batch_size` per stream and runs the networks, so the device never waits for a single
video's frames. Finished records are saved in atomic chunk files every `save_every` videos
(and on interruption); a restarted run skips what its chunks hold. When every rank is done,
rank 0 merges the shards in list order into the outputs and a failures file.
"""
import hashlib
import json
import logging
import os
import pickle
import shutil
import time
from abc import ABC, abstractmethod
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from src.errors import UserError
from src.io_utils import atomic_path, atomic_write_text

from .decode import Failure
from .videos import VideoItem, resolve

log = logging.getLogger(__name__)

Units = Dict[str, Dict[str, np.ndarray]]          # stream -> name -> [n_units, ...]
Model = Callable[[Dict[str, torch.Tensor]], torch.Tensor]  # device batch -> [B, D]
DIST_TIMEOUT = timedelta(hours=72)  # ranks wait for the slowest shard at the final barrier


class Family(ABC):
    name: str                      # output stem: parts folder, failures file
    streams: Tuple[str, ...]

    @abstractmethod
    def prepare(self, path: Path) -> Units: ...

    @abstractmethod
    def build_models(self, device: torch.device) -> Dict[str, Model]: ...

    @abstractmethod
    def finish(self, features: Dict[str, np.ndarray], info: Any = None) -> Any:
        """One video's record; `info` is what `prepare` returned beside the units (or absent)."""

    @abstractmethod
    def write(self, items: Sequence[VideoItem], records: Sequence[Any], output_dir: Path) -> List[Path]: ...

    @abstractmethod
    def output_paths(self, output_dir: Path) -> List[Path]: ...

    @abstractmethod
    def signature(self) -> dict:
        """Every setting that changes the features (a resumed run must match it)."""


class Prepared(dict):
    """A video's units (stream -> name -> array, a plain dict to every reader) with `info`,
    what `finish` needs beside the features (e.g. which units make which output)."""

    def __init__(self, units: Units, info: Any):
        super().__init__(units)
        self.info = info        # pickled with the dict (the decoding workers send it back)


def unit_count(units: Dict[str, np.ndarray]) -> int:
    return len(next(iter(units.values())))


# ---------------------------------------------------------------------------- decoding
class _PrepareDataset(Dataset):
    def __init__(self, family: Family, root, items: Sequence[VideoItem], indices: Sequence[int]):
        self.family, self.root, self.items, self.indices = family, root, items, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, j):
        i = self.indices[j]
        try:
            return i, self.family.prepare(resolve(self.root, self.items[i])), None
        except Failure as err:
            return i, None, str(err)
        except Exception as err:  # never let one video end the run; the reason says why
            return i, None, f"error: {type(err).__name__}: {err}"


def _identity(x):
    return x


def _worker_init(_):
    torch.set_num_threads(1)
    try:  # decoding fills the gaps: on a busy CPU the networks' threads come first
        os.nice(5)
    except OSError:
        pass


def prepared(family: Family, root, items: Sequence[VideoItem], indices: Sequence[int],
             workers: int) -> Iterator[Tuple[int, Optional[Units], Optional[str]]]:
    """(index, units, failure reason) per video, in `indices` order, decoded by `workers`
    processes ahead of the consumer (0: in this process)."""
    loader = DataLoader(_PrepareDataset(family, root, items, indices), batch_size=None,
                        shuffle=False, num_workers=workers, collate_fn=_identity,
                        worker_init_fn=_worker_init if workers else None,
                        prefetch_factor=2 if workers else None)
    return iter(loader)


# ---------------------------------------------------------------------------- batching
class Batcher:
    """Packs the units of successive videos into batches of `batch_size` per stream, runs
    the stream's model and hands back each video's features once all its units are done."""

    def __init__(self, models: Dict[str, Model], batch_size: int, device: torch.device):
        self.models, self.batch_size, self.device = models, batch_size, torch.device(device)
        self.queue = {s: deque() for s in models}   # [video index, arrays, next unit]
        self.queued = {s: 0 for s in models}
        self.pieces: Dict[int, Dict[str, list]] = {}
        self.left: Dict[int, int] = {}
        self.units_done = {s: 0 for s in models}

    def add(self, index: int, units: Units) -> None:
        assert set(units) == set(self.models), f"streams {set(units)} != {set(self.models)}"
        self.pieces[index] = {s: [] for s in units}
        self.left[index] = 0
        for s, arrays in units.items():
            n = unit_count(arrays)
            assert n > 0, f"video {index} has no {s} units (prepare must raise Failure)"
            self.queue[s].append([index, arrays, 0])
            self.queued[s] += n
            self.left[index] += n

    def run(self, final: bool = False) -> List[Tuple[int, Dict[str, np.ndarray]]]:
        """Run every full batch (and, with `final`, the partial ones); the finished videos."""
        done = []
        for s in self.models:
            while self.queued[s] >= self.batch_size or (final and self.queued[s] > 0):
                done += self._step(s)
        return done

    def _to_device(self, parts: List[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(parts[0] if len(parts) == 1 else np.concatenate(parts))
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device)

    def _step(self, s: str):
        take = min(self.batch_size, self.queued[s])
        parts: Dict[str, List[np.ndarray]] = {}
        owners = []
        queue = self.queue[s]
        while take:
            entry = queue[0]
            index, arrays, start = entry
            m = min(unit_count(arrays) - start, take)
            for k, a in arrays.items():
                parts.setdefault(k, []).append(a[start:start + m])
            owners.append((index, m))
            take -= m
            if start + m == unit_count(arrays):
                queue.popleft()
            else:
                entry[2] = start + m
        batch = {k: self._to_device(v) for k, v in parts.items()}
        with torch.inference_mode():
            y = self.models[s](batch).float().cpu().numpy()  # [B, D]
        n = sum(m for _, m in owners)
        assert len(y) == n, f"stream {s}: model returned {len(y)} rows for {n} units"
        self.queued[s] -= n
        self.units_done[s] += n
        done, offset = [], 0
        for index, m in owners:
            self.pieces[index][s].append(y[offset:offset + m])
            offset += m
            self.left[index] -= m
            if self.left[index] == 0:
                feats = {k: np.concatenate(v) for k, v in self.pieces.pop(index).items()}
                del self.left[index]
                done.append((index, feats))
        return done


# ---------------------------------------------------------------------------- shards
def init_distributed() -> Tuple[int, int]:
    """(rank, world size) from torchrun's environment; joins a gloo group when world > 1
    (used only for barriers, so it works for CPU and GPU ranks on any number of machines)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=DIST_TIMEOUT)
    return rank, world


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def items_digest(items: Sequence[VideoItem]) -> str:
    h = hashlib.sha1()
    for it in items:
        h.update(f"{it.path}\t{it.label}\n".encode())
    return h.hexdigest()


def parts_dir(output_dir: Path, family: Family) -> Path:
    return Path(output_dir) / f"{family.name}.parts"


class ShardStore:
    """One rank's progress: atomic chunk files of finished videos plus a completion mark.

    A chunk holds two pickled objects: the list of its video indices, then `{index: ("ok",
    record) | ("fail", reason)}`, so resuming reads only the first of each."""

    def __init__(self, folder: Path, meta: dict, save_every: int):
        self.folder, self.save_every = Path(folder), max(1, save_every)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = json.loads(json.dumps(meta))  # compare as stored (tuples become lists)
        meta_path = self.folder / "meta.json"
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            if old != meta:
                diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
                raise UserError(f"{self.folder} holds a run with other settings ({', '.join(diff)} "
                                f"differ). Delete {self.folder.parent} to start again, or rerun "
                                f"with the settings it was made with.")
        else:
            atomic_write_text(json.dumps(meta, indent=1), meta_path)
        self.done = set()
        chunks = sorted(self.folder.glob("chunk-*.pkl"))
        for c in chunks:
            with open(c, "rb") as f:
                self.done.update(pickle.load(f))
        self.next_chunk = 1 + max((int(c.stem.split("-")[1]) for c in chunks), default=0)
        self.pending: Dict[int, tuple] = {}

    def add(self, index: int, entry: tuple) -> None:
        self.pending[index] = entry
        self.done.add(index)
        if len(self.pending) >= self.save_every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        path = self.folder / f"chunk-{self.next_chunk:06d}.pkl"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                pickle.dump(sorted(self.pending), f, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.dump(self.pending, f, protocol=pickle.HIGHEST_PROTOCOL)
        self.next_chunk += 1
        self.pending = {}

    def mark_complete(self) -> None:
        self.flush()
        atomic_write_text(json.dumps({"videos": len(self.done)}), self.folder / "complete.json")


def read_entries(folder: Path) -> Dict[int, tuple]:
    entries = {}
    for c in sorted(Path(folder).glob("chunk-*.pkl")):
        with open(c, "rb") as f:
            pickle.load(f)
            entries.update(pickle.load(f))
    return entries


# ---------------------------------------------------------------------------- run
def extract(family: Family, items: Sequence[VideoItem], *, root, output_dir, device=None,
            batch_size: int = 8, workers: int = 2, save_every: int = 50,
            overwrite: bool = False, keep_parts: bool = False, progress: bool = True) -> List[Path]:
    """Extract this rank's shard, then (rank 0, once all are done) merge. Returns the output
    paths on rank 0 (an empty list on the other ranks)."""
    output_dir = Path(output_dir)
    rank, world = init_distributed()
    device = torch.device(device) if device is not None else default_device()
    existing = [p for p in family.output_paths(output_dir) if p.exists()]
    if existing and not overwrite:
        raise UserError(f"{existing[0]} already exists: pass --overwrite to extract again, or "
                        f"another --output_dir.")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed unit shapes: pick the fastest kernels once
    models = family.build_models(device)  # first: missing weights stop the run before any write
    meta = {"signature": family.signature(), "videos": len(items), "list": items_digest(items),
            "rank": rank, "world_size": world}
    store = ShardStore(parts_dir(output_dir, family) / f"rank-{rank}-of-{world}", meta, save_every)
    mine = range(rank, len(items), world)
    todo = [i for i in mine if i not in store.done]
    if todo:
        run_shard(family, items, root, todo, store, device=device, batch_size=batch_size,
                  workers=workers, total=len(mine), progress=progress, models=models,
                  desc=f"{family.name}" + (f" [rank {rank}/{world}]" if world > 1 else ""))
    store.mark_complete()
    if world > 1:
        dist.barrier()
    paths = merge(family, items, output_dir, world, keep_parts=keep_parts) if rank == 0 else []
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return paths


def run_shard(family: Family, items, root, todo: Sequence[int], store: ShardStore, *, device,
              batch_size: int, workers: int, total: int, progress: bool = True, desc: str = "",
              models: Optional[Dict[str, Model]] = None) -> Batcher:
    """Decode, run and store the videos `todo`; `models` default to `family.build_models`."""
    models = models if models is not None else family.build_models(device)
    batcher = Batcher(models, batch_size, device)
    bar = tqdm(total=total, initial=total - len(todo), unit="video", desc=desc,
               disable=not progress, dynamic_ncols=True, mininterval=1.0,
               position=int(os.environ.get("LOCAL_RANK", "0")))
    start = time.perf_counter()
    infos: Dict[int, Any] = {}   # video index -> the `info` its `prepare` returned

    def finished(done):
        for index, feats in done:
            if index in infos:
                record = family.finish(feats, infos.pop(index))
            else:
                record = family.finish(feats)
            store.add(index, ("ok", record))
        if done:
            bar.update(len(done))
            rate = {s: n / max(time.perf_counter() - start, 1e-9) for s, n in batcher.units_done.items()}
            bar.set_postfix_str(" ".join(f"{s} {r:.1f}/s" for s, r in rate.items()), refresh=False)

    try:
        for index, units, reason in prepared(family, root, items, todo, workers):
            if reason is not None:
                log.info("skipped %s: %s", items[index].path, reason)
                store.add(index, ("fail", reason))
                bar.update(1)
            else:
                if isinstance(units, Prepared):
                    infos[index] = units.info
                batcher.add(index, units)
            finished(batcher.run())
        finished(batcher.run(final=True))
    finally:
        store.flush()  # keep what is finished, also when interrupted
        bar.close()
    return batcher


def merge(family: Family, items: Sequence[VideoItem], output_dir, world: int,
          keep_parts: bool = False) -> List[Path]:
    """Join the `world` shards of `output_dir` in list order: the outputs and
    `{name}.failures.tsv` (video, reason). Removes the parts folder unless `keep_parts`."""
    output_dir = Path(output_dir)
    folder = parts_dir(output_dir, family)
    entries: Dict[int, tuple] = {}
    for r in range(world):
        shard = folder / f"rank-{r}-of-{world}"
        if not (shard / "complete.json").exists():
            raise UserError(f"shard {shard} is not complete: run the extraction again with the "
                            f"same settings and {world} processes to finish it.")
        entries.update(read_entries(shard))
    missing = [items[i].path for i in range(len(items)) if i not in entries]
    if missing:
        raise UserError(f"{len(missing)} videos missing from the shards in {folder} "
                        f"(e.g. {missing[:3]}): rerun the extraction to complete them.")
    records = [entries[i][1] if entries[i][0] == "ok" else None for i in range(len(items))]
    paths = family.write(items, records, output_dir)
    failures = [(items[i].path, entries[i][1]) for i in range(len(items)) if entries[i][0] == "fail"]
    failures_path = output_dir / f"{family.name}.failures.tsv"
    atomic_write_text("video\treason\n" + "".join(
        f"{p}\t{' '.join(str(r).split())}\n" for p, r in failures), failures_path)
    log.info("%s: %d videos extracted, %d failed (see %s)", family.name,
             len(items) - len(failures), len(failures), failures_path)
    if not keep_parts:
        shutil.rmtree(folder, ignore_errors=True)
    return paths + [failures_path]
