"""The fit loop (PROTOCOL.md section 3): epochs of class-balanced pairs, per-epoch validation,
best-score / best-loss / per-epoch checkpoints, the LR scheduler, logs, and --resume.

The loop knows a model only through the interface of `src/models/base.py`. A model with its
own procedure (a `fit(ctx)` method, e.g. f-VAEGAN-D2) is handed the same context instead.
"""
import argparse
import json
import logging
import math
import random
import sys
import time
from typing import Dict, Optional

import numpy as np
import torch
from tqdm import tqdm

from .data import SplitData, dataset_from_args
from .errors import UserError
from .evaluate import evaluate_model, zscore
from .models import create_model, get_entry
from .models.base import PairBatch
from .io_utils import BackgroundWriter, atomic_torch_save, cpu_snapshot
from .runs import RunFolder
from .sampler import PairSampler

log = logging.getLogger("avgzsl")


def resolve_device(name: Optional[str]) -> torch.device:
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        log.warning("--device %s asked but CUDA is not available: using the CPU", name)
        return torch.device("cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)          # CPU and every CUDA device


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def pair_batch(split: SplitData, pos: torch.Tensor, neg: torch.Tensor, z_score: bool = False) -> PairBatch:
    """Gather a PairBatch of `split` (on its device) for index tensors pos [B], neg [B]."""
    batch = PairBatch(audio=split.audio[pos], video=split.video[pos], text=split.text[split.labels[pos]],
                      label=split.labels[pos], audio_neg=split.audio[neg], video_neg=split.video[neg],
                      text_neg=split.text[split.labels[neg]], label_neg=split.labels[neg],
                      class_text=split.text, class_ids=split.class_ids)
    if z_score:        # the batch's tensors, each by its own statistics; not the class matrix of the losses
        batch = batch.map(lambda name, t: t if name in ("label", "label_neg", "class_ids", "class_text") else zscore(t))
    return batch


def setup_logging(run: Optional[RunFolder] = None, verbose: bool = False) -> None:
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(console)
    if run is not None:
        fh = logging.FileHandler(run.path / "train.log")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)
    for name in ("src.features_cache", "src.data"):
        logging.getLogger(name).handlers = log.handlers
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).propagate = False


class Context:
    """What a fit loop needs: args, device, data, model, optimiser, scheduler, run folder."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = resolve_device(args.device)
        args.device = self.device.type
        self.run = RunFolder(args.dump_path / "runs" / args.exp_name)
        setup_logging(None, args.verbose)
        self.run.check_free(args.resume, args.overwrite)
        # data and model first: bad input fails before anything is written
        dataset = dataset_from_args(args)
        self.train = dataset.split("train_val" if args.retrain_all else "train").to(self.device)
        self.val = dataset.split("val").to(self.device)
        seed_everything(args.seed)
        self.entry = get_entry(args.model_name)
        self.model = create_model(args.model_name, args).to(self.device)
        self.optimizer, self.scheduler = self.model.configure_optimizers(args)
        self.resuming = self.run.prepare(args.resume, args.overwrite)
        setup_logging(self.run, args.verbose)
        log.info("run %s on %s: %s, %s", self.run.path, self.device, args.model_name,
                 "stage 2 (train+val)" if args.retrain_all else "stage 1 (train)")
        log.info("train: %d samples of %d classes; val: %d samples, %d seen + %d unseen classes",
                 len(self.train), len(self.train.class_ids), len(self.val),
                 int(self.val.seen_mask.sum()), int((~self.val.seen_mask).sum()))
        # [original defect] the original validated with plain L2 whatever --distance_fn said.
        self.squared = args.distance_fn == "SquaredL2Loss" and not args.reproduce_original
        self.run.save_args(args)


class Trainer:
    def __init__(self, ctx: Context):
        self.ctx, a = ctx, ctx.args
        self.sampler = PairSampler(ctx.train.labels, len(ctx.train.class_ids), a.seed, ctx.device)
        # the validation loss: every val sample once, with a negative fixed for the run
        val_sampler = PairSampler(ctx.val.labels, len(ctx.val.class_ids), a.seed + 1, ctx.device)
        self.val_neg = val_sampler.negatives(ctx.val.labels)
        self.start_epoch, self.best_score, self.best_loss = 0, -math.inf, math.inf
        self.writer = None
        self.files = BackgroundWriter()     # checkpoints are written while the next epoch trains

    # -- one epoch -----------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> Dict[str, float]:
        ctx, a, model = self.ctx, self.ctx.args, self.ctx.model
        model.train()
        pos, neg = (t.view(a.n_batches, a.bs) for t in self.sampler.draw(a.n_batches * a.bs))
        sums: Dict[str, torch.Tensor] = {}
        bar = tqdm(range(a.n_batches), desc=f"epoch {epoch + 1}/{a.epochs}", leave=False,
                   mininterval=1.0, disable=None)
        for step in bar:
            batch = pair_batch(ctx.train, pos[step], neg[step], a.z_score_inputs)
            loss, parts = model.training_step(batch)
            ctx.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            ctx.optimizer.step()
            model.after_optimizer_step(batch)
            for k, v in {"loss": loss.detach(), **parts}.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            if (step + 1) % 50 == 0 or step + 1 == a.n_batches:      # one host sync per 50 steps
                mean_loss = float(sums["loss"]) / (step + 1)
                if not math.isfinite(mean_loss):
                    raise UserError(f"non-finite training loss at epoch {epoch + 1}, step {step + 1}: try a "
                                    f"lower --lr; {ctx.run.path} keeps the last finished epoch")
                bar.set_postfix(loss=f"{mean_loss:.4f}")
        return {k: float(v) / a.n_batches for k, v in sums.items()}

    @torch.no_grad()
    def validation_loss(self) -> float:
        ctx, model = self.ctx, self.ctx.model
        model.eval()
        n, total = len(ctx.val), 0.0
        idx = torch.arange(n, device=ctx.device)
        for i in range(0, n, 4096):
            batch = pair_batch(ctx.val, idx[i:i + 4096], self.val_neg[i:i + 4096], ctx.args.z_score_inputs)
            loss, _ = model.training_step(batch)
            total += float(loss) * len(batch.label)
        model.train()
        return total / n

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> dict:
        ctx, a, run, cls = self.ctx, self.ctx.args, self.ctx.run, self.ctx.entry.class_name
        if ctx.resuming:
            self.load_resume_state()
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(run.path), purge_step=self.start_epoch)
        try:
            self.epochs()
        finally:
            self.files.flush()           # every finished epoch's files are on disk
            self.writer.close()
        log.info("done: best val %s HM %.4f; checkpoints in %s", ctx.model.reported_mode, self.best_score, run.path)
        return {"best_score": self.best_score, "best_loss": self.best_loss}

    def epochs(self) -> None:
        ctx, a, run, cls = self.ctx, self.ctx.args, self.ctx.run, self.ctx.entry.class_name
        for epoch in range(self.start_epoch, a.epochs):
            t0 = time.perf_counter()
            train_stats = self.train_epoch(epoch)
            t_train = time.perf_counter() - t0
            results = evaluate_model(ctx.model, ctx.val, ctx.squared, z_score=a.z_score_inputs)
            score = results[ctx.model.reported_mode]["hm"]
            val_loss = self.validation_loss()
            # strictly better only; a NaN never becomes the best [original defect]
            if math.isfinite(val_loss) and val_loss < self.best_loss:
                self.best_loss = val_loss
                run.save_checkpoint(run.best(cls, "loss"), ctx.model, ctx.optimizer, epoch + 1, "loss", self.files,
                                    val_loss=val_loss)
            if math.isfinite(score) and score > self.best_score:
                self.best_score = score
                run.save_checkpoint(run.best(cls, "score"), ctx.model, ctx.optimizer, epoch + 1, "score", self.files,
                                    score=score)
            if a.save_checkpoints:
                run.save_checkpoint(run.epoch_ckpt(cls, epoch), ctx.model, ctx.optimizer, epoch + 1, "score", self.files,
                                    score=score)
            lr = ctx.optimizer.param_groups[0]["lr"]
            if ctx.scheduler is not None:
                ctx.scheduler.step(score)
            self.log_epoch(epoch, train_stats, val_loss, results, lr, t_train, time.perf_counter() - t0)
            self.start_epoch = epoch + 1
            self.save_resume_state()

    def log_epoch(self, epoch, train_stats, val_loss, results, lr, t_train, t_epoch) -> None:
        mode = self.ctx.model.reported_mode
        r = results[mode]
        log.info("epoch %d/%d  loss %.4f  val loss %.4f  val %s: seen %.4f unseen %.4f HM %.4f ZSL %.4f "
                 "beta %.2f  lr %.2e  (%.1fs, %.0f samples/s)", epoch + 1, self.ctx.args.epochs,
                 train_stats["loss"], val_loss, mode, r["seen"], r["unseen"], r["hm"], r["zsl"], r["beta"],
                 lr, t_epoch, self.ctx.args.n_batches * self.ctx.args.bs / t_train)
        for m, rm in results.items():
            log.debug("  %s: seen %.4f unseen %.4f HM %.4f ZSL %.4f beta %.2f", m, rm["seen"], rm["unseen"],
                      rm["hm"], rm["zsl"], rm["beta"])
        w = self.writer
        for k, v in train_stats.items():
            w.add_scalar(f"train/{k}", v, epoch)
        w.add_scalar("val/loss", val_loss, epoch)
        for m, rm in results.items():
            for k in ("seen", "unseen", "hm", "zsl", "beta"):
                w.add_scalar(f"val_{m}/{k}", rm[k], epoch)
        w.add_scalar("lr", lr, epoch)
        w.flush()
        line = {"epoch": epoch + 1, "train": train_stats, "val_loss": val_loss, "lr": lr, "seconds": t_epoch,
                "val": {m: {k: rm[k] for k in ("seen", "unseen", "hm", "zsl", "beta")} for m, rm in results.items()}}
        with open(self.ctx.run.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    # -- resume --------------------------------------------------------------------------
    def save_resume_state(self) -> None:
        ctx = self.ctx
        self.files.submit(atomic_torch_save, cpu_snapshot({
            "epoch": self.start_epoch, "model": ctx.model.state_dict(), "optimizer": ctx.optimizer.state_dict(),
            "scheduler": ctx.scheduler.state_dict() if ctx.scheduler is not None else None,
            "best_score": self.best_score, "best_loss": self.best_loss, "rng": rng_state(),
            "sampler": self.sampler.state_dict()}), ctx.run.resume_path)

    def load_resume_state(self) -> None:
        ctx = self.ctx
        state = torch.load(ctx.run.resume_path, map_location="cpu", weights_only=False)
        ctx.model.load_state_dict(state["model"])
        ctx.optimizer.load_state_dict(state["optimizer"])
        if ctx.scheduler is not None and state["scheduler"] is not None:
            ctx.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch, self.best_score, self.best_loss = state["epoch"], state["best_score"], state["best_loss"]
        set_rng_state(state["rng"])
        self.sampler.load_state_dict(state["sampler"])
        # the metrics of epochs after the saved state (an epoch interrupted mid-way) are dropped
        metrics = ctx.run.path / "metrics.jsonl"
        if metrics.exists():
            kept = [l for l in metrics.read_text().splitlines() if json.loads(l)["epoch"] <= self.start_epoch]
            metrics.write_text("".join(l + "\n" for l in kept))
        log.info("resumed %s after epoch %d", ctx.run.path, self.start_epoch)


def fit(args: argparse.Namespace) -> dict:
    ctx = Context(args)
    if hasattr(ctx.model, "fit"):        # a model with its own procedure (f-VAEGAN-D2)
        return ctx.model.fit(ctx)
    return Trainer(ctx).fit()
