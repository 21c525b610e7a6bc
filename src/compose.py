"""main.py's composition: the only code that reads the argparse Namespace past the model builders.

`build_trainer` resolves the device, loads the splits, builds the model and its optimiser,
prepares the run folder and saves args.pkl, in fail-fast order (bad input fails before anything
is written), and hands explicit objects to `Trainer`. A model with nothing to train (`trainable`
False: the frozen CLIP/CLAP row) gets no optimiser and one epoch, its validation, whatever --epochs
says. `train` holds the run folder's lock for the whole training and turns Ctrl-C / SIGTERM into
one line.
"""
import argparse
import copy
import logging
from pathlib import Path
from typing import List, Tuple

from .args import get_eval_parser
from .families import family_of_args
from .data import dataset_from_args
from .errors import UserError
from .models import get_entry
from .runs import RunFolder
from .runtime import KeptRecords, configure_threads, resolve_device, seed_everything, setup_logging
from .signals import TrainingInterrupted, stop_signals
from .steps import build_model
from .train import Trainer, TrainConfig
from .two_stage import evaluate_runs, report, stage_a_checkpoint

log = logging.getLogger("avgzsl")


def build_trainer(args: argparse.Namespace, run: RunFolder) -> Trainer:
    device = resolve_device(args.device)
    threads = configure_threads(args.num_threads)
    setup_logging(None, args.verbose)
    if device.type == "cpu":         # the numbers depend on it (README "Reproducibility")
        log.info("CPU threads: %d%s", threads, "" if args.num_threads else " (--num_threads 0: the machine's default)")
    kept = KeptRecords()             # the data's and the model's warnings, for train.log once it exists
    log.addHandler(kept)
    resuming = run.claim(args.resume, args.overwrite)
    if resuming:
        run.check_resume_args(args)
    # data and model first: bad input fails before anything is written
    entry = get_entry(args.model_name)
    family = family_of_args(args)      # decided when the arguments were finalised
    built, notes = as_built(args, entry, family)
    if family.key:                     # a family's folder: checked before it is read
        check_features(entry, family, Path(args.root_dir) / "features" / family.folder)
    dataset = dataset_from_args(built)
    args.text_dim = built.text_dim = dataset.text_dim   # the class vectors' width: 300 (word2vec) or 1536 (CLIP+CLAP)
    if not family.key:                 # a folder name of no family: once it is found
        check_features(entry, family, dataset.feature_dir)
    entry.check_optimizer(args.optimizer, args.compile or args.amp or args.cuda_graph)
    train = dataset.split("train_val" if args.retrain_all else "train").to(device)
    val = dataset.split("val").to(device)
    seed_everything(args.seed)
    model = build_model(args.model_name, built).to(device)
    trainable = model.trainable
    optimizer, scheduler = (model.configure_optimizers(lr=args.lr, lr_scheduler=args.lr_scheduler) if trainable
                            else (None, None))
    callbacks = [] if entry.callbacks is None else entry.callbacks(
        args, lambda name: val if name == "val" else dataset.split(name).to(device), resuming)
    run.prepare(resuming)
    setup_logging(run.path / "train.log", args.verbose, replay=kept.records)
    log.info("run %s on %s: %s, %s", run.path, device, args.model_name,
             "stage 2 (train+val)" if args.retrain_all else "stage 1 (train)")
    for note in notes:
        log.info(note)
    if not trainable:
        log.info("%s is training-free (no trainable parameters): no optimiser and no training step; its one "
                 "epoch is a validation (--epochs %d ignored)", args.model_name, args.epochs)
    log.info("train: %d samples of %d classes; val: %d samples, %d seen + %d unseen classes", len(train),
             len(train.class_ids), len(val), int(val.seen_mask.sum()), int((~val.seen_mask).sum()))
    run.save_args(args)
    config = TrainConfig(epochs=args.epochs if trainable else 1, n_batches=args.n_batches, bs=args.bs,
                         seed=args.seed, z_score=args.z_score_inputs, save_checkpoints=args.save_checkpoints,
                         retrain_all=args.retrain_all, reproduce_original=args.reproduce_original,
                         compile=args.compile, amp=args.amp, cuda_graph=args.cuda_graph,
                         # [original defect] the original validated with plain L2 whatever --distance_fn said.
                         squared=args.distance_fn == "SquaredL2Loss" and not args.reproduce_original)
    return Trainer(model=model, optimizer=optimizer, scheduler=scheduler, train=train, val=val, run=run,
                   class_name=entry.class_name, config=config, resuming=resuming, batches=entry.batches,
                   epoch_fn=entry.epoch_fn, val_loss_fn=entry.val_loss_fn, callbacks=callbacks)


def check_features(entry, family, folder: Path) -> None:
    """UserError when a feature folder (of `family`) is not what the model trains on."""
    need = entry.needs_other_features(family.temporal, family.vectors)
    if need:
        raise UserError(f"{entry.name} trains on {need}, but {folder} holds {family.kind}: pass the --root_dir and "
                        f"--feature_extraction_method of such features, or the model flag of a model for these")


def as_built(args: argparse.Namespace, entry, family) -> Tuple[argparse.Namespace, List[str]]:
    """The Namespace the data and the model are built from, and what the log should say about it. A
    model of the CLIP/CLAP family alone (ClipClap) is built for that family's widths whatever
    --input_size_audio/video say, as ClipClap's code does (its config's 128/4096 are TCaF's C3D/VGGish
    widths; args.pkl keeps the values given, as the original's does); the model flags its codebase's
    files carry from TCaF (`new_model_sequence: true`) are named as not choosing TCaF."""
    notes = [f"--{flag} comes with {entry.name}'s configuration, whose code does not read it as a model choice: "
             f"training {entry.name} ({entry.class_name}), as that code does"
             for flag in entry.inherited_flags if vars(args)[flag]]
    sizes = (args.input_size_audio, args.input_size_video)
    if not (entry.vectors and family.vectors and sizes != (family.audio_width, family.video_width)):
        return args, notes
    built = copy.copy(args)
    built.input_size_audio, built.input_size_video = family.audio_width, family.video_width
    notes.append(f"--input_size_audio {sizes[0]} --input_size_video {sizes[1]} do not describe the "
                 f"{family.networks} features ({family.widths}): {entry.name} is built for the features, as its "
                 f"original code does (args.pkl keeps the values given)")
    return built, notes


def runs_dir(args: argparse.Namespace) -> Path:
    """Where the run folders go: --log_dir (TCaF's name), else {dump_path}/runs."""
    return Path(args.log_dir) if args.log_dir else Path(args.dump_path) / "runs"


def train(args: argparse.Namespace) -> dict:
    """Train one stage as main.py does; SIGINT and SIGTERM raise TrainingInterrupted throughout."""
    run = RunFolder(runs_dir(args) / args.exp_name)
    with stop_signals():
        lock = None
        try:
            lock = run.lock()     # one training per run folder: before it is read, deleted or written
            return build_trainer(args, run).fit()
        except TrainingInterrupted as err:
            if err.detail:
                raise
            raise TrainingInterrupted(err.signum, "before training started") from None
        finally:
            if lock is not None:
                lock.release()


def run(args: argparse.Namespace):
    """main.py: one stage (the default), or TCaF's `--run all|stage-1|stage-2|eval` (docs/tcaf.md §6):
    stage 1 into {exp_name}_stage_1, stage 2 into {exp_name}_stage_2 for the best stage-1 epoch + 1
    epochs ([original defect] under --reproduce_original: all --epochs when that epoch is the first),
    then get_evaluation's numbers."""
    if args.run is None:
        return train(args)
    stage_1, stage_2 = (f"{args.exp_name}_stage_{k}" for k in (1, 2))
    if args.run in ("all", "stage-1"):
        train(_stage(args, stage_1, retrain_all=False))
    if args.run in ("all", "stage-2"):
        epochs = args.epochs
        if args.run == "all":
            _, best = stage_a_checkpoint(RunFolder(runs_dir(args) / stage_1), get_entry(args.model_name).class_name)
            defect = args.reproduce_original and get_entry(args.model_name).first_epoch_defect
            epochs = args.epochs if defect and best == 1 else best
        train(_stage(args, stage_2, retrain_all=True, epochs=epochs))
    if args.run in ("all", "eval"):
        # --run eval: the folders given (TCaF's --load_path_stage_A/B), else this run's two stages
        paths = [args.load_path_stage_A, args.load_path_stage_B]
        if args.run == "eval" and any(paths) and not all(paths):
            raise UserError("--run eval takes both --load_path_stage_A and --load_path_stage_B (or neither: the "
                            f"stages of --exp_name, {runs_dir(args) / stage_1} and {runs_dir(args) / stage_2})")
        given = args.run == "eval" and all(paths)
        stages = paths if given else [runs_dir(args) / stage_1, runs_dir(args) / stage_2]
        eval_args = get_eval_parser().parse_args(
            ["--load_path_stage_A", str(stages[0]), "--load_path_stage_B", str(stages[1]),
             *(["--root_dir", str(args.root_dir)] if given else []), *(["--device", args.device] if args.device else []),
             *(["--eval_name", args.eval_name] if args.eval_name else [])])
        eval_args.model_name = args.model_name
        return report(eval_args, evaluate_runs(eval_args))
    return None


def _stage(args: argparse.Namespace, exp_name: str, retrain_all: bool, epochs=None) -> argparse.Namespace:
    stage = copy.copy(args)
    stage.exp_name, stage.retrain_all, stage.save_checkpoints = exp_name, retrain_all, retrain_all or args.save_checkpoints
    stage.run = None
    if epochs is not None:
        stage.epochs = epochs
    return stage
