"""Run folders (docs/protocol.md "Run folder"): args.pkl, checkpoints, and reading original ones.

    runs/{exp_name}/args.pkl  args.json  train.log  metrics.jsonl  {Model}_score.pt  {Model}_loss.pt
    runs/{exp_name}/checkpoints/{Model}_score_ckpt_{epoch}.pt     (--save_checkpoints)
    runs/{exp_name}/checkpoints/resume_state.pt                   (this project: --resume)
    runs/{exp_name}.lock                                          (while a training holds the folder)

A checkpoint is a dict: epoch (epoch index + 1), model, optimizer (None for a model with nothing to
train), metric ("score"/"loss"). args.json
is args.pkl's fields, readable; a run's arguments are read back through `load_args`, which upgrades
those of older versions and of the original codebases (`src.args.upgrade_run_args`).
"""
import argparse
import errno
import json
import logging
import os
import pathlib
import pickle
import shutil
import socket
import time
from pathlib import Path
from typing import Optional

import torch

from .args import ignored_flags, run_origin, upgrade_run_args
from .errors import UserError
from .models import model_flags
from .io_utils import atomic_pickle, atomic_torch_save, atomic_write_text, cpu_snapshot, remove_temp_files

log = logging.getLogger("avgzsl")

# Flags that may change when a run is resumed: how long it trains, where its files are, how it
# logs. Every other flag (model, shapes, data, optimisation, sampling) must be the run's.
RESUME_MAY_CHANGE = ("epochs", "resume", "overwrite", "device", "verbose", "dump_path", "log_dir", "exp_name", "root_dir",
                     "cfg", "run", "num_threads")


class RunFolder:
    def __init__(self, path):
        self.path = Path(path)

    args_path = property(lambda self: self.path / "args.pkl")
    ckpt_dir = property(lambda self: self.path / "checkpoints")
    resume_path = property(lambda self: self.ckpt_dir / "resume_state.pt")

    lock_path = property(lambda self: self.path.parent / f"{self.path.name}.lock")

    def best(self, class_name: str, metric: str) -> Path:
        return self.path / f"{class_name}_{metric}.pt"

    def epoch_ckpt(self, class_name: str, epoch: int) -> Path:
        return self.ckpt_dir / f"{class_name}_score_ckpt_{epoch}.pt"

    def latest_epoch_ckpt(self, class_name: str) -> Optional[Path]:
        """The epoch checkpoint with the largest epoch (None: there is none)."""
        stem = f"{class_name}_score_ckpt_"
        epochs = {int(p.stem[len(stem):]): p for p in self.ckpt_dir.glob(f"{stem}*.pt") if p.stem[len(stem):].isdigit()}
        return epochs[max(epochs)] if epochs else None

    # -- writing -------------------------------------------------------------------------
    def check_free(self, resume: bool, overwrite: bool) -> None:
        """Refuse an existing run folder unless resuming or overwriting (before any work). A run
        folder of the original code (the authors' released models under runs/) is never replaced."""
        if not self.path.exists() or not any(self.path.iterdir()):
            return
        if self.written_by_the_original():
            raise UserError(f"{self.path} holds a run of the original code (the released models?); it is "
                            f"evaluated as it is and never trained over: choose another --exp_name, or move it")
        if overwrite:
            return
        if not resume:
            raise UserError(f"run folder {self.path} already exists: choose another --exp_name, "
                            f"or pass --resume to continue it or --overwrite to replace it")
        if not self.resume_path.exists() and list(self.path.glob("*_score.pt")):
            raise UserError(f"{self.path} holds checkpoints but no resume state (checkpoints/"
                            f"resume_state.pt): pass --overwrite to train it again")

    def written_by_the_original(self) -> bool:
        """args.pkl written by an original codebase's main.py (`run_origin` of its fields)."""
        if not self.args_path.is_file():
            return False
        try:
            return run_origin(self.read_saved_args()) != "project"
        except UserError:
            return False

    def lock(self) -> "RunLock":
        """Take the folder for one training (see RunLock); before it is read, deleted or written."""
        return RunLock(self.lock_path, self.path).acquire()

    def claim(self, resume: bool, overwrite: bool) -> bool:
        """What this training does with the folder, decided once before any work: True to resume it
        (--resume and a resume state on disk), False to start it afresh; a UserError when it may not
        be used (see check_free). A run that died before its first resume state was written (nothing
        but args.pkl and logs) is started again under --resume."""
        self.check_free(resume, overwrite)
        return resume and self.resume_path.exists()

    def check_resume_args(self, args: argparse.Namespace) -> None:
        """Refuse --resume with flags other than the run's (RESUME_MAY_CHANGE aside), naming each."""
        saved = self.load_args()
        diffs = resume_differences(args, saved)
        if not diffs:
            return
        now = " and ".join(_flag_phrase(name, new) for name, new, _ in diffs)
        then = " and ".join(_flag_phrase(name, old) for name, _, old in diffs)
        raise UserError(f"--resume {now}, but {self.path} was trained {then} ({self.args_path}): pass the "
                        f"run's flags to continue it, or train it again with --overwrite (without --resume)")

    def read_resume_state(self) -> dict:
        """checkpoints/resume_state.pt, or a UserError naming it (truncated, garbage, not ours)."""
        path = self.resume_path
        fix = f"train {self.path} again with --overwrite (without --resume)"
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - whatever is wrong with the file, it is the file
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
            raise UserError(f"cannot read the resume state {path} ({reason}): it is damaged; {fix}") from None
        missing = [k for k in RESUME_KEYS if not isinstance(state, dict) or k not in state]
        if missing:
            raise UserError(f"{path} is not a resume state (missing {', '.join(missing)}): {fix}")
        return state

    def remove_temps(self) -> list:
        """Remove temp files of interrupted atomic writes (only while no write is in progress)."""
        return [p for d in (self.path, self.ckpt_dir) if d.is_dir() for p in remove_temp_files(d)]

    def prepare(self, resuming: bool) -> None:
        """Ready the folder as `claim` decided: resumed, its temp files removed; or emptied and made."""
        if resuming:
            self.remove_temps()
            return
        if self.path.exists():
            shutil.rmtree(self.path)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)

    def save_args(self, args: argparse.Namespace) -> None:
        """args.pkl, and the same fields readable in args.json (paths as strings, sorted keys)."""
        atomic_pickle(args, self.args_path)
        fields = {k: str(v) if isinstance(v, pathlib.PurePath) else v for k, v in vars(args).items()}
        atomic_write_text(json.dumps(fields, indent=1, sort_keys=True, default=str) + "\n", self.path / "args.json")

    def save_checkpoint(self, path: Path, model, optimizer, epoch: int, metric: str, writer=None, **extra) -> None:
        """Write a checkpoint (through a BackgroundWriter when given: the state is snapshotted
        now and written while training goes on); `optimizer` None (a model with nothing to train): None."""
        blob = {"epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "metric": metric, **extra}
        if writer is None:
            atomic_torch_save(blob, path)
        else:
            writer.submit(atomic_torch_save, cpu_snapshot(blob), path)

    metrics_path = property(lambda self: self.path / "metrics.jsonl")

    def append_metrics(self, row: dict) -> None:
        """One epoch's line of metrics.jsonl; an error names the file (a buffered write's does not)."""
        try:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.metrics_path)) from None

    def keep_metrics_until(self, epoch: int) -> None:
        """Drop the metrics.jsonl lines of epochs after `epoch` (an epoch interrupted after its line,
        before its resume state) and a line cut by a crash."""
        if not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] <= epoch:
                kept.append(line)
        atomic_write_text("".join(l + "\n" for l in kept), self.metrics_path)

    # -- what an interrupted or failed training leaves --------------------------------------
    def kept(self, saved_epoch: Optional[int], epochs: int, resuming: bool) -> str:
        """What the folder holds, for the line of an interruption: `saved_epoch` the epoch of the
        resume state on disk (None: none written by this process)."""
        if saved_epoch is None and resuming:      # stopped before its resume state was read: untouched
            return f"{self.path} is as it was; continue with --resume"
        if not saved_epoch:
            return f"{self.path} holds no finished epoch yet; --resume starts it again"
        if saved_epoch >= epochs:
            return f"{self.path} is complete ({saved_epoch} epochs)"
        return f"{self.path} keeps epoch {saved_epoch} of {epochs}; continue with --resume"

    def write_failure_line(self, err: OSError, saved_epoch: Optional[int]) -> str:
        """The line of a failed write (full disk, quota, ...): the file, why, what the folder keeps."""
        what = ("the disk is full" if err.errno == errno.ENOSPC else
                "the disk quota is exceeded" if err.errno == errno.EDQUOT else "a write failed")
        reason = err.strerror or os.strerror(err.errno or 0)
        fix = "free some space, then continue" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "fix it, then continue"
        keeps = f"{self.path} keeps epoch {saved_epoch}" if saved_epoch else f"{self.path} holds no finished epoch"
        return f"{what}: cannot write {err.filename} ({reason}); {keeps}: {fix} with --resume"

    # -- reading -------------------------------------------------------------------------
    def load_args(self) -> argparse.Namespace:
        """The run's arguments, upgraded (`upgrade_run_args`): every field of main.py's present, and its
        `origin` and `model_name`."""
        return upgrade_run_args(self.read_saved_args(), source=self.args_path)

    def read_saved_args(self) -> argparse.Namespace:
        """args.pkl as written (the fields of the code that wrote it)."""
        if not self.args_path.is_file():
            raise UserError(f"{self.path} is not a run folder: no args.pkl")
        try:
            with open(self.args_path, "rb") as f:
                args = _PathUnpickler(f).load()
        except Exception as err:  # noqa: BLE001
            raise UserError(f"cannot read {self.args_path}: {err}") from None
        if not isinstance(args, argparse.Namespace):
            raise UserError(f"{self.args_path} does not hold an argparse Namespace")
        return args

    def find_best(self, metric: str = "score", class_name: Optional[str] = None) -> Path:
        pattern = f"{class_name}_{metric}.pt" if class_name else f"*_{metric}.pt"
        found = sorted(self.path.glob(pattern))
        if not found:
            raise UserError(f"{self.path} holds no {pattern}: is it a finished stage-1 run folder?")
        return found[0]


RESUME_KEYS = ("epoch", "model", "optimizer", "scheduler", "best_score", "best_loss", "rng", "sampler")


def _comparable(value):
    return str(value) if isinstance(value, pathlib.PurePath) else value


def resume_differences(args: argparse.Namespace, saved: argparse.Namespace) -> list:
    """[(name, value now, value of the run)] of the flags that may not change on --resume. `saved`: the
    run's upgraded arguments (`RunFolder.load_args`: a flag its args.pkl lacks, from an older version,
    holds the value that version trained with); the feature family is not compared when the run
    predates its record."""
    skip = set(RESUME_MAY_CHANGE) | ignored_flags() | set(model_flags())    # the model: by model_name
    diffs = []
    for name, new in sorted(vars(args).items()):
        if name in skip or name not in vars(saved):
            continue
        old = vars(saved)[name]
        if name in ("feature_family", "text_dim") and old is None:      # not recorded then
            continue
        if _comparable(new) != _comparable(old):
            diffs.append((name, new, old))
    return diffs


def _flag_phrase(name: str, value) -> str:
    if name == "model_name":
        flag = {n: f for f, (n, _) in model_flags().items()}.get(value)
        return f"with --{flag}" if flag else f"with no model flag ({value})"
    if isinstance(value, bool):
        return f"with --{name}" if value else f"without --{name}"
    return f"with --{name} {_comparable(value)}"


class RunLock:
    """An exclusive lock on a run folder for one training: `flock` on runs/{exp_name}.lock, beside
    the folder (so --overwrite, which deletes the folder, runs under it). The holder writes its pid
    and host into the file, for the message that refuses a second training. The OS releases the
    lock when the holder exits, however it exits; a clean release also removes the file (a file
    left by a killed holder is harmless and taken over). A file system without flock is warned
    about and not locked."""

    def __init__(self, path: Path, run_path: Path):
        self.path, self.run_path = Path(path), Path(run_path)
        self.file = None
        # the folders this lock created (runs/, --dump_path): removed again if left empty
        self._made = [d for d in reversed(self.path.parents) if not d.exists()][::-1]

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:                     # not a POSIX system: no lock
            log.debug("no fcntl: %s is not locked", self.run_path)
            return self
        for attempt in range(100):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                f = open(self.path, "a+")
            except FileNotFoundError:         # the parent vanished (another run's clean-up): again
                if attempt == 99:
                    raise
                continue
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip()
                f.close()
                raise UserError(f"{self.run_path} is being written by another training ("
                                f"{holder or 'holder unknown'}; lock {self.path}): wait for it to end, or "
                                f"choose another --exp_name") from None
            except OSError as err:
                f.close()
                if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    log.warning("cannot lock %s (%s): a second training of %s at the same time is not "
                                "prevented", self.path, err.strerror, self.run_path)
                    return self
                raise
            # the previous holder may have removed the file between our open and our flock
            try:
                st, own = os.stat(self.path), os.fstat(f.fileno())
                same = (st.st_ino, st.st_dev) == (own.st_ino, own.st_dev)
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        else:
            raise UserError(f"cannot take the lock {self.path}: it keeps being replaced")
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        self.file = f
        return self

    def release(self) -> None:
        f, self.file = self.file, None
        if f is not None:
            try:
                self.path.unlink()              # while still holding it: see acquire
            except OSError:
                pass
            f.close()
        made, self._made = self._made, []
        for d in made:                          # nothing was written: leave no empty runs/ behind
            try:
                d.rmdir()
            except OSError:
                break

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class _PathUnpickler(pickle.Unpickler):
    """Reads args.pkl written on any OS: Windows paths become plain paths here."""

    def find_class(self, module, name):
        if module in ("pathlib", "pathlib._local") and name in ("WindowsPath", "PureWindowsPath"):
            return lambda *parts: Path(*(str(p).replace("\\", "/") for p in parts))
        if module == "pathlib._local":
            module = "pathlib"
        return super().find_class(module, name)


def load_checkpoint(path: Path) -> dict:
    if not Path(path).is_file():
        raise UserError(f"missing checkpoint {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001
        raise UserError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise UserError(f"{path} is not a checkpoint (a dict with 'model' and 'epoch')")
    return ckpt


def load_model_state(model, state: dict, source) -> None:
    """Load a state_dict by name (a `module.` prefix stripped); mismatches are UserErrors."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    state = model.complete_state_dict(state)      # e.g. TCaF's module saved under either of its two names
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(s for s in (
            f"missing {missing[:4]}" if missing else "", f"unexpected {unexpected[:4]}" if unexpected else "",
            "shape of " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:4]) if wrong else "")
            if s)
        raise UserError(f"{source} does not fit {type(model).__name__} built from the run's flags "
                        f"(model flag, input sizes, hidden sizes, --embedding_use_bn ...): {detail}")
    model.load_state_dict(state)


