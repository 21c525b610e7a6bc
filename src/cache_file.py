"""The feature cache's file: a `torch.save` archive written tensor piece by tensor piece, read memory-mapped.

    save_pieces({"data": {"values": Pieces([class_0, class_1]), "lengths": t}}, path)   # atomic
    blob = load_mapped(path)       # its tensors memory-mapped: a page is read from the file when touched
    blob = joined(obj)             # every `Pieces` concatenated: what torch.save(obj) would have held

A `Pieces` is one tensor given as the numpy arrays of its consecutive rows (one class file's features
each): `save_pieces` never joins them, so a feature folder is held once in memory while its cache is
written, not twice. The archive is torch.save's own (an uncompressed zip, one record per tensor,
aligned): `torch.save` writes it with the tensors' bytes skipped (`torch.serialization.skip_data`),
then each tensor's record is filled in place, piece after piece; `torch.load` reads the file as any
other, memory-mapped or not. Without `skip_data` (torch before 2.6) the pieces are joined and saved
with `torch.save`: the same file.
"""
import struct
import zipfile
from pathlib import Path
from typing import List, Sequence

import numpy as np
import torch

from .io_utils import atomic_path, atomic_torch_save, torch_save_file


class Pieces:
    """A tensor [sum of rows, width] given as its row blocks (numpy arrays of one dtype), never joined."""

    def __init__(self, arrays: Sequence[np.ndarray], width: int = 0):
        self.arrays: List[np.ndarray] = list(arrays)
        self.empty_width = width                    # the width when there is no array
        self.dtype = np.result_type(*self.arrays) if self.arrays else np.dtype(np.float32)

    @property
    def shape(self):
        return (sum(len(a) for a in self.arrays), self.arrays[0].shape[1] if self.arrays else self.empty_width)

    def __len__(self) -> int:
        return self.shape[0]

    def joined(self) -> torch.Tensor:
        """The tensor: np.concatenate of the pieces (torch.zeros(0, width) for none)."""
        return torch.from_numpy(np.concatenate(self.arrays)) if self.arrays else torch.zeros(0, self.empty_width)


def _map(obj, fn):
    """`obj` with fn applied to each tensor and `Pieces` of its dicts, lists and tuples, depth first, in order."""
    if torch.is_tensor(obj) or isinstance(obj, Pieces):
        return fn(obj)
    if isinstance(obj, dict):
        return type(obj)((k, _map(v, fn)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map(v, fn) for v in obj)
    return obj


def joined(obj):
    """`obj` with every `Pieces` concatenated into its tensor."""
    return _map(obj, lambda x: x.joined() if isinstance(x, Pieces) else x)


def _records(path: Path) -> dict:
    """{record name: (offset of its bytes in the file, size)} of a torch.save archive (stored, uncompressed)."""
    out = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for info in z.infolist():
            f.seek(info.header_offset)
            header = f.read(30)                                 # the local header: its name and extra lengths last
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            out[info.filename] = (info.header_offset + 30 + name_len + extra_len, info.file_size)
    return out


def _write_rows(f, x) -> None:
    arrays = x.arrays if isinstance(x, Pieces) else [x.contiguous().numpy()]
    dtype = x.dtype if isinstance(x, Pieces) else None
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=dtype)
        if a.size:
            f.write(a.reshape(-1).view(np.uint8))


def save_pieces(obj, path) -> None:
    """torch.save(joined(obj), path), atomically, without joining the `Pieces` of `obj` in memory."""
    if not hasattr(torch.serialization, "skip_data"):
        atomic_torch_save(joined(obj), path)
        return
    from torch._subclasses.fake_tensor import FakeTensorMode
    mode, sources = FakeTensorMode(), []

    def placeholder(x):     # a tensor of x's shape and dtype without memory; its bytes written after
        sources.append(x)
        dtype = torch.from_numpy(np.empty(0, x.dtype)).dtype if isinstance(x, Pieces) else x.dtype
        with mode:
            return torch.empty(tuple(x.shape), dtype=dtype)

    meta = _map(obj, placeholder)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            with torch.serialization.skip_data(materialize_fake_tensors=True):
                torch_save_file(meta, f, tmp, path)
        records = _records(tmp)
        with open(tmp, "r+b") as f:
            for key, x in enumerate(sources):           # torch.save numbers the storages in the order it meets them
                name = next((n for n in records if n.endswith(f"/data/{key}")), None)
                size = int(np.prod(x.shape)) * (x.dtype.itemsize if isinstance(x, Pieces) else x.element_size())
                if name is None or records[name][1] != size:
                    raise RuntimeError(f"{path}: torch.save wrote its tensors in an unexpected order (record "
                                       f"data/{key} is not {size} bytes): save_pieces needs updating")
                f.seek(records[name][0])
                _write_rows(f, x)


def load_mapped(path):
    """torch.load(path) with its tensors memory-mapped (read-only use: a page is read when touched)."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
