"""Command-line flags of `main.py` and `get_evaluation.py`.

The flags, names and defaults are those of the original AVCA code (its pickled Namespace is
listed in `../shared/reference/original_args_namespace.json`), so the seed's run scripts work
unchanged and the `args.pkl` written here has every field the original wrote. Flags the
original had but that select code paths it never published (`--baseline`, `--new_model`, ...)
are accepted and do nothing here; their help says so.

The model booleans (`--AVCA --ale --sje --devise --apn --cjme`, none = AVGZSLNet) are turned
into one registry name by `resolve_model_name`, once; nothing after that reads them.

The flags of one method (f-VAEGAN-D2's, TCaF's, ClipClap's) are defined in its model file and
collected here from the registry (`add_arguments`, `finalize_args` of its entry); the flags several
methods share are defined here.

A run's saved arguments (args.pkl: of this project's versions, of the original AVCA, TCaF and ClipClap
code) are upgraded once where they are loaded, by `upgrade_run_args`: every field of the parser present,
with its origin and model; the code after it reads plain attributes.
"""
import argparse
import copy
import re
import textwrap
from pathlib import Path
from typing import Optional, Tuple

from .families import DATASETS, FAMILIES, WORD_DIM, family_of_args, folder_family
from .errors import ArgumentParser, UserError, command_line_fields
from .models import get_entry, list_models, model_flags, model_hooks
from .models.flags import (IGNORED, bool_value, dropout, momentum, nonnegative_float, nonnegative_int, number_type,
                           positive_float, positive_int, seed)

# The flags defined here that have no effect (their help: IGNORED, or "ignored" for the original
# code's own); a model file lists its own in its registry entry (`ignored_flags`).
ORIGINAL_CODE_FLAGS = ("debug", "val_all_loss", "baseline", "audio_baseline", "video_baseline",
                       "concatenated_baseline", "new_model", "new_model_early_fusion",
                       "new_model_middle_fusion", "new_model_attention_both_heads")
IGNORED_FLAGS = ("manual_text_word2vec", "third_additional_triplet", "cycle_loss", *ORIGINAL_CODE_FLAGS,
                 "debug_comment")

DEPARTURES = """\
Departures from the original code that remain, and why (README "Departures from the original"):
  - sampling: the same class-balanced distributions, drawn on the device; not the original's
    DataLoader random streams, so training is not bit-comparable (docs/protocol.md)
  - the validation loss: once over the val samples with fixed negatives, not --n_batches fresh
    batches (it only picks *_loss.pt)
  - original defects, fixed by default and kept under --reproduce_original: word-vector pairing,
    plain L2 in training-time validation, CJME's broadcast loss, f-VAEGAN-D2's one step per epoch,
    a best val HM of 0.0 replaced by any later epoch
  - f-VAEGAN-D2 runs in the two-stage protocol (its classifiers' epochs chosen on val); the
    original's test-set selection under --test_selection
  - train_stats.pkl / val_stats.pkl are not written: metrics.jsonl holds the same numbers
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Flag defaults shown, the description and epilog kept as written."""


# Flags whose default depends on the model (parser default None): the registry entry's `defaults`,
# else these (the original's argparse defaults); a model file fills its own flags' (`finalize_args`).
MODEL_DEPENDENT_DEFAULTS = {"bs": 256, "reg_loss": False}


# -- value types: a bad value is refused when parsed (the numbers' and booleans': src/models/flags.py)

def device_name(text: str) -> str:
    """cpu, cuda, cuda:N (or auto / empty: the default)."""
    if text in ("", "auto") or re.fullmatch(r"cpu|cuda(:\d+)?|mps", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a device: cpu, cuda or cuda:N")


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model choice (at most one; none = AVGZSLNet)")
    for flag, (name, help_) in model_flags().items():
        # `--flag` alone, or `--flag True/False` as TCaF's and ClipClap's configargparse took it
        group.add_argument(f"--{flag}", type=bool_value, nargs="?", const=True, default=False, help=help_)


def _add_method_flags(parser: argparse.ArgumentParser, entry_point: str) -> None:
    """Each model file's own flags (its registry entry's `add_arguments`), in registration order."""
    for add_arguments in model_hooks("add_arguments"):
        add_arguments(parser, entry_point)


def _add_data_flags(parser: argparse.ArgumentParser, required_root: bool) -> None:
    main, cls = FAMILIES["main"], FAMILIES["cls"]
    g = parser.add_argument_group("data")
    g.add_argument("--root_dir", type=Path, default=None, required=required_root,
                   help="one dataset folder of the benchmark, e.g. avgzsl_benchmark_datasets/UCF "
                        "(holds class-split/ and features/)")
    g.add_argument("--dataset_name", default=None, choices=list(DATASETS),
                   help="which benchmark; default: the name of --root_dir's folder")
    g.add_argument("--feature_extraction_method", type=Path, default=Path(main.folder),
                   help=f"features/ subfolder: {main.folder} ({main.networks}, {main.widths}) or {cls.folder} "
                        f"({cls.networks}, {cls.widths}); another name is read as its files say (.h5 "
                        f"averaged, .pkl sequences or vectors)")
    g.add_argument("--zero_shot_split", default="",
                   help=f"class-split/ subfolder: {main.split} (with {main.folder}) or {cls.split} "
                        f"(with {cls.folder}); default: {main.split} for {main.folder}, "
                        f"{cls.split} for {cls.folder}; required with a feature folder of no family's name")
    g.add_argument("--input_size_audio", type=positive_int, default=main.audio_width,
                   help=f"audio feature width ({main.audio_width} main, {cls.audio_width} cls); checked "
                        f"against the .h5 files")
    g.add_argument("--input_size_video", type=positive_int, default=main.video_width,
                   help=f"video feature width ({main.video_width} main, {cls.video_width} cls); checked "
                        f"against the .h5 files")
    g.add_argument("--input_size", type=int, default=None,
                   help="the originals' single input width, read by no model (null in their args.pkl): refused "
                        "when given")
    g.add_argument("--manual_text_word2vec", action="store_true", help=IGNORED)


def get_main_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="main.py",
        description=textwrap.fill(
            "Train an audio-visual GZSL model. Stage 1 (default) trains on stage_1_train and validates on "
            "stage_1_val every epoch; stage 2 (--retrain_all) trains on train+val and, with "
            "--save_checkpoints, keeps every epoch's checkpoint for get_evaluation.py. Writes "
            "runs/{exp_name}/ under --dump_path.", 95),
        epilog=DEPARTURES, formatter_class=_HelpFormatter)
    _add_data_flags(p, required_root=True)
    _add_model_flags(p)

    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=100, help="number of epochs")
    g.add_argument("--bs", type=positive_int, default=None,
                   help=f"batch size (positive/negative pairs); default {MODEL_DEPENDENT_DEFAULTS['bs']}, "
                        f"64 with --fvaegan (the original's)")
    g.add_argument("--n_batches", type=positive_int, default=250, help="batches per epoch")
    g.add_argument("--lr", type=positive_float, default=3e-4, help="learning rate")
    g.add_argument("--lr_scheduler", action="store_true",
                   help="ReduceLROnPlateau(mode=max, patience=3) on the val HM (AVCA always uses it)")
    g.add_argument("--seed", type=seed, default=42, help="seed of torch (CPU, CUDA) and numpy")
    g.add_argument("--device", type=device_name, default=None,
                   help="cuda or cpu; default: cuda when available, else cpu")
    g.add_argument("--num_threads", type=number_type(int, lambda v: v >= 0, "an integer >= 0 (0: the machine's default)"),
                   default=0,
                   help="CPU threads of torch's operations; 0: $OMP_NUM_THREADS when set (src.reproduce sets each "
                        "cell's), else 1 on machines of up to 2 CPUs, else half the CPUs, at most 8 (measured: a "
                        "2-core machine's AVCA epoch was 1.6x faster with 2 threads idle, 2.0x slower beside another "
                        "job); never from the load, as the numbers depend on it")
    g.add_argument("--retrain_all", action="store_true",
                   help="stage 2: train on stage_1_train + stage_1_val (seen and unseen)")
    g.add_argument("--compile", action="store_true",
                   help="opt-in, changes the numbers: torch.compile the training step (forward and backward; "
                        "the first steps compile, a C++ compiler is needed on the CPU); measured in README 'Speed'")
    g.add_argument("--cuda_graph", action="store_true",
                   help="opt-in, CUDA only: capture the whole training step as a CUDA graph (one per batch shape) "
                        "and replay it "
                        "(a small model's step is bound by kernel launches; README 'Speed'); numbers differ at "
                        "rounding level")
    g.add_argument("--amp", default=None, choices=["bf16"],
                   help="opt-in, changes the numbers: the training step under bfloat16 autocast (CPU and "
                        "CUDA); evaluation stays float32; measured in README 'Speed'")
    g.add_argument("--save_checkpoints", action="store_true",
                   help="save checkpoints/{Model}_score_ckpt_{epoch}.pt after every epoch "
                        "(needed in stage 2 by get_evaluation.py)")
    g.add_argument("--z_score_inputs", action="store_true",
                   help="standardise audio, video and word vectors by their global mean/std")

    g = p.add_argument_group("architecture and loss")
    g.add_argument("--embeddings_hidden_size", type=nonnegative_int, default=1024,
                   help="hidden width of the input encoders (0: no hidden layer)")
    g.add_argument("--decoder_hidden_size", type=nonnegative_int, default=64,
                   help="hidden width of the projection/decoder nets (0: no hidden layer)")
    g.add_argument("--embedding_dropout", type=dropout, default=0.8, help="dropout of the encoders")
    g.add_argument("--decoder_dropout", type=dropout, default=0.5, help="dropout of the decoders")
    g.add_argument("--additional_dropout", type=dropout, default=0.0,
                   help="dropout of AVCA's W_proj, D, A_rec, V_rec")
    g.add_argument("--embedding_use_bn", action="store_true", help="BatchNorm in the encoders (AVGZSLNet, CJME)")
    g.add_argument("--decoder_use_bn", action="store_true", help="BatchNorm in the decoder (AVGZSLNet)")
    g.add_argument("--normalize_decoder_outputs", action="store_true",
                   help="L2-normalise the decoder outputs (AVGZSLNet)")
    g.add_argument("--margin", type=positive_float, default=1.0, help="triplet margin (AVGZSLNet, CJME)")
    g.add_argument("--distance_fn", default="L2Loss", choices=["L2Loss", "SquaredL2Loss"],
                   help="distance of the decoder losses and of evaluation")
    g.add_argument("--depth_transformer", type=positive_int, default=1, help="AVCA cross-attention layers")
    g.add_argument("--momentum", type=momentum, default=0.99,
                   help="momentum of the second BatchNorm of AVCA's hidden-layer nets "
                        "(PyTorch convention: weight of the new batch statistics)")
    g.add_argument("--additional_triplets_loss", action="store_true", help="AVCA: add l_t")
    g.add_argument("--first_additional_triplet", type=nonnegative_float, default=1, help="AVCA: weight in l_t")
    g.add_argument("--second_additional_triplet", type=nonnegative_float, default=1, help="AVCA: weight in l_t")
    g.add_argument("--third_additional_triplet", type=float, default=1, help=IGNORED)
    g.add_argument("--reg_loss", action="store_true", default=None,
                   help="AVCA: add the regularisation l_r; TCaF: l_reg (on by default with --new_model_sequence)")
    g.add_argument("--cycle_loss", action="store_true", help=IGNORED)
    g.add_argument("--dropout_baselines", type=dropout, default=0.2,
                   help="dropout of ALE/SJE/DEVISE/CJME")
    g.add_argument("--norm_inputs", action="store_true",
                   help="L2-normalise concat(video, audio) (ALE/SJE/DEVISE/APN)")

    _add_method_flags(p, "main.py")

    g = p.add_argument_group("run folder and logging")
    g.add_argument("--cfg", "-c", type=Path, default=None,
                   help="a YAML file of flag values (e.g. TCaF's config/best/best_cls/best_ucf.yaml); the "
                        "command line wins over it")
    g.add_argument("--run", default=None, choices=["all", "stage-1", "stage-2", "eval"],
                   help="TCaF's one-command runs: all = stage 1 into runs/{exp_name}_stage_1, stage 2 (its "
                        "best epoch + 1 epochs, every checkpoint) into runs/{exp_name}_stage_2, then the "
                        "evaluation; stage-1 / stage-2 = that stage alone; eval = the evaluation of those two "
                        "folders. Default: the one stage --retrain_all says")
    g.add_argument("--load_path_stage_A", type=Path, default=None,
                   help="with --run eval: the stage-1 run folder to evaluate (default: runs/{exp_name}_stage_1)")
    g.add_argument("--load_path_stage_B", type=Path, default=None,
                   help="with --run eval: the stage-2 run folder to evaluate (default: runs/{exp_name}_stage_2)")
    g.add_argument("--eval_name", default=None,
                   help="with --run all|eval: the evaluation's file in the stage-2 folder, {eval_name}.json "
                        "(default evaluation; TCaF's and ClipClap's configs say Attention)")
    g.add_argument("--exp_name", default="", help="run folder name: runs/{exp_name}")
    g.add_argument("--dump_path", type=Path, default=Path("."), help="folder that holds runs/")
    g.add_argument("--log_dir", type=Path, default=None,
                   help="TCaF's name for the folder of the run folders: runs go to {log_dir}/{exp_name} "
                        "instead of {dump_path}/runs/{exp_name}")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same exp_name from its last epoch")
    g.add_argument("--overwrite", action="store_true", help="delete an existing runs/{exp_name} first")
    g.add_argument("--verbose", action="store_true", help="log every epoch's numbers per mode")
    g.add_argument("--reproduce_original", action="store_true",
                   help="reproduce the original code's defects (docs/protocol.md [original defect]): "
                        "word vectors paired by sorted word2vec name instead of by class, plain "
                        "L2 in training-time validation whatever --distance_fn, CJME's broadcast "
                        "attention loss, f-VAEGAN-D2's one batch per epoch, a best val HM of exactly 0.0 "
                        "replaced by any later epoch")

    g = p.add_argument_group(f"flags of the original code ({IGNORED})")
    for flag in ORIGINAL_CODE_FLAGS:
        g.add_argument(f"--{flag}", action="store_true", help="ignored")
    g.add_argument("--debug_comment", default="", help="ignored")
    return p


def config_defaults(parser: argparse.ArgumentParser, argv) -> dict:
    """Load `--cfg FILE` (YAML: flag name -> value) as the parser's defaults, so that the command
    line wins over it, as the original's configargparse did; returns the file's values ({} without
    --cfg). TCaF's and ClipClap's main.py and get_evaluation.py shared one parser, so a key of
    either entry point is accepted by both (the other's keys are unused); other keys are refused,
    naming them."""
    import yaml
    argv = list(argv)
    path = None
    for i, a in enumerate(argv):
        if a in ("--cfg", "-c") and i + 1 < len(argv):
            path = argv[i + 1]
        elif a.startswith("--cfg="):
            path = a.split("=", 1)[1]
    if path is None:
        return {}
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise UserError(f"cannot read --cfg {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise UserError(f"--cfg {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise UserError(f"--cfg {path}: expected a mapping of flag names to values")
    actions = {a.dest: a for a in parser._actions}
    other = {a.dest: a for a in (get_eval_parser() if parser.prog == "main.py" else get_main_parser())._actions}
    unknown = sorted(k for k in values if k not in actions and k not in other)
    if unknown:
        raise UserError(f"--cfg {path}: unknown flags {', '.join(unknown)}")
    defaults = {}
    for key, value in values.items():      # the other entry point's keys are checked too, and unused
        action = actions.get(key) or other[key]
        if isinstance(action, argparse._StoreTrueAction):
            defaults[key] = bool_value(value)
        elif value is None or action.type is None or isinstance(value, bool) and action.type is bool_value:
            defaults[key] = value if action.type is not Path or value is None else Path(value)
        else:
            try:
                defaults[key] = action.type(str(value) if action.type is not bool_value else value)
            except (argparse.ArgumentTypeError, ValueError) as err:
                raise UserError(f"--cfg {path}: {key}: {err}") from None
        if action.choices is not None and defaults[key] not in action.choices:
            raise UserError(f"--cfg {path}: {key}: {defaults[key]!r} is not one of {', '.join(map(str, action.choices))}")
    parser.set_defaults(**{k: v for k, v in defaults.items() if k in actions})
    return values


def parse_with_config(make_parser, argv=None) -> Tuple[argparse.Namespace, set]:
    """Parse `argv` (default sys.argv[1:]) with --cfg's values as defaults. Returns the Namespace and
    the fields the user set, in the file or on the command line (they tell the codebase, below)."""
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = make_parser()
    values = config_defaults(parser, argv)
    args = parser.parse_args(list(map(str, argv)))
    return args, set(values) | command_line_fields(make_parser, argv)


def get_eval_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="get_evaluation.py",
        description="The reported numbers: choose beta on stage_1_val with the best stage-1 "
                    "model (*_score.pt), then evaluate the stage-2 checkpoint of the same epoch "
                    "on stage_2_test with that beta (calibrated stacking). Prints "
                    "'Seen performance=.., Unseen performance=.., GZSL performance=.., ZSL "
                    "performance=..' and writes {eval_name}.json into the stage-2 folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--load_path_stage_A", type=Path, required=True,
                   help="stage-1 run folder (holds {Model}_score.pt)")
    p.add_argument("--load_path_stage_B", type=Path, required=True,
                   help="stage-2 run folder, trained with --retrain_all --save_checkpoints")
    p.add_argument("--dataset_name", default=None, choices=list(DATASETS), help="default: the stage-2 run's")
    p.add_argument("--root_dir", type=Path, default=None,
                   help="dataset folder, if it moved since training (default: the stage-2 run's)")
    p.add_argument("--device", type=device_name, default=None, help="cuda or cpu; default: cuda when available")
    p.add_argument("--cfg", "-c", type=Path, default=None,
                   help="a YAML file of flag values (TCaF's configs); main.py's keys in it are accepted and unused")
    _add_method_flags(p, "get_evaluation.py")
    p.add_argument("--eval_name", default="evaluation",
                   help="name of the JSON written into the stage-2 folder ({eval_name}.json)")
    p.add_argument("--reproduce_original", action="store_true",
                   help="evaluate with the original code's word-vector pairing (automatic for "
                        "run folders written by the original code)")
    p.add_argument("--plots", action="store_true",
                   help="also save {eval_name}_beta.png (seen/unseen/HM against beta on val, beta* marked) "
                        "and {eval_name}_tsne.png (t-SNE of the test embeddings) next to the JSON")
    _add_model_flags(p)
    return p


def evaluation_overrides() -> list:
    """The fields of the flags model files add to get_evaluation.py (TCaF's test collation): given,
    they replace the stage-2 run's values."""
    parser = argparse.ArgumentParser(add_help=False)
    _add_method_flags(parser, "get_evaluation.py")
    return [a.dest for a in parser._actions]


def ignored_flags() -> set:
    """main.py's flags that have no effect here (they may differ on --resume): this file's and those
    the model files list."""
    return set(IGNORED_FLAGS).union(*(get_entry(name).ignored_flags for name in list_models()))


def codebase_model(fields) -> Optional[str]:
    """The model of an original codebase that has no model flag of its own (ClipClap's code always
    builds ClipClap), told by fields that only that codebase has (`namespace_fields` of its registry
    entry): some of them are in its config files, all of them in its args.pkl. The registered model
    with the most of them among `fields`, or None."""
    counts = {name: sum(f in fields for f in get_entry(name).namespace_fields) for name in list_models()}
    best = max(counts, key=counts.get, default=None)
    return best if best is not None and counts[best] else None


def resolve_model_name(args: argparse.Namespace, given=()) -> str:
    """The registry name of a Namespace's model: its model flags (none = AVGZSLNet), or the model of
    the codebase whose own fields are among `given` (the fields the user set in --cfg or on the
    command line; an original run's whole Namespace). Such a codebase's files may carry the model
    flags of the code it grew from (`inherited_flags`: ClipClap's configs and args.pkl hold TCaF's
    `new_model_sequence: true`), which do not choose a model there."""
    flags = model_flags()
    # an original codebase's Namespace lacks the flags of the models it did not have (`upgrade_run_args`)
    chosen = [name for flag, (name, _) in flags.items() if getattr(args, flag, False)]
    codebase = codebase_model(given)
    if codebase is not None:
        inherited = {flags[f][0] for f in get_entry(codebase).inherited_flags if f in flags}
        chosen = [n for n in chosen if n not in inherited] or [codebase]
    if len(chosen) > 1:
        flags = " ".join(f"--{f}" for f, (n, _) in model_flags().items() if n in chosen)
        raise UserError(f"choose one model, got {flags}")
    return chosen[0] if chosen else "avgzslnet"


def requested_model(args: argparse.Namespace, given) -> Optional[str]:
    """get_evaluation.py: the model its command line or --cfg names (`given`: the fields set there),
    or None when they name none (the run's own model is evaluated)."""
    if not any(vars(args)[flag] for flag in model_flags()) and codebase_model(given) is None:
        return None
    return resolve_model_name(args, given)


# -- a saved run's arguments (args.pkl), upgraded once where they are loaded -------------------------

# The fields every run's args.pkl holds (the original codes' too): without one it is damaged.
RUN_FIELDS = ("root_dir", "feature_extraction_method", "input_size_audio", "input_size_video")
ORIGINS = ("avca", "tcaf", "clipclap", "project")
# A field a saved run lacks takes the value the code that wrote it behaved with: these, else main.py's
# default (then the model's, as `finalize_main_args` fills them). Every origin:
ABSENT_VALUES = {
    "distance_fn": "L2Loss",            # plain L2 distances in training and evaluation
    "z_score_inputs": False,            # no standardisation of the inputs
    "zero_shot_split": "",              # the feature family's split (filled once the family is known)
    "retrain_all": False,               # a stage-1 run
    "eval_bs": 64, "optimizer": "adam",                 # TCaF's and ClipClap's evaluation batches, optimiser
    "use_wavcaps_embeddings": True, "modality": "both", "word_embeddings": "both",   # ClipClap's published
    "embeddings_batch_norm": True,
}
# ... and a run of an original codebase (no `reproduce_original` field): its defects are what it did
# (word vectors paired by sorted word2vec name, docs/protocol.md).
ORIGINAL_VALUES = {"reproduce_original": True}


def run_origin(saved: argparse.Namespace) -> str:
    """Which code wrote a saved Namespace (its raw fields): "project" (it has this project's
    `reproduce_original`), the codebase its own fields tell (`codebase_model`: "clipclap"), "tcaf" (TCaF's
    model flag, which AVCA's code never had), else "avca" (the original AVCA code)."""
    fields = vars(saved)
    if "reproduce_original" in fields:
        return "project"
    return codebase_model(fields) or ("tcaf" if "new_model_sequence" in fields else "avca")


def upgrade_run_args(saved: argparse.Namespace, source="args.pkl") -> argparse.Namespace:
    """A run's saved arguments as this version reads them: every field of main.py's parser present,
    absent ones taking the value the code that wrote them behaved with (ABSENT_VALUES, ORIGINAL_VALUES,
    else main.py's and the model's defaults); `origin` (ORIGINS) and `model_name` decided from the raw
    fields; `feature_family` and `text_dim` as recorded (None when the run predates them: the family is
    decided from the data folder, `two_stage.with_family`; the width from the data). `source` names the
    file in a UserError (a field of RUN_FIELDS missing)."""
    raw = vars(saved)
    missing = [k for k in RUN_FIELDS if k not in raw]
    if missing:
        raise UserError(f"{source} lacks the fields {', '.join(missing)}: it is damaged or not a main.py run's; "
                        f"train the run again or restore the file")
    origin = raw.get("origin") or run_origin(saved)
    # its model flags, or the codebase its fields tell (a project Namespace holds every model file's fields)
    model_name = raw.get("model_name") or resolve_model_name(saved, given=raw if origin != "project" else ())
    parser = get_main_parser()
    table = {**ABSENT_VALUES, **(ORIGINAL_VALUES if origin != "project" else {})}
    absent = {a.dest: table.get(a.dest, a.default) for a in parser._actions
              if a.dest != "help" and a.dest not in raw}
    model_defaults = {**MODEL_DEPENDENT_DEFAULTS, **get_entry(model_name).defaults}
    absent.update({k: model_defaults[k] for k, v in absent.items() if v is None and k in model_defaults})
    args = argparse.Namespace(**{**raw, **absent, "origin": origin, "model_name": model_name,
                                 "feature_family": raw.get("feature_family"), "text_dim": raw.get("text_dim")})
    filled = copy.copy(args)
    for finalize_args in model_hooks("finalize_args"):      # the model files' defaults of their flags left None
        finalize_args(filled)
    vars(args).update({k: vars(filled)[k] for k in absent})
    return args


def non_default_fields(args: argparse.Namespace) -> set:
    """The fields of a main.py Namespace that differ from the parser's defaults (what the user set,
    when the parse that made it is not at hand)."""
    parser = get_main_parser()
    return {k for k, v in vars(args).items() if v != parser.get_default(k) and k in {a.dest for a in parser._actions}}


def finalize_main_args(args: argparse.Namespace, given=None) -> argparse.Namespace:
    """Fill the defaults that depend on other flags; validate values. `given`: the fields the user
    set (`parse_with_config`); default: those that differ from the defaults."""
    given = non_default_fields(args) if given is None else set(given)
    args.model_name = resolve_model_name(args, given)
    for name, value in {**MODEL_DEPENDENT_DEFAULTS, **get_entry(args.model_name).defaults}.items():
        if vars(args)[name] is None:
            setattr(args, name, value)
    if args.dataset_name is None:
        args.dataset_name = infer_dataset_name(args.root_dir)
    # the feature family, decided once (the only look at the folder's contents) and recorded in args.pkl
    family = folder_family(args.feature_extraction_method, args.root_dir, args.dataset_name).family
    args.feature_family = family.key
    args.text_dim = family.text_width if family.vectors else WORD_DIM     # its class vectors' width, as the data's
    if not args.zero_shot_split:
        args.zero_shot_split = default_zero_shot_split(args)
    for name in ("epochs", "bs", "n_batches"):
        if vars(args)[name] < 1:
            raise UserError(f"--{name} must be >= 1, got {vars(args)[name]}")
    for finalize_args in model_hooks("finalize_args"):      # every model file's own flags
        finalize_args(args)
    check_data_claims(args, given)
    if Path(args.exp_name).is_absolute() or ".." in Path(args.exp_name).parts:
        raise UserError(f"--exp_name {args.exp_name} leaves runs/: give a name (sub-folders allowed), "
                        f"and --dump_path for where runs/ goes")
    if not args.exp_name:
        import time
        args.exp_name = time.strftime("%Y%m%d-%H%M%S") + f"_{args.model_name}"
    return args


def check_data_claims(args: argparse.Namespace, given) -> None:
    """The originals' flags that describe the data rather than choose anything here: refused when they
    contradict it. `--selavi` (TCaF's: the features are SeLaVi's) against the feature folder's
    family, when the user set it; `--input_size` (a single input width no published model reads:
    null in every released args.pkl) whenever it is given."""
    family = family_of_args(args)
    if "selavi" in given and family.key and bool(args.selavi) != family.selavi:
        folder = Path(str(args.feature_extraction_method)).name
        raise UserError(f"--selavi {bool(args.selavi)} contradicts --feature_extraction_method {folder}, which holds "
                        f"{family.networks} features: pass --selavi {family.selavi} (TCaF's best_main configs say "
                        f"True, its best_cls ones False), or the other feature folder")
    if args.input_size is not None:
        raise UserError(f"--input_size {args.input_size}: no model reads it (the original code's args.pkl files hold "
                        f"null); the feature widths are --input_size_audio and --input_size_video")


def default_zero_shot_split(args) -> str:
    """The split of the feature family's (an empty --zero_shot_split): cls_split for cls features, else
    main_split; a folder of no family has none: UserError naming the flag and the split folders there are."""
    family = family_of_args(args)
    if family.split:
        return family.split
    root = Path(getattr(args, "root_dir", None) or ".")
    splits = sorted(p.name for name in ("class-split", "class_split") if (root / name).is_dir()
                    for p in (root / name).iterdir() if p.is_dir())
    there = f"one of {', '.join(splits)} (the folders of {root}/class-split/)" if splits else \
        f"a folder of {root}/class-split/ (there is none)"
    raise UserError(f"--feature_extraction_method {family.folder} is no feature family's folder, so it has no class "
                    f"split of its own: pass main.py's --zero_shot_split (a run's args.pkl keeps it), {there}")


def infer_dataset_name(root_dir) -> str:
    name = Path(root_dir).resolve().name if root_dir is not None else ""
    for key in DATASETS:
        if name.lower() == key.lower():
            return key
    raise UserError(f"cannot tell the dataset from --root_dir {root_dir}: pass --dataset_name "
                    f"({', '.join(DATASETS)})")


def flags_markdown() -> str:
    """The README's flag tables (`python -m src.args > flags.md`)."""
    def table(parser):
        out = []
        for group in parser._action_groups:
            acts = [a for a in group._group_actions if a.help != argparse.SUPPRESS and a.dest != "help"]
            if not acts:
                continue
            out.append(f"\n**{group.title}**\n\n| flag | default | what it does |\n|---|---|---|")
            for a in acts:
                default = "" if isinstance(a, argparse._StoreTrueAction) or a.default in (None, "") else f"`{a.default}`"
                out.append(f"| `{a.option_strings[0]}` | {default} | {(a.help or '').replace('|', '/')} |")
        return "\n".join(out)

    return ("### main.py\n" + table(get_main_parser()) +
            "\n\n### get_evaluation.py\n" + table(get_eval_parser()) + "\n")


if __name__ == "__main__":
    print(flags_markdown(), end="")
