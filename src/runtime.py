"""What every entry point sets up: the device, the console/file logs, the seeds and RNG states."""
import logging
import os
import random
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

log = logging.getLogger("avgzsl")


def resolve_device(name: Optional[str]) -> torch.device:
    """cuda when available for None / "" / "auto"; a cuda request without CUDA falls back to the CPU."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        log.warning("--device %s asked but CUDA is not available: using the CPU", name)
        return torch.device("cpu")
    return device


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:               # not Linux
        return os.cpu_count() or 1


def default_threads(cpus: Optional[int] = None) -> int:
    """Intra-op threads for the small models of this benchmark: 1 on machines of up to 2 CPUs (where
    a second thread loses more under load than it gains when idle; README "Speed" has the
    measurements), else half the CPUs, at most 8 (their matrices are too small to feed more). From
    the machine alone, never its load: the thread count changes the numbers at rounding level, and a
    fixed --seed must give the same numbers on the same machine whatever else runs on it."""
    cpus = cpus or available_cpus()
    return 1 if cpus <= 2 else min(cpus // 2, 8)


def env_threads() -> Optional[int]:
    """OMP_NUM_THREADS when it is a positive integer (python -m src.reproduce sets it for each cell)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def configure_threads(n: Optional[int] = None) -> int:
    """torch.set_num_threads(n); for n None / 0, OMP_NUM_THREADS, else the machine's default. Returns the count."""
    n = n or env_threads() or default_threads()
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """The seeds of a training, and cuDNN in its deterministic mode, as TCaF's and ClipClap's fix_seeds
    set it (docs/tcaf.md 6): the same numbers on one machine (docs/protocol.md 3). No model here convolves,
    so it costs no speed; a deterministic algorithm may be slower where one would."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)          # CPU and every CUDA device
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _QuietFileHandler(logging.FileHandler):
    """train.log: a line that cannot be written (a full disk) is dropped without logging's
    traceback on stderr; the checkpoint writes report the disk."""

    def handleError(self, record) -> None:
        pass


class KeptRecords(logging.Handler):
    """Keeps the warnings (and up) logged before a run's train.log exists, for `setup_logging(replay=)`."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def setup_logging(log_file: Optional[Path] = None, verbose: bool = False, replay=()) -> None:
    """The project's logger (and the data modules') to stdout, and to `log_file` when given, which also
    gets the records of `replay` (logged earlier, to stdout only)."""
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(console)
    if log_file is not None:
        fh = _QuietFileHandler(log_file)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)
        for record in replay:
            fh.handle(record)
    for name in ("src.features_cache", "src.data"):
        logging.getLogger(name).handlers = log.handlers
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).propagate = False
