"""Seeds as a batch dimension, measured: k seeds of AVCA trained in one process with `torch.vmap`
against k processes at once (what `python -m src.reproduce --jobs k` does), on the synthetic
UCF-sized benchmark with the UCF run script's AVCA flags (the methods table of src/recipes.py).

    python benchmarks/bench_seeds.py --k 2                     # CPU, every thread: the README's figures
    python benchmarks/bench_seeds.py --k 4
    python benchmarks/bench_seeds.py --k 4 --n_steps 200 --device cuda      # a GPU (not measured yet)
    python benchmarks/bench_seeds.py --k 2 --n_steps 2 --warmup 1 --exact_steps 1 --preset tiny --bs 16 --threads 1

The k models are created as main.py creates one, each under its seed (seeds --seed .. --seed+k-1),
and each seed trains on its own batches (its own class-balanced sampler, seeded as the trainer's).
Every path runs --warmup untimed steps, then --n_steps timed ones in --windows windows, on the same
batches, and reports the best window's rate (a shared machine's neighbours only ever add time):

- A, k processes: k worker processes of this script at once, each one seed with the trainer's step
  (`src.steps.Step`: the loss, backward, fused Adam, AVCA's after-step BatchNorm pass; the fast CPU
  dropout masks), each with max(1, threads // k) threads, each window started in all k together
  once all are ready (torch imported, data loaded, warmed up) and ended when the last is done.
- A', one process, the seeds one after another with every thread: the same step. A'm: the same
  with PyTorch's dropout masks (`bernoulli_`, as B's), to tell what the masks cost B from what vmap does.
- B, vmap: one process, every thread. `torch.func.stack_module_state` stacks the k models'
  parameters and buffers [k, ...]; `torch.func.functional_call` of a wrapper module (its forward:
  `model.training_step(batch)[0]`, or `after_optimizer_step(batch)`) under
  `torch.func.grad_and_value`, inside `torch.vmap(..., randomness="different")`, on batches stacked
  [k, B, ...]; each seed's BatchNorm running statistics are its slice of the stacked buffers
  (updated in place; checked: `bn_stats_per_seed`); the model's own Adam (its weight decay, its
  optimised parameters: not AVCA's pos_emb1D), fused, over the stacked tensors: element-wise, so
  per seed it is that seed's Adam; the after-step pass vmapped too. PyTorch's dropout under vmap
  (the fast masks draw from the global generator, which vmap cannot split per seed).
- B', vmap with a per-seed learning rate: B with a hand-written Adam whose lr is a [k] tensor (what
  k ReduceLROnPlateau schedules need: `per_seed_schedules` says how they would drive it).

Exactness (the `exact_*` lines: the optimised parameters' max |diff|, that difference's norm over
the distance training moved them, the running statistics' max |diff|): B's seed i against seed i
alone (A') with dropout as trained, A against A' (the same masks, other thread counts: the
rounding a thread count makes), B' against B; with every dropout off, the first step's loss and
gradients, and --exact_steps steps of B and of each seed alone, with the thread-count reference.
"""
import argparse
import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.func import functional_call, grad_and_value, stack_module_state  # noqa: E402

from src.data import dataset_from_args  # noqa: E402
from src.models import create_model, get_entry  # noqa: E402
from src.models.base import adam  # noqa: E402
from src.models.dropout import set_fast_masks  # noqa: E402
from src.runtime import available_cpus, configure_threads, resolve_device, seed_everything  # noqa: E402
from src.sampler import PairSampler  # noqa: E402
from src.steps import Step, epoch_lengths  # noqa: E402
from src.synthetic import generate  # noqa: E402
from bench_step import main_flags, parse  # noqa: E402
from timing import step_seconds  # noqa: E402

MODEL, FAMILY = "avca", "main"
ADAM_KEYS = ("lr", "betas", "eps", "weight_decay")


# ---- the data and the models, as main.py makes them ----

def model_args(work: Path, a, device):
    """The UCF run script's AVCA stage-1 Namespace on the benchmark in `work`."""
    flags = main_flags(MODEL, FAMILY, work, SimpleNamespace(n_batches=a.n_batches, bs=a.bs, compile=False, amp=None,
                                                            cuda_graph=False), device)
    return parse(flags, "--exp_name", "seeds")


def load_train(args, device):
    """The train split on the device (the cache built by the first call); sets args.text_dim as main.py does."""
    dataset = dataset_from_args(args)
    args.text_dim = dataset.text_dim
    return dataset.split("train").to(device)


def new_model(args, seed: int, device) -> nn.Module:
    """The model as main.py creates it under --seed (seed_everything, then the model)."""
    seed_everything(seed)
    model = create_model(MODEL, args).to(device)
    model.train()
    return model


def seed_batches(args, model, train, seed: int, n: int, device) -> list:
    """`n` training batches of the trainer's sampler seeded by `seed` (its own generator)."""
    entry = get_entry(MODEL)
    sampler = PairSampler(train.labels, len(train.class_ids), seed, device)
    pos, neg = (t.view(n, args.bs) for t in sampler.draw(n * args.bs))
    lengths = epoch_lengths(entry.batches, model, train, pos)
    return [entry.batches.train(model, train, pos[i], neg[i], z_score=args.z_score_inputs, generator=sampler.generator,
                                lengths=lengths[i]) for i in range(n)]


def running_stats(model: nn.Module) -> List[str]:
    return [n for n, _ in model.named_buffers() if n.endswith(("running_mean", "running_var"))]


def optimised(model: nn.Module) -> List[str]:
    ids = {id(p) for p in model.optimizer_parameters()}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def no_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


@dataclasses.dataclass(frozen=True)
class Schedule:
    """`warmup` untimed steps, then `windows` timed windows of `per_window` steps each."""
    warmup: int
    windows: int
    per_window: int

    @property
    def total(self) -> int:
        return self.warmup + self.windows * self.per_window


def timed(run, device, schedule: Schedule, before=None) -> float:
    """Seconds per step of run(i) on `schedule` (timing.step_seconds: the warm-up, then the best of
    the timed windows; before() ahead of each window, when given)."""
    return step_seconds(run, lambda i: i, schedule.windows * schedule.per_window, device, schedule.warmup,
                        schedule.windows, before)


# ---- A, A': the trainer's step, one seed ----

def single_seed(args, train, seed: int, a, device, schedule: Schedule, dropout: bool = True, before=None):
    """One seed trained with the trainer's step on `schedule` (before() ahead of each window);
    (seconds per step, the model)."""
    model = new_model(args, seed, device)
    if not dropout:
        no_dropout(model)
    batches = seed_batches(args, model, train, seed, a.n_batches, device)
    optimizer, _ = model.configure_optimizers(lr=args.lr, lr_scheduler=False)
    step = Step(model, model.training_step, optimizer)
    run = lambda i: step(batches[i % len(batches)])  # noqa: E731
    return timed(run, device, schedule, before), model


def worker(a) -> None:
    """Path A's process: one seed; says "ready" ahead of each timed window and runs it when told to
    go; after the last, its seconds per step, then its weights (for the exactness lines)."""
    device = configure_device(a)
    args = model_args(a.work_dir, a, device)
    train = load_train(args, device)

    def ready():
        print("ready", flush=True)
        sys.stdin.readline()
    seconds, model = single_seed(args, train, a.worker, a, device, schedule_of(a), before=ready)
    print(json.dumps({"seed": a.worker, "step_s": seconds, "threads": torch.get_num_threads()}), flush=True)
    torch.save(model.state_dict(), worker_state(a.work_dir, a.worker))


def worker_state(work: Path, seed: int) -> Path:
    return work / f"path_A_seed_{seed}.pt"


def k_processes(a, threads: int) -> Tuple[float, float]:
    """Path A: k workers at once, `threads` each, every window started together; (the best window's
    wall per step, the seconds from their start until all are ready for the first window: start-up,
    data, model, warm-up)."""
    argv = [sys.executable, str(Path(__file__).resolve()), *worker_flags(a), "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    procs = [subprocess.Popen([*argv, "--worker", str(a.seed + i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT) for i in range(a.k)]
    try:
        for p in procs:
            read_until(p, lambda line: line == "ready")
        ready, best, schedule = time.perf_counter() - start, float("inf"), schedule_of(a)
        for _ in range(schedule.windows):       # a window ends when every worker is ready for the next, or done
            go = time.perf_counter()
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                read_until(p, lambda line: line == "ready" or line.startswith("{"))
            best = min(best, (time.perf_counter() - go) / schedule.per_window)
        for p in procs:
            if p.wait():
                raise worker_failed(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return best, ready


def read_until(proc, wanted) -> str:
    """The first line of a worker's output that is `wanted`; a worker that ends before it: SystemExit."""
    for line in proc.stdout:
        if wanted(line.strip()):
            return line.strip()
    raise worker_failed(proc)


def worker_failed(proc) -> SystemExit:
    return SystemExit(f"bench_seeds.py: a path-A worker failed (exit status {proc.wait()}, its error above)")


def worker_flags(a) -> List[str]:
    return ["--k", str(a.k), "--n_steps", str(a.n_steps), "--warmup", str(a.warmup), "--windows", str(a.windows),
            "--n_batches", str(a.n_batches), "--device", str(a.device_obj), "--work_dir", str(a.work_dir),
            *(["--bs", str(a.bs)] if a.bs else [])]


def schedule_of(a) -> Schedule:
    windows = max(1, min(a.windows, a.n_steps))
    return Schedule(a.warmup, windows, a.n_steps // windows)


# ---- B: the k seeds under vmap ----

class SeedModule(nn.Module):
    """What functional_call runs of one seed's model: its loss (`training_step(batch)[0]`) or, with
    `after`, its after-step pass. The batch comes as a dict of tensors (vmap maps over them)."""

    def __init__(self, model: nn.Module, batch_type):
        super().__init__()
        self.model, self.batch_type = model, batch_type

    def forward(self, batch: Dict[str, Tensor], after: bool = False) -> Tensor:
        b = self.batch_type(**batch)
        if after:
            self.model.after_optimizer_step(b)
            return b.audio.new_zeros(())
        return self.model.training_step(b)[0]


def as_dict(batch) -> Dict[str, Tensor]:
    return {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}


def stacked_batches(per_seed: List[list]) -> List[Dict[str, Tensor]]:
    """Batch i of every seed stacked [k, ...], for each i."""
    return [{name: torch.stack([as_dict(b[i])[name] for b in per_seed]) for name in as_dict(per_seed[0][i])}
            for i in range(len(per_seed[0]))]


class PerSeedAdam:
    """Adam (L2 weight decay into the gradient, as torch.optim.Adam) over stacked [k, ...] tensors
    with a learning rate per seed: `lr` a [k] tensor (what k ReduceLROnPlateau schedules would write)."""

    def __init__(self, params: List[Tensor], lr: Tensor, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params, self.lr, self.betas, self.eps, self.wd = params, lr, betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        (b1, b2), grads = self.betas, [p.grad for p in self.params]
        if self.wd:
            grads = torch._foreach_add(grads, self.params, alpha=self.wd)
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - b2)
        c1, c2 = 1 - b1 ** self.t, (1 - b2 ** self.t) ** 0.5
        denom = torch._foreach_add(torch._foreach_div(torch._foreach_sqrt(self.v), c2), self.eps)
        updates = torch._foreach_div(self.m, denom)
        for p, u in zip(self.params, updates):
            p.sub_(u * (self.lr / c1).view(-1, *[1] * (p.dim() - 1)))


class VmapSeeds:
    """The k models stacked and trained as one (path B; module docstring)."""

    def __init__(self, models: List[nn.Module], batch_type, lr, per_seed_lr: bool = False, dropout: bool = True):
        wrappers = [SeedModule(m, batch_type) for m in models]
        params, self.buffers = stack_module_state(wrappers)
        self.params = {f"model.{n}": params[f"model.{n}"].detach() for n in optimised(models[0])}
        self.frozen = {n: p.detach() for n, p in params.items() if n not in self.params}
        self.base = wrappers[0]          # its own tensors are never used: functional_call swaps them all
        if not dropout:
            no_dropout(self.base)
        reference, _ = models[0].configure_optimizers(lr=lr, lr_scheduler=False)
        hyper = {key: reference.defaults[key] for key in ADAM_KEYS}
        if per_seed_lr:
            k = len(models)
            hyper["lr"] = torch.full((k,), float(hyper["lr"]), device=next(iter(self.params.values())).device)
            self.optimizer = PerSeedAdam(list(self.params.values()), **hyper)
        else:
            self.optimizer = adam(list(self.params.values()), **hyper)
        self.grads = torch.vmap(grad_and_value(self.loss), randomness="different")
        self.after = torch.vmap(self.after_pass, randomness="different")

    def loss(self, params, frozen, buffers, batch) -> Tensor:
        return functional_call(self.base, ({**params, **frozen}, buffers), (batch,))

    def after_pass(self, params, frozen, buffers, batch) -> Tensor:
        return functional_call(self.base, ({**params, **frozen}, buffers), (batch,), {"after": True})

    @torch.no_grad()            # torch.func.grad differentiates all the same; nothing outside it records
    def step(self, batch: Dict[str, Tensor]) -> Tensor:
        grads, loss = self.grads(self.params, self.frozen, self.buffers, batch)
        for name, p in self.params.items():
            p.grad = grads[name]
        self.optimizer.step()
        self.after(self.params, self.frozen, self.buffers, batch)
        return loss

    def seed_state(self, i: int) -> Dict[str, Tensor]:
        """Seed i's parameters and buffers, named as the model's state_dict."""
        prefix = len("model.")
        return {n[prefix:]: t[i] for n, t in {**self.params, **self.frozen, **self.buffers}.items()}


def vmap_seeds(args, train, a, device, schedule: Schedule, per_seed_lr: bool = False,
               dropout: bool = True) -> Tuple[float, VmapSeeds]:
    """Path B on the seeds' own batches; (seconds per step of all k, the stacked seeds)."""
    models = [new_model(args, a.seed + i, device) for i in range(a.k)]
    per_seed = [seed_batches(args, m, train, a.seed + i, a.n_batches, device) for i, m in enumerate(models)]
    batches = stacked_batches(per_seed)
    set_fast_masks(False)
    try:
        seeds = VmapSeeds(models, type(per_seed[0][0]), args.lr, per_seed_lr, dropout)
        run = lambda i: seeds.step(batches[i % len(batches)])  # noqa: E731
        return timed(run, device, schedule), seeds
    finally:
        set_fast_masks(True)


# ---- checks and the report ----

def bn_check(seeds: VmapSeeds, single: nn.Module, k: int) -> str:
    """Whether each running statistic is stacked [k, ...] and, k > 1, differs between the seeds
    (they start equal, so each one moved on its own)."""
    names = running_stats(single)
    state = {n: seeds.buffers["model." + n] for n in names}
    shapes = all(tuple(state[n].shape) == (k, *single.get_buffer(n).shape) for n in names)
    spread = min(float((state[n][0] - state[n][1:]).abs().max()) for n in names) if k > 1 else 0.0
    ok = shapes and (k == 1 or spread > 0)
    return (f"{'ok' if ok else 'FAILED'}: {len(names)} running statistics, shapes [k, ...] "
            f"{'match' if shapes else 'do NOT match'}, seed 0 against the others: min over them of max|diff| "
            f"{spread:.3g}")


def trajectory_diff(mine: List[Dict[str, Tensor]], theirs: List[Dict[str, Tensor]], inits: List[Dict[str, Tensor]],
                    params: List[str], stats: List[str]) -> str:
    """Over the seeds: the optimised parameters' max |diff|, their difference's L2 norm over the
    distance training moved them (||mine - theirs|| / ||theirs - init||), the running statistics' max |diff|."""
    p_max = rel = s_max = 0.0
    for m, t, i in zip(mine, theirs, inits):
        diff = torch.cat([(m[n].float() - t[n].float()).flatten() for n in params])
        moved = torch.cat([(t[n].float() - i[n].float()).flatten() for n in params])
        p_max, rel = max(p_max, float(diff.abs().max())), max(rel, float(diff.norm() / moved.norm()))
        s_max = max(s_max, max(float((m[n].float() - t[n].float()).abs().max()) for n in stats))
    return f"params max|diff| {p_max:.3g}, ||diff|| / ||update|| {rel:.3g}; running stats max|diff| {s_max:.3g}"


def first_step(args, train, a, device) -> str:
    """Dropout off, the same parameters: the first step's loss and gradients, vmap against each seed alone."""
    models = [new_model(args, a.seed + i, device) for i in range(a.k)]
    batches = [seed_batches(args, m, train, a.seed + i, 1, device)[0] for i, m in enumerate(models)]
    seeds = VmapSeeds([copy.deepcopy(m) for m in models], type(batches[0]), args.lr, dropout=False)
    with torch.no_grad():
        stacked = stacked_batches([[b] for b in batches])[0]
        grads, losses = seeds.grads(seeds.params, seeds.frozen, seeds.buffers, stacked)
    loss_diff = grad_diff = grad_max = 0.0
    for i, (model, batch) in enumerate(zip(models, batches)):
        no_dropout(model)
        loss = model.training_step(batch)[0]
        loss.backward()
        loss_diff = max(loss_diff, abs(loss.item() - losses[i].item()))
        for n in optimised(model):
            g = model.get_parameter(n).grad
            grad_diff = max(grad_diff, float((g - grads["model." + n][i]).abs().max()))
            grad_max = max(grad_max, float(g.abs().max()))
    return f"loss |diff| {loss_diff:.3g}, gradients max|diff| {grad_diff:.3g} (max |gradient| {grad_max:.3g})"


def initial_states(args, a, device) -> List[Dict[str, Tensor]]:
    return [new_model(args, a.seed + i, device).state_dict() for i in range(a.k)]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="\n\n".join(__doc__.split("\n\n")[:2]),
                                epilog="The paths, the checks and what they print: this file's docstring.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=4,
                   help="seeds trained together, --seed .. --seed+k-1 (default %(default)s)")
    p.add_argument("--n_steps", type=int, default=50, help="timed optimiser steps of each seed (default %(default)s)")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed steps before them, the same in every path (default %(default)s)")
    p.add_argument("--windows", type=int, default=3, help="the timed steps in this many windows, the best one's "
                   "rate reported, as the other benchmarks (default %(default)s)")
    p.add_argument("--exact_steps", type=int, default=10,
                   help="steps of the dropout-off exactness checks; 0: none (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="the first seed (default %(default)s)")
    p.add_argument("--n_batches", type=int, default=8,
                   help="batches drawn per seed, cycled through by the steps (default %(default)s)")
    p.add_argument("--bs", type=int, default=None, help="batch size (default: the run script's, 256)")
    p.add_argument("--preset", default="UCF", choices=["UCF", "tiny"],
                   help="the synthetic benchmark's sizes (default %(default)s)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="samples per class of the synthetic benchmark (default %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="threads of the one-process paths A' and B (default: "
                   "the CPUs); path A's processes get max(1, threads // k) each")
    p.add_argument("--no_per_seed_lr", action="store_true", help="skip path B' (vmap with a per-seed learning rate)")
    p.add_argument("--work_dir", type=Path, default=None, help="keep the benchmark here (default: a temporary "
                   "folder, removed at the end)")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)     # path A's processes
    return p


def configure_device(a) -> torch.device:
    configure_threads(a.threads)
    a.device_obj = resolve_device(a.device)
    return a.device_obj


PER_SEED_SCHEDULES = ("ReduceLROnPlateau per seed: k schedulers, each on a one-group stand-in optimiser, stepped on "
                      "its seed's val score; their lrs copied into B's [k] lr tensor (path B'); a seed's best epoch: "
                      "its slice of the stacked state, saved when its own score improves")


def main(argv=None) -> None:
    a = get_parser().parse_args(argv)
    if a.worker is not None:
        return worker(a)
    if a.k < 1 or a.n_steps < 1:
        raise SystemExit("bench_seeds.py: --k and --n_steps must be at least 1")
    a.threads = a.threads or available_cpus()
    device = configure_device(a)
    keep = a.work_dir is not None
    work = a.work_dir = a.work_dir or Path(tempfile.mkdtemp(prefix="bench_seeds_"))

    def report(key, value):
        print(f"{key:>30}: {value}", flush=True)

    try:
        generate(work / "data", "UCF", preset=a.preset, families=(FAMILY,), scale=a.scale, overwrite=True)
        args = model_args(work, a, device)
        train = load_train(args, device)        # builds the cache the workers load
        schedule, per_process = schedule_of(a), max(1, a.threads // a.k)
        report("device", torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"cpu, {available_cpus()} CPUs")
        report("torch", torch.__version__)
        report("setting", f"AVCA (UCF run script, {FAMILY} features, {a.preset} synthetic), k {a.k} seeds from "
                          f"{a.seed}, bs {args.bs}, {schedule.warmup} + {schedule.windows} x {schedule.per_window} "
                          f"steps each ({a.n_batches} batches cycled)")

        a_step, a_ready = k_processes(a, per_process)
        torch.set_num_threads(a.threads)
        singles = [single_seed(args, train, a.seed + i, a, device, schedule) for i in range(a.k)]
        set_fast_masks(False)
        try:
            masks_step = sum(single_seed(args, train, a.seed + i, a, device, schedule)[0] for i in range(a.k))
        finally:
            set_fast_masks(True)
        b_step, vm = vmap_seeds(args, train, a, device, schedule)
        rows = [(f"A  {a.k} processes x {per_process} threads", a_step),
                (f"A' 1 process x {a.threads} threads, in turn", sum(t for t, _ in singles)),
                ("A'm the same, PyTorch's dropout masks (B's)", masks_step),
                (f"B  vmap, 1 process x {a.threads} threads", b_step)]
        if not a.no_per_seed_lr:
            b2_step, vm2 = vmap_seeds(args, train, a, device, schedule, per_seed_lr=True)
            rows.append(("B' vmap, per-seed lr", b2_step))
        print(f"\n{'path':<44} {'wall (s)':>9} {'ms per seed-step':>17} {'speed-up over A':>16}")
        for name, step_s in rows:
            print(f"{name:<44} {step_s * a.n_steps:9.2f} {1000 * step_s / a.k:17.2f} {a_step / step_s:15.2f}x")
        print(f"(the wall of {a.n_steps} steps of every seed at the best of {schedule.windows} windows' rate; path A's "
              f"processes took {a_ready:.2f} s to start: import, data, model, warm-up)\n", flush=True)
        report("vmap_over_processes", f"{b_step / a_step:.3f} (B's time over A's: below 1, vmap is faster)")
        report("bn_stats_per_seed", bn_check(vm, singles[0][1], a.k))

        inits, single_states = initial_states(args, a, device), [m.state_dict() for _, m in singles]
        params, stats = optimised(singles[0][1]), running_stats(singles[0][1])
        vm_states = [vm.seed_state(i) for i in range(a.k)]
        a_states = [torch.load(worker_state(work, a.seed + i), map_location=device) for i in range(a.k)]
        report("exact_B_vs_single", f"B against A' (each seed alone), {schedule.total} steps, dropout as trained: "
                                    f"{trajectory_diff(vm_states, single_states, inits, params, stats)}")
        report("exact_A_vs_single", f"A against A', the same masks, {per_process} threads against {a.threads}: "
                                    f"{trajectory_diff(a_states, single_states, inits, params, stats)}")
        if not a.no_per_seed_lr:
            vm2_states = [vm2.seed_state(i) for i in range(a.k)]
            report("exact_per_seed_lr_vs_B", f"B' against B, the same masks: "
                                             f"{trajectory_diff(vm2_states, vm_states, inits, params, stats)}")
        if a.exact_steps:
            report("first_step_no_dropout", f"B against each seed alone: {first_step(args, train, a, device)}")
            off = Schedule(0, 1, a.exact_steps)
            alone = [single_seed(args, train, a.seed + i, a, device, off, False)[1].state_dict() for i in range(a.k)]
            b_off = vmap_seeds(args, train, a, device, off, dropout=False)[1]
            report("exact_B_vs_single_no_dropout", f"{a.exact_steps} steps: "
                   f"{trajectory_diff([b_off.seed_state(i) for i in range(a.k)], alone, inits, params, stats)}")
            torch.set_num_threads(per_process)
            fewer = [single_seed(args, train, a.seed + i, a, device, off, False)[1].state_dict() for i in range(a.k)]
            torch.set_num_threads(a.threads)
            report("exact_threads_no_dropout", f"{a.exact_steps} steps, each seed alone, {per_process} threads "
                   f"against {a.threads}: {trajectory_diff(fewer, alone, inits, params, stats)}")
        report("per_seed_schedules", PER_SEED_SCHEDULES)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
