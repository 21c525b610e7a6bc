"""Run folders (PROTOCOL.md "Run folder"): args.pkl, checkpoints, and reading original ones.

    runs/{exp_name}/args.pkl  train.log  metrics.jsonl  {Model}_score.pt  {Model}_loss.pt
    runs/{exp_name}/checkpoints/{Model}_score_ckpt_{epoch}.pt     (--save_checkpoints)
    runs/{exp_name}/checkpoints/resume_state.pt                   (this project: --resume)

A checkpoint is a dict: epoch (epoch index + 1), model, optimizer, metric ("score"/"loss").
"""
import argparse
import pathlib
import pickle
import shutil
from pathlib import Path
from typing import Optional

import torch

from .errors import UserError
from .io_utils import atomic_pickle, atomic_torch_save, cpu_snapshot


class RunFolder:
    def __init__(self, path):
        self.path = Path(path)

    args_path = property(lambda self: self.path / "args.pkl")
    ckpt_dir = property(lambda self: self.path / "checkpoints")
    resume_path = property(lambda self: self.ckpt_dir / "resume_state.pt")

    def best(self, class_name: str, metric: str) -> Path:
        return self.path / f"{class_name}_{metric}.pt"

    def epoch_ckpt(self, class_name: str, epoch: int) -> Path:
        return self.ckpt_dir / f"{class_name}_score_ckpt_{epoch}.pt"

    # -- writing -------------------------------------------------------------------------
    def check_free(self, resume: bool, overwrite: bool) -> None:
        """Refuse an existing run folder unless resuming or overwriting (before any work)."""
        if not self.path.exists() or not any(self.path.iterdir()) or overwrite:
            return
        if not resume:
            raise UserError(f"run folder {self.path} already exists: choose another --exp_name, "
                            f"or pass --resume to continue it or --overwrite to replace it")
        if not self.resume_path.exists() and list(self.path.glob("*_score.pt")):
            raise UserError(f"{self.path} holds checkpoints but no resume state (checkpoints/"
                            f"resume_state.pt): pass --overwrite to train it again")

    def prepare(self, resume: bool, overwrite: bool) -> bool:
        """Create the folder; True when an interrupted run is to be resumed. A run that died
        before its first epoch ended is started again under --resume."""
        self.check_free(resume, overwrite)
        if resume and self.resume_path.exists():
            return True
        if self.path.exists():
            shutil.rmtree(self.path)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        return False

    def save_args(self, args: argparse.Namespace) -> None:
        atomic_pickle(args, self.args_path)

    def save_checkpoint(self, path: Path, model, optimizer, epoch: int, metric: str, writer=None, **extra) -> None:
        """Write a checkpoint (through a BackgroundWriter when given: the state is snapshotted
        now and written while training goes on)."""
        blob = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "metric": metric, **extra}
        if writer is None:
            atomic_torch_save(blob, path)
        else:
            writer.submit(atomic_torch_save, cpu_snapshot(blob), path)

    # -- reading -------------------------------------------------------------------------
    def load_args(self) -> argparse.Namespace:
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


__all__ = ["RunFolder", "load_checkpoint", "load_model_state", "pathlib"]
