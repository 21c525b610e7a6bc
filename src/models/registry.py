"""Model registry: `@register_model` on a builder, `create_model(name, args)` to build.

A builder takes the argparse Namespace and returns the model built from explicit keyword
arguments (the Namespace stops at the builder). Each entry also records the original
command-line flag that selects it and the class name used in run-folder file names
(`{ModelClass}_score.pt`).
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    flag: Optional[str]      # original store-true flag (None: the default model)
    class_name: str          # file names in run folders: {class_name}_score.pt
    help: str
    defaults: Dict[str, Any]  # main.py flags whose default differs for this model (parser default None)


_REGISTRY: Dict[str, ModelEntry] = {}


def register_model(name: str, *, flag: Optional[str], class_name: str, help: str = "",
                   defaults: Optional[Dict[str, Any]] = None):
    def wrap(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, builder, flag, class_name, help or builder.__doc__ or "", dict(defaults or {}))
        return builder
    return wrap


def _load_all():
    from . import _all  # noqa: F401  (imports every model file, which registers it)


def _ordered():
    """Entries in the order of `_all.MODULES` (then registration), whatever was imported first."""
    from ._all import MODULES
    rank = {m: i for i, m in enumerate(MODULES)}
    entries = list(_REGISTRY.values())
    return sorted(entries, key=lambda e: (rank.get(e.builder.__module__.rsplit(".", 1)[-1], len(rank)),
                                          entries.index(e)))


def list_models():
    _load_all()
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def model_flags() -> Dict[str, tuple]:
    """{flag: (model name, help)} for the models selected by a flag, in registration order."""
    _load_all()
    return {e.flag: (e.name, e.help) for e in _ordered() if e.flag}


def create_model(name: str, args):
    return get_entry(name).builder(args)
