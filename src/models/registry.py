"""Model registry: `@register_model` on a builder, `create_model(name, args)` to build.

Entries are kept in registration order: `src/models/__init__.py` imports the model files one
by one (importing this module runs that package file first, so every model is registered
before any function here is called).

A builder takes the argparse Namespace and returns the model built from explicit keyword
arguments (the Namespace stops at the builder). Each entry also records the original
command-line flag that selects it, the class name used in run-folder file names
(`{ModelClass}_score.pt`), the flags whose default differs for it, how its batches are built
(`batches`, a `base.Batches`: pairs with negatives by default) and, for a model with its own
training procedure (f-VAEGAN-D2), its `epoch_fn` and `val_loss_fn` (the trainer's otherwise).

A model file owns its flags and what its runs need beyond the generic code: `add_arguments` adds
its argument group to main.py's and get_evaluation.py's parsers (`src/args.py` collects them, in
registration order), `finalize_args` fills and checks its flags once the model is chosen, and
`callbacks` gives the trainer its callbacks.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from ..errors import UserError
from .base import PAIRS, Batches


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    flag: Optional[str]      # original store-true flag (None: the default model)
    class_name: str          # file names in run folders: {class_name}_score.pt
    help: str
    defaults: Dict[str, Any]  # main.py flags whose default differs for this model (parser default None)
    batches: Batches = PAIRS                 # how its training and validation-loss batches are built
    epoch_fn: Optional[Callable] = None      # its own epoch, (EpochInputs) -> stats (None: the trainer's epoch)
    val_loss_fn: Optional[Callable] = None   # its own validation loss, (model, val split) -> float
    temporal: bool = False                   # trains on token sequences (*_non_averaged features)
    vectors: bool = False                    # trains on the CLIP/CLAP family only (its 1536-d class vectors)
    first_epoch_defect: bool = False         # --run all under --reproduce_original: stage 2 trains all epochs
                                             # when stage 1's best epoch is the first [original defect] (TCaF)
    namespace_fields: tuple = ()             # fields only its original codebase has (one without a model
                                             # flag: ClipClap's): some are in its configs, all in its args.pkl
    optimizers: tuple = ("adam",)            # the --optimizer values it takes (its original code's)
    inherited_flags: tuple = ()              # model flags its codebase's configs and args.pkl carry from the
                                             # code it grew from, which do not choose a model there
                                             # (ClipClap's: TCaF's new_model_sequence)
    # a model file's own flags and hooks (each called once per function, for every model sharing it)
    add_arguments: Optional[Callable] = None   # (parser, entry_point) -> None: its flags in main.py's parser
                                               # ("main.py") and those get_evaluation.py takes to replace the
                                               # stage-2 run's values ("get_evaluation.py"; parser default None)
    ignored_flags: tuple = ()                  # its original code's flags that have no effect here
    finalize_args: Optional[Callable] = None   # (args) -> None, whatever the model (args.model_name): fills
                                               # its flags' defaults left None, refuses them with another model
    callbacks: Optional[Callable] = None       # (args, split, resuming) -> the trainer callbacks of its runs;
                                               # split(name): a split of the run's dataset on the device
    # [original defect]s of its original code's get_evaluation, kept only under --reproduce_original (and for
    # that code's own run folders)
    original_overrides: tuple = ()             # its get_evaluation.py flags (dests) that change the trained
                                               # model at evaluation (refused otherwise)
    latest_checkpoint_fallback: bool = False   # a missing stage-2 checkpoint of the chosen epoch: the latest
                                               # one, with a warning (an error otherwise)

    @property
    def label(self) -> str:
        """The name and its flag, for messages: "avca (--AVCA)"."""
        return f"{self.name} (--{self.flag})" if self.flag else self.name

    def needs_other_features(self, temporal: bool, vectors: bool) -> Optional[str]:
        """What this model trains on, when features of the kind described (token sequences; the
        CLIP/CLAP vectors) are not it; None when they are."""
        if self.vectors and not vectors:
            return ("the CLIP/CLAP vectors (ClipClap's data: features/cls_features_non_averaged with "
                    "text/wavcaps_word_embeddings_*_normed.npy)")
        if self.temporal and not temporal:
            return "token sequences (TCaF's *_non_averaged features)"
        if temporal and not self.temporal:
            return "one vector per video (main_features, cls_features, or the CLIP/CLAP vectors)"
        return None

    def check_optimizer(self, optimizer: Optional[str], fast: bool = False) -> None:
        """UserError unless this model takes `--optimizer optimizer` (None: adam); adam-sam's two-pass
        step has no --compile/--amp/--cuda_graph form (`fast`: one of them is on)."""
        optimizer = optimizer or "adam"
        if optimizer not in self.optimizers:
            takers = [e.label for e in _REGISTRY.values() if optimizer in e.optimizers]
            raise UserError(f"--optimizer {optimizer} is not available for {self.label}: only "
                            f"{' and '.join(takers) or 'no model'} take it (their original code has it); "
                            f"use --optimizer {self.optimizers[0]}")
        if optimizer == "adam-sam" and fast:
            raise UserError("--optimizer adam-sam (two forward/backward passes per step) does not run with "
                            "--compile, --amp or --cuda_graph: train without them")


_REGISTRY: Dict[str, ModelEntry] = {}


def register_model(name: str, *, flag: Optional[str], class_name: str, help: str = "",
                   defaults: Optional[Dict[str, Any]] = None, batches: Batches = PAIRS,
                   epoch_fn: Optional[Callable] = None, val_loss_fn: Optional[Callable] = None,
                   temporal: bool = False, vectors: bool = False, first_epoch_defect: bool = False,
                   namespace_fields: tuple = (), optimizers: tuple = ("adam",), inherited_flags: tuple = (),
                   add_arguments: Optional[Callable] = None, ignored_flags: tuple = (),
                   finalize_args: Optional[Callable] = None, callbacks: Optional[Callable] = None,
                   original_overrides: tuple = (), latest_checkpoint_fallback: bool = False):
    def wrap(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, builder, flag, class_name, help or builder.__doc__ or "",
                                     dict(defaults or {}), batches, epoch_fn, val_loss_fn, temporal, vectors,
                                     first_epoch_defect, tuple(namespace_fields), tuple(optimizers),
                                     tuple(inherited_flags), add_arguments=add_arguments,
                                     ignored_flags=tuple(ignored_flags), finalize_args=finalize_args,
                                     callbacks=callbacks, original_overrides=tuple(original_overrides),
                                     latest_checkpoint_fallback=latest_checkpoint_fallback)
        return builder
    return wrap


def list_models():
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def model_flags() -> Dict[str, tuple]:
    """{flag: (model name, help)} for the models selected by a flag, in registration order."""
    return {e.flag: (e.name, e.help) for e in _REGISTRY.values() if e.flag}


def model_hooks(name: str) -> list:
    """The registered models' hooks called `name` ("add_arguments", "finalize_args"), each function
    once, in registration order."""
    hooks = [getattr(e, name) for e in _REGISTRY.values() if getattr(e, name) is not None]
    return [h for i, h in enumerate(hooks) if h not in hooks[:i]]


def text_dim(args) -> int:
    """The width of the class vectors a Namespace's model is built for: `args.text_dim`, recorded with
    the feature family when the arguments are finalised (300 for word2vec, 1536 for CLIP+CLAP; the
    evaluation sets the data's, for runs saved before it was recorded)."""
    return int(args.text_dim)


def create_model(name: str, args):
    return get_entry(name).builder(args)
