"""Atomic writes: a temp file in the target's folder, then os.replace (never half-written).

A failed write raises an OSError that names the target file (a full disk: errno ENOSPC) and
leaves the previous version of the file and no temp file behind. Temp files are named
`.{name}.pid{pid}@{host}.*.tmp` (the writing process and its machine); one left by a killed
process is removed by `remove_temp_files` (a folder no one writes into: all of them) or by
`remove_stale_temp_files` (a folder other processes may be writing into: only those of a writer
known to be dead, or not modified for `STALE_AFTER_S`).
"""
import errno
import json
import os
import pickle
import queue
import re
import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)

TEMP_GLOB = ".*.tmp"
# a temp file whose writer cannot be told dead (another machine, a name without pid) is stale once
# it has not been written to for this long (a live write appends to it until its rename, seconds later)
STALE_AFTER_S = 3600.0
_WRITER = re.compile(r"\.pid(\d+)@([A-Za-z0-9-]*)\.[^.]*\.tmp$")      # pid, host of a temp file's name


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:40]


def _temp_prefix(path: Path) -> str:
    """`.{name}.pid{pid}@{host}.`: who writes the temp file, for `remove_stale_temp_files`."""
    return f".{path.name}.pid{os.getpid()}@{_host()}."


# A seam for the tests (tests/pausing_main.py): when set, called with (temp file, target) once the
# temp file is complete and before it is renamed, in the writing thread.
before_rename: Optional[Callable[[Path, Path], None]] = None


def _name_target(err: OSError, path: Path, tmp: Optional[str]) -> OSError:
    """The same error, naming the file the user knows (the target, not its temp file)."""
    if err.errno is None or (err.filename is not None and str(err.filename) not in (str(tmp), str(path))):
        return err                            # about another path (a parent folder, say)
    return type(err)(err.errno, err.strerror or os.strerror(err.errno), str(path))


@contextmanager
def atomic_path(path):
    """Yields a temp path beside `path`; renamed onto `path` only if the block succeeds (after an
    fsync, so a crash never leaves a renamed but empty file). The temp file is removed on any
    failure, interruption included."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)          # mkstemp makes 0600: give the usual permissions
        yield Path(tmp)
        _fsync(tmp)
        if before_rename is not None:
            before_rename(Path(tmp), path)
        os.replace(tmp, path)
    except OSError as err:
        named = _name_target(err, path, tmp)
        if named is err:
            raise
        raise named from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def _fsync(name) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EROFS):    # a file system without fsync
            raise
    finally:
        os.close(fd)


def atomic_torch_save(obj, path) -> None:
    """torch.save through a Python file, so that a failed write is the OSError it is (ENOSPC for
    a full disk) rather than torch's `RuntimeError: [enforce fail at inline_container.cc]`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch_save_file(obj, f, tmp, path)


def torch_save_file(obj, f, tmp, path) -> None:
    """torch.save(obj, f) into the open temp file `tmp` of `path`: a failed write is an OSError naming `path`."""
    try:
        torch.save(obj, f)
    except RuntimeError as err:
        if not _is_write_failure(err):
            raise
        raise _write_failure(err, tmp, path) from None


def _is_write_failure(err: RuntimeError) -> bool:
    text = str(err)
    return any(s in text for s in ("inline_container", "PytorchStreamWriter", "file write failed"))


def _write_failure(err: RuntimeError, tmp, path) -> OSError:
    """torch's writer lost the OS error: call it a full disk when the disk has (next to) no room."""
    try:
        free = shutil.disk_usage(Path(tmp).parent).free
    except OSError:
        free = None
    if free is not None and free < 64 * 2 ** 20:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, "torch.save failed to write it: is the disk full or the quota exceeded?", str(path))


def remove_temp_files(folder, keep=lambda path: False) -> list:
    """Remove the temp files of atomic writes left in `folder` by a killed process, but those that
    `keep(path)` (call it without `keep` only when no write into `folder` is in progress). Returns the
    removed paths."""
    removed = []
    for p in sorted(Path(folder).glob(TEMP_GLOB)):
        if keep(p):
            continue
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:           # another user's process
        return True
    except (OSError, OverflowError):  # not a pid this system has
        return False
    return True


def temp_writer_dead(path, now: Optional[float] = None, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether the atomic write that made temp file `path` is over (its process killed). A name
    naming a process of this machine answers: dead when that process no longer runs (one that runs
    may be writing it: kept, however old). Otherwise (a writer of another machine, a name without
    pid) it is dead once not modified for `stale_after_s` seconds: a live write keeps appending to
    its temp file until the rename, seconds after the last byte."""
    path = Path(path)
    match = _WRITER.search(path.name)
    if match and match.group(2) == _host() and os.name == "posix":      # (Windows' os.kill would signal it)
        pid = int(match.group(1))
        return pid != os.getpid() and not _pid_alive(pid)
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > stale_after_s


def remove_stale_temp_files(folder, stale_after_s: float = STALE_AFTER_S) -> list:
    """Remove the temp files of atomic writes that a killed process left in `folder`, keeping those
    of writes that may still be in progress (`temp_writer_dead`): safe while other processes (or
    this one's threads) write into `folder`. Returns the removed paths."""
    now = time.time()
    return remove_temp_files(folder, keep=lambda p: not temp_writer_dead(p, now, stale_after_s))


def atomic_pickle(obj, path) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(obj, f)


def atomic_write_text(text: str, path) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def atomic_write_json(obj, path) -> None:
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", path)


def cpu_snapshot(obj):
    """A copy of a (nested) state dict with every tensor cloned to the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return type(obj)((k, cpu_snapshot(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_snapshot(v) for v in obj)
    return obj


class BackgroundWriter:
    """Runs writes in one background thread, in submission order, so that saving checkpoints
    overlaps training. `flush()` waits for them and re-raises the first error; after an error
    the writes submitted later are skipped, so what is on disk is always a prefix of the writes
    submitted. `discard_pending()` skips, for good, the writes not yet started (the one in
    progress is finished): the same prefix property, for a training that must stop now."""

    def __init__(self):
        self._queue = queue.Queue()
        self._error = None
        self._discard = False
        self._thread = threading.Thread(target=self._work, daemon=True, name="BackgroundWriter")
        self._thread.start()

    def _work(self):
        while True:
            fn, args = self._queue.get()
            try:
                if self._error is None and not self._discard:
                    fn(*args)
            except BaseException as err:  # noqa: BLE001 - reported by flush()
                self._error = err
            finally:
                self._queue.task_done()

    @property
    def pending(self) -> int:
        """Writes submitted and not finished (approximate while the thread runs)."""
        return self._queue.unfinished_tasks

    def submit(self, fn, *args) -> None:
        if self._error is not None:
            self.flush()
        self._queue.put((fn, args))

    def discard_pending(self) -> None:
        self._discard = True

    def flush(self) -> None:
        self._queue.join()
        if self._error is not None:
            err, self._error = self._error, None
            raise err
