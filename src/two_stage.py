"""get_evaluation.py's work (docs/protocol.md "get_evaluation.py"): choose beta* with stage 1's best
model on val, evaluate stage 2's checkpoint of the same epoch on test; and the one place where a
model is restored from a run folder (get_evaluation.py and the pictures of src/plots.py).
"""
import argparse
import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Dict, Tuple

from .args import default_zero_shot_split, evaluation_overrides, resolve_model_name
from .families import DATASETS, FAMILIES, FOLDERS, folder_family
from .data import AVGZSLDataset, dataset_from_args
from .errors import UserError
from .evaluate import combined_beta, evaluate_model, format_line
from .io_utils import atomic_write_json
from .models import get_entry, list_models, model_flags
from .runs import RunFolder, load_checkpoint, load_model_state
from .runtime import configure_threads, resolve_device
from .steps import build_model

log = logging.getLogger("avgzsl")


def run_setting(args) -> Dict[str, str]:
    """What a run was trained on and as, from its upgraded args.pkl (`RunFolder.load_args`): the values
    both stages must share."""
    return {"--dataset_name": str(args.dataset_name),
            "--feature_extraction_method": Path(str(args.feature_extraction_method)).name,
            "--zero_shot_split": args.zero_shot_split or default_zero_shot_split(args),
            "--input_size_audio": str(args.input_size_audio),
            "--input_size_video": str(args.input_size_video),
            "model": args.model_name,
            "--reproduce_original": str(bool(args.reproduce_original)),
            "--distance_fn": str(args.distance_fn),
            "--z_score_inputs": str(bool(args.z_score_inputs))}


def evaluated_model(eval_args, args: argparse.Namespace, run_a: RunFolder, run_b: RunFolder) -> str:
    """The run's own model; a model flag (command line or --cfg) that names another is refused in one
    line naming both, unless the run's args.pkl names no model (all flags off, as an AVGZSLNet run)
    and stage A holds the named model's checkpoint, not its own (a released model's args.pkl)."""
    own = args.model_name
    asked = getattr(eval_args, "model_name", None)      # set by main.py --run; get_evaluation.py's parser has none
    if asked is None and any(vars(eval_args)[flag] for flag in model_flags()):
        asked = resolve_model_name(eval_args)          # a Namespace built in code, with a model flag
    if asked is None or asked == own:
        return own
    has = {name: (run_a.path / f"{get_entry(name).class_name}_score.pt").is_file() for name in (asked, own)}
    if own == "avgzslnet" and has[asked] and not has[own]:      # its flags all off, its files another model's
        return asked

    def named(name):
        entry = get_entry(name)
        return f"{name} ({'--' + entry.flag if entry.flag else 'no model flag'}, {entry.class_name}_*.pt)"
    raise UserError(f"the model flag{' of --cfg ' + str(eval_args.cfg) if eval_args.cfg else ''} "
                    f"names {named(asked)}, but {run_b.path} holds a {named(own)} run ({run_b.args_path}): drop the "
                    f"flag (a run's own model is evaluated), or pass the run folders of a {asked} training")


def check_same_setting(args_a, path_a, args_b, path_b) -> None:
    """Refuse a stage-1 run trained on another dataset, feature family, split, model or pairing
    than the stage-2 run: its beta* and epoch would not belong to the stage-2 model."""
    a, b = run_setting(args_a), run_setting(args_b)
    diff = [f"{k} {a[k]} in {path_a} but {b[k]} in {path_b}" for k in a if a[k] != b[k]]
    if diff:
        raise UserError("the stage-A and stage-B runs were trained differently (" + "; ".join(diff) +
                        "): pass the stage-1 and stage-2 runs of the same setting")


def with_family(args: argparse.Namespace) -> argparse.Namespace:
    """A run's args with its feature family (`feature_family`: a run saved before it was recorded gets the
    family of its folder and dataset folder) and a CLIP/CLAP run's input sizes its family's: ClipClap's code
    builds its model for them whatever its args.pkl says (its config's 128/4096, the C3D/VGGish widths)."""
    if args.feature_family is None:         # saved before the family was recorded
        # a name of no family is "", its files read where the data is (the dataset folder may have moved)
        named = PurePath(str(args.feature_extraction_method)).name in FOLDERS
        args.feature_family = (folder_family(args.feature_extraction_method, args.root_dir, args.dataset_name).family.key
                               if named else "")
    family = FAMILIES.get(args.feature_family)
    if family is not None and family.vectors:
        args.input_size_audio, args.input_size_video = family.audio_width, family.video_width
    return args


def stage_b_args(eval_args) -> argparse.Namespace:
    """Stage B's args.pkl (models and data come from it) with the command line's --dataset_name
    and --root_dir, checked against stage A's."""
    run_a, run_b = RunFolder(eval_args.load_path_stage_A), RunFolder(eval_args.load_path_stage_B)
    for run, flag in ((run_a, "--load_path_stage_A"), (run_b, "--load_path_stage_B")):
        if not run.path.is_dir():
            raise UserError(f"{flag} {run.path} does not exist")
    args = run_b.load_args()
    if not args.retrain_all:
        raise UserError(f"{run_b.args_path}: the stage-B run was not trained with --retrain_all; "
                        f"--load_path_stage_B must be the stage-2 run folder")
    if run_a.args_path.is_file():          # the authors' released models may come without it
        # what each run was trained on, before the command line's values go in
        check_same_setting(with_family(run_a.load_args()), run_a.args_path,
                           with_family(copy.copy(args)), run_b.args_path)
    trained_on, asked = args.dataset_name, eval_args.dataset_name
    if asked is not None and trained_on in DATASETS and asked != trained_on:
        raise UserError(f"--dataset_name {asked}, but the runs were trained on {trained_on} ({run_b.args_path}): "
                        f"drop --dataset_name, or pass the run folders of a {asked} training")
    given = {k: vars(eval_args)[k] for k in ("dataset_name", "root_dir", *evaluation_overrides())}
    vars(args).update({k: v for k, v in given.items() if v is not None})
    with_family(args)
    if not args.zero_shot_split:          # the original's default was ""
        args.zero_shot_split = default_zero_shot_split(args)
    if not Path(args.root_dir).is_dir():
        raise UserError(f"the dataset folder {args.root_dir} of {run_b.args_path} does not exist here: "
                        f"pass --root_dir to where the dataset is now")
    return args


def check_run_data(entry, args: argparse.Namespace, run_b: RunFolder, moved) -> None:
    """UserError when the dataset folder the evaluation reads does not hold what the run's model trained on
    (a TCaF run and ClipClap's CLIP/CLAP data share a feature folder name; a folder of no family's name holds
    what its files show)."""
    family = folder_family(args.feature_extraction_method, args.root_dir, args.dataset_name).family  # what it holds
    need = entry.needs_other_features(family.temporal, family.vectors)
    if need:
        where = f"--root_dir {args.root_dir}" if moved else f"its dataset folder {args.root_dir} ({run_b.args_path})"
        raise UserError(f"{run_b.path} is a {entry.name} run, which needs {need}, but {where} holds {family.kind} "
                        f"in features/{family.folder}: pass --root_dir of the data it was trained on")


def check_original_overrides(eval_args, entry, reproduce: bool, run_b: RunFolder) -> None:
    """Refuse an original code's flags that change the trained model at evaluation (HSP-MoE's
    --eval_semantic_far_*, `original_overrides` of its entry) unless its evaluation is reproduced
    (--reproduce_original, or that code's own run folder), and on a run of another model."""
    owners = {dest: get_entry(name) for name in list_models() for dest in get_entry(name).original_overrides}
    for dest, owner in owners.items():
        if vars(eval_args).get(dest) is None:
            continue
        if dest not in entry.original_overrides:
            raise UserError(f"--{dest} changes {owner.label} runs at evaluation, but {run_b.path} holds a {entry.label} "
                            f"run: drop it")
        if not reproduce:
            raise UserError(f"--{dest} changes the trained model at evaluation, after its epoch was chosen with the "
                            f"run's own value; a value picked by comparing test numbers is tuned on the test split "
                            f"(an [original defect] of {owner.name}'s code): the stage-2 run's values are used, so drop "
                            f"it, or pass --reproduce_original to evaluate as the original did")


def stage_b_checkpoint(run: RunFolder, entry, epoch: int, reproduce: bool) -> Path:
    """Stage 2's checkpoint of stage 1's best epoch (1-based `epoch`). Missing: an error, or, reproducing
    an original code that did so (`latest_checkpoint_fallback`), its latest checkpoint with a warning."""
    path = run.epoch_ckpt(entry.class_name, epoch - 1)
    if path.is_file():
        return path
    latest = run.latest_epoch_ckpt(entry.class_name) if reproduce and entry.latest_checkpoint_fallback else None
    if latest is not None:
        log.warning("%s is missing (stage A chose epoch %d, 0-based): evaluating the latest stage-2 checkpoint %s "
                    "instead, as %s's code did (--reproduce_original); its epoch is not stage 1's choice",
                    path, epoch - 1, latest, entry.name)
        return latest
    raise UserError(f"{path} is missing: stage A chose epoch {epoch - 1} (0-based); train stage B "
                    f"with --save_checkpoints for at least {epoch} epochs")


def restore_model(model_name: str, args, path: Path, dataset: AVGZSLDataset, device):
    """The model of checkpoint `path` (built from the run's args), in eval mode, with what it needs
    at evaluation beyond its weights (its training split and the trainer's classifier fit, for f-VAEGAN-D2's
    classifiers)."""
    args.text_dim = dataset.text_dim          # the class vectors' width (absent from older args.pkl files)
    model = build_model(model_name, args)
    load_model_state(model, load_checkpoint(path)["model"], path)
    split = model.evaluation_needs_split()
    if split is not None:
        model.attach_training_data(dataset.split(split))
    return model.to(device).eval()


def stage_a_checkpoint(run: RunFolder, class_name: str) -> Tuple[Path, int]:
    """Stage 1's best-score checkpoint and its epoch (1-based)."""
    path = run.find_best("score", class_name)
    ckpt = load_checkpoint(path)
    try:
        epoch = int(ckpt["epoch"])
        assert epoch >= 1
    except (KeyError, TypeError, ValueError, AssertionError):
        raise UserError(f"{path} has no valid 'epoch' entry (got {ckpt.get('epoch')!r}): it is damaged; "
                        f"restore it or retrain stage 1") from None
    return path, epoch


@dataclass
class Evaluation:
    """An evaluation's numbers (`result`, what get_evaluation.py prints and writes) and what gave
    them: the run's arguments, the two restored models, the val and test splits on their device, the
    distance options."""
    result: dict
    args: argparse.Namespace
    model_a: object
    model_b: object
    val: object
    test: object
    squared: bool
    z_score: bool


def evaluate_runs(eval_args) -> dict:
    """Choose beta* with stage-1's best model on val; evaluate stage 2's same-epoch checkpoint
    on test. Returns the numbers; prints nothing."""
    return evaluate_pair(eval_args).result


def evaluate_pair(eval_args) -> Evaluation:
    """evaluate_runs, keeping the models and splits (get_evaluation.py --plots draws from them)."""
    args = stage_b_args(eval_args)
    run_a, run_b = RunFolder(eval_args.load_path_stage_A), RunFolder(eval_args.load_path_stage_B)
    model_name = evaluated_model(eval_args, args, run_a, run_b)
    check_run_data(get_entry(model_name), args, run_b, moved="root_dir" in vars(eval_args) and eval_args.root_dir)
    reproduce = eval_args.reproduce_original or args.reproduce_original     # an original codebase's run: True
    check_original_overrides(eval_args, get_entry(model_name), reproduce, run_b)
    device = resolve_device(eval_args.device)
    configure_threads()
    squared = args.distance_fn == "SquaredL2Loss"
    z_score = args.z_score_inputs

    dataset = dataset_from_args(args, pairing="original" if reproduce else "correct")
    val, test = dataset.split("val").to(device), dataset.split("test").to(device)
    entry = get_entry(model_name)

    path_a, epoch = stage_a_checkpoint(run_a, entry.class_name)
    model_a = restore_model(model_name, args, path_a, dataset, device)
    val_results = evaluate_model(model_a, val, squared, z_score=z_score)
    beta = combined_beta(val_results)
    log.info("Validation betas: %s", ", ".join(f"{m} {r['beta']:.4f}" for m, r in val_results.items()))
    log.info("Best beta combined: %.4f", beta)

    path_b = stage_b_checkpoint(run_b, entry, epoch, reproduce)
    model_b = restore_model(model_name, args, path_b, dataset, device)
    model_b.adopt_stage_1_choices(model_a)
    test_results = evaluate_model(model_b, test, squared, beta=beta, z_score=z_score)
    reported = test_results[model_b.reported_mode]
    names = [dataset.class_names[c] for c in test.class_ids.tolist()]
    result = {"model": model_name, "dataset": args.dataset_name, "mode": model_b.reported_mode,
            "seen": reported["seen"], "unseen": reported["unseen"], "hm": reported["hm"], "zsl": reported["zsl"],
            "beta": beta, "epoch": epoch, "val_betas": {m: r["beta"] for m, r in val_results.items()},
            "pairing": "original" if reproduce else "correct",
            "modes": {m: {k: r[k] for k in ("seen", "unseen", "hm", "zsl")} for m, r in test_results.items()},
            "per_class_recall": {n: float(x) for n, x in zip(names, reported["recall"])},
            "seen_classes": [n for n, s in zip(names, test.seen_mask.tolist()) if s],
            "stage_A": str(path_a), "stage_B": str(path_b)}
    return Evaluation(result, args, model_a, model_b, val, test, squared, z_score)


def report(eval_args, result: dict) -> str:
    """Print the line, write {eval_name}.json into the stage-B folder and append to its eval.log."""
    line = format_line(result)
    print(line)
    stage_b = Path(eval_args.load_path_stage_B)
    out = stage_b / f"{eval_args.eval_name}.json"
    atomic_write_json(result, out)
    with open(stage_b / "eval.log", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {eval_args.load_path_stage_A} beta*={result['beta']:.4f} "
                f"epoch={result['epoch']} {line}\n")
    log.info("wrote %s", out)
    return line
