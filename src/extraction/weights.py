"""Loading pretrained weights with an error that says which file to get and where it goes."""
from pathlib import Path
from typing import Dict, Mapping, Optional

import torch
from torch import nn

from src.errors import UserError


def require_file(path: Optional[str], what: str, flag: str, source: str) -> Path:
    """`path` if it exists; otherwise a UserError naming the file, its source and the flag."""
    if path and Path(path).is_file():
        return Path(path)
    where = f"not found at {path}" if path else "no path given"
    raise UserError(f"{what}: {where}. Download it ({source}) and pass its path with {flag}, "
                    f"or run with --random_init to use random weights (tests, timing).")


def load_weights_file(path: Path) -> dict:
    """A pretrained network's weights file (torch.load on the CPU), or a UserError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise UserError(f"cannot read weights file {path}: {type(err).__name__}: {err}") from None


def load_exact(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Load every key of `model` from `state` with a shape check per key (strict)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
             for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
        if wrong:
            parts.append(f"wrong shapes: {wrong[:3]}")
        raise UserError(f"{path} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(dict(state), strict=True)


def with_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """The entries of `state` under `prefix`, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
