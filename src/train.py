"""The fit loop (docs/protocol.md section 3): epochs, per-epoch validation, best-score / best-loss /
per-epoch checkpoints, the LR scheduler, logs, and --resume.

`Trainer` takes explicit objects (model, optimiser, splits, run folder) and a frozen
`TrainConfig`; `src/compose.py` builds them from the command line. It knows a model only
through the interface of `src/models/base.py`. An epoch is `steps.train_epoch` (class-balanced
batches built by the model's `Batches`, one optimiser step each) unless the model's registry entry
brings its own `epoch_fn` (f-VAEGAN-D2), which gets the same `EpochInputs`; `callbacks` are called
after every epoch (`after_epoch(trainer, epoch)`) and at the end (`after_fit(trainer)`).

A model with nothing to train (`trainable` False: the frozen CLIP/CLAP row) comes with no optimiser
(`optimizer=None`) and one epoch (src/compose.py): that epoch is its validation alone, with no step
and no validation loss, recorded as any epoch is (the best-score checkpoint, every epoch's under
--save_checkpoints, the metrics line, the resume state), so its run folder is any method's.

Interruptions (README "Interruptions"). Its files are written in this order, by one
background thread: the resume state of epoch 0 before anything else, then for every epoch its
checkpoints and then its resume state. Whatever stops the process, the folder holds a prefix of
that sequence (each file whole, thanks to the atomic writes), so `--resume` continues from the
last resume state: an epoch whose checkpoints were written without its resume state is trained
again, to the same numbers, and overwrites them; metrics.jsonl lines after the resume state are
dropped. SIGINT (Ctrl-C) and SIGTERM (Slurm, submitit, kill) raise `TrainingInterrupted` in the
main thread; the files queued so far are finished (a second signal drops the ones not started),
and the process exits with a line saying which epoch the folder keeps (status 130 / 143). Once an
epoch is trained and validated, recording it (checkpoints, scheduler step, log line, callbacks,
resume state) is short: a signal there is held until the epoch's resume state is queued, so the
epoch is kept and `--resume` goes on from the next one (a second signal stops at once, and the
epoch is trained again on resume).
"""
import logging
import math
import signal
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

from .data import SplitData
from .errors import UserError
from .evaluate import evaluate_distances, evaluate_model
from .io_utils import BackgroundWriter, atomic_torch_save, cpu_snapshot
from .models.base import PAIRS, Batches, EpochInputs
from .runs import RunFolder, load_model_state
from .runtime import rng_state, set_rng_state
from .sampler import PairSampler
from .signals import StopSignals, TrainingInterrupted, stop_signals
from .steps import Steps, train_epoch, validation_loss

log = logging.getLogger("avgzsl")


@dataclass(frozen=True)
class TrainConfig:
    """What the loop needs from the command line."""
    epochs: int
    n_batches: int
    bs: int
    seed: int
    z_score: bool = False            # --z_score_inputs
    squared: bool = False            # validate with squared L2 distances
    save_checkpoints: bool = False   # every epoch's checkpoint (stage 2)
    retrain_all: bool = False        # stage 2
    reproduce_original: bool = False
    compile: bool = False            # --compile: torch.compile of the training step
    amp: Optional[str] = None        # --amp bf16: the training step under autocast
    cuda_graph: bool = False         # --cuda_graph: the whole step as one replayed CUDA graph


class Trainer:
    def __init__(self, *, model, optimizer, scheduler, train: SplitData, val: SplitData, run: RunFolder,
                 class_name: str, config: TrainConfig, resuming: bool = False, batches: Batches = PAIRS,
                 epoch_fn: Optional[Callable[[EpochInputs], Dict[str, float]]] = None,
                 val_loss_fn: Optional[Callable[[object, SplitData], float]] = None, callbacks: Sequence = ()):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train, self.val, self.run, self.class_name, self.config = train, val, run, class_name, config
        self.resuming, self.callbacks = resuming, list(callbacks)
        self.batches, self.epoch_fn = batches, epoch_fn or train_epoch
        self.steps = Steps(model, config.compile, config.amp, config.cuda_graph, train.labels.device.type)
        self.val_loss_fn = val_loss_fn or self.validation_loss
        device = train.labels.device
        self.sampler = PairSampler(train.labels, len(train.class_ids), config.seed, device)
        # the validation loss: every val sample once, with a negative fixed for the run
        self.val_neg = PairSampler(val.labels, len(val.class_ids), config.seed + 1, device).negatives(val.labels)
        self.start_epoch, self.best_score, self.best_loss = 0, -math.inf, math.inf
        self.saved_epoch: Optional[int] = None     # the epoch of the resume state on disk
        self.writer = None
        self.stop: Optional[StopSignals] = None
        self.files = BackgroundWriter()     # checkpoints are written while the next epoch trains

    # -- one epoch -----------------------------------------------------------------------
    def epoch_inputs(self, epoch: int) -> EpochInputs:
        c = self.config
        return EpochInputs(model=self.model, optimizer=self.optimizer, train=self.train, val=self.val,
                           sampler=self.sampler, epoch=epoch, epochs=c.epochs, n_batches=c.n_batches, bs=c.bs,
                           z_score=c.z_score, retrain_all=c.retrain_all, reproduce_original=c.reproduce_original,
                           val_metrics=lambda d: evaluate_distances(d, self.val.labels, self.val.seen_mask),
                           steps=self.steps, batches=self.batches)

    def validation_loss(self, model, val: SplitData) -> float:
        """The training loss in eval mode over the val samples, each with its fixed negative."""
        return validation_loss(model, val, self.batches, self.val_neg, self.config.z_score)

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> dict:
        failure: Optional[BaseException] = None
        with stop_signals() as stop:
            self.stop = stop
            try:
                self._fit()
            except BaseException as err:  # noqa: BLE001 - re-raised below, once the files are done
                failure = err
            finally:
                failure = self._finish(failure)
        if failure is not None:
            raise failure
        for cb in self.callbacks:
            cb.after_fit(self)
        log.info("done: best val %s HM %.4f; checkpoints in %s", self.model.reported_mode, self.best_score,
                 self.run.path)
        return {"best_score": self.best_score, "best_loss": self.best_loss}

    def _fit(self) -> None:
        from torch.utils.tensorboard import SummaryWriter
        if self.resuming:
            self.load_resume_state()
        else:
            self.save_resume_state()     # epoch 0, before any checkpoint: --resume works from the start
        self.writer = SummaryWriter(log_dir=str(self.run.path), purge_step=self.start_epoch)
        self.epochs()

    def _finish(self, failure: Optional[BaseException]) -> Optional[BaseException]:
        """Finish the queued writes (drop the ones not started on another signal), close the logs,
        remove temp files, release the folder; the exception to raise, if any, in one line."""
        stop = self.stop
        stop.stopping = True
        stop.on_repeat = self.files.discard_pending
        if isinstance(failure, KeyboardInterrupt) and self.files.pending:
            log.info("finishing the files of the finished epochs (interrupt again to skip them)")
        write_error = None
        try:
            self.files.flush()
        except BaseException as err:  # noqa: BLE001
            write_error = err
        finally:
            if self.writer is not None:
                try:
                    self.writer.close()
                except Exception as err:  # noqa: BLE001 - TensorBoard's own write failing (a full disk)
                    log.debug("closing TensorBoard's writer: %s", err)
            self.run.remove_temps()
        if failure is None and stop.signum is not None:    # a signal during the last writes
            failure = TrainingInterrupted(stop.signum)
        if write_error is not None and (failure is None or isinstance(failure, (KeyboardInterrupt, OSError))):
            failure = write_error
        kept = self.run.kept(self.saved_epoch, self.config.epochs, self.resuming)
        if isinstance(failure, TrainingInterrupted) and not failure.detail:
            return TrainingInterrupted(failure.signum, kept)
        if isinstance(failure, KeyboardInterrupt) and not isinstance(failure, TrainingInterrupted):
            return TrainingInterrupted(signal.SIGINT, kept)
        if isinstance(failure, OSError) and failure.filename is not None and (
                failure is write_error or str(failure.filename).startswith(str(self.run.path))):
            return UserError(self.run.write_failure_line(failure, self.saved_epoch))
        return failure

    def improves(self, score: float) -> bool:
        """Whether an epoch's val score makes it the best: strictly higher than the best so far (ties
        keep the earlier epoch), and a NaN never (docs/protocol.md 3). [original defect] under
        --reproduce_original: the originals' test `if not best or score > best` also let any later
        epoch replace a best of exactly 0.0 (NaN aside: here it never becomes the best)."""
        if not math.isfinite(score):
            return False
        return score > self.best_score or (self.config.reproduce_original and self.best_score == 0.0)

    def epochs(self) -> None:
        for epoch in range(self.start_epoch, self.config.epochs):
            outcome = self.train_and_validate(epoch)
            with self.stop.held():           # the epoch is done: a signal now waits until it is recorded
                self.record_epoch(epoch, *outcome)

    def train_and_validate(self, epoch: int) -> tuple:
        """One epoch trained, then validated: (train stats, val results, val score, val loss, its
        start time, the seconds it trained)."""
        c, model = self.config, self.model
        t0 = time.perf_counter()
        train_stats = self.epoch_fn(self.epoch_inputs(epoch)) if self.model.trainable else {}
        t_train = time.perf_counter() - t0
        results = evaluate_model(model, self.val, c.squared, z_score=c.z_score)
        score = results[model.reported_mode]["hm"]
        val_loss = self.val_loss_fn(model, self.val) if self.model.trainable else None     # no loss: no *_loss.pt
        return train_stats, results, score, val_loss, t0, t_train

    def record_epoch(self, epoch, train_stats, results, score, val_loss, t0, t_train) -> None:
        """Everything after an epoch's validation, up to its resume state (queued, after its checkpoints)."""
        c, run, cls, model = self.config, self.run, self.class_name, self.model
        # strictly better only; a NaN never becomes the best [original defect]
        if val_loss is not None and math.isfinite(val_loss) and val_loss < self.best_loss:
            self.best_loss = val_loss
            run.save_checkpoint(run.best(cls, "loss"), model, self.optimizer, epoch + 1, "loss", self.files,
                                val_loss=val_loss)
        if self.improves(score):
            self.best_score = score
            run.save_checkpoint(run.best(cls, "score"), model, self.optimizer, epoch + 1, "score", self.files,
                                score=score)
        if c.save_checkpoints:
            run.save_checkpoint(run.epoch_ckpt(cls, epoch), model, self.optimizer, epoch + 1, "score", self.files,
                                score=score)
        lr = float(self.optimizer.param_groups[0]["lr"]) if self.model.trainable else None    # a tensor under --cuda_graph
        if self.scheduler is not None:
            self.scheduler.step(score)
        self.log_epoch(epoch, train_stats, val_loss, results, lr, t_train, time.perf_counter() - t0)
        for cb in self.callbacks:
            cb.after_epoch(self, epoch)
        self.start_epoch = epoch + 1
        self.save_resume_state()

    def log_epoch(self, epoch, train_stats, val_loss, results, lr, t_train, t_epoch) -> None:
        mode, c = self.model.reported_mode, self.config
        r = results[mode]
        val = (f"val {mode}: seen {r['seen']:.4f} unseen {r['unseen']:.4f} HM {r['hm']:.4f} ZSL {r['zsl']:.4f} "
               f"beta {r['beta']:.2f}")
        if self.model.trainable:
            log.info("epoch %d/%d  loss %.4f  val loss %.4f  %s  lr %.2e  (%.1fs, %.0f samples/s)", epoch + 1,
                     c.epochs, train_stats["loss"], val_loss, val, lr, t_epoch, c.n_batches * c.bs / t_train)
        else:
            log.info("epoch %d/%d  training-free  %s  (%.1fs)", epoch + 1, c.epochs, val, t_epoch)
        for m, rm in results.items():
            log.debug("  %s: seen %.4f unseen %.4f HM %.4f ZSL %.4f beta %.2f", m, rm["seen"], rm["unseen"],
                      rm["hm"], rm["zsl"], rm["beta"])
        w = self.writer
        for k, v in train_stats.items():
            w.add_scalar(f"train/{k}", v, epoch)
        for m, rm in results.items():
            for k in ("seen", "unseen", "hm", "zsl", "beta"):
                w.add_scalar(f"val_{m}/{k}", rm[k], epoch)
        if self.model.trainable:
            w.add_scalar("val/loss", val_loss, epoch)
            w.add_scalar("lr", lr, epoch)
        w.flush()
        line = {"epoch": epoch + 1, "train": train_stats, "val_loss": val_loss, "lr": lr, "seconds": t_epoch,
                "train_seconds": t_train,       # the epoch's training part (the rest: validation, checkpoints)
                "val": {m: {k: rm[k] for k in ("seen", "unseen", "hm", "zsl", "beta")} for m, rm in results.items()}}
        self.run.append_metrics(line)

    # -- resume --------------------------------------------------------------------------
    def save_resume_state(self) -> None:
        """Queue the resume state of `start_epoch` finished epochs, after the epoch's checkpoints."""
        epoch = self.start_epoch
        blob = cpu_snapshot({
            "epoch": epoch, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.model.trainable else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "best_score": self.best_score, "best_loss": self.best_loss, "rng": rng_state(),
            "sampler": self.sampler.state_dict()})

        def write():
            atomic_torch_save(blob, self.run.resume_path)
            self.saved_epoch = epoch

        self.files.submit(write)

    def load_resume_state(self) -> None:
        path = self.run.resume_path
        state = self.run.read_resume_state()
        load_model_state(self.model, state["model"], path)
        try:
            if self.model.trainable:
                self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"] is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self.start_epoch, self.best_score, self.best_loss = int(state["epoch"]), state["best_score"], state["best_loss"]
            set_rng_state(state["rng"])
            self.sampler.load_state_dict(state["sampler"])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
            raise UserError(f"the resume state {path} does not fit this run ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}): train {self.run.path} again "
                            f"with --overwrite (without --resume)") from None
        self.saved_epoch = self.start_epoch
        self.run.keep_metrics_until(self.start_epoch)    # drop the lines of epochs after the saved state
        log.info("resumed %s after epoch %d", self.run.path, self.start_epoch)
