"""What the benchmark scripts share: the time of one optimiser step (the trainer's `src.steps.Step`,
whatever its mode: eager, compiled, autocast, one replayed CUDA graph) on batches already drawn,
its FLOP bound, and whether it syncs with the host (CUDA)."""
import time
from typing import Callable, Optional

import torch

from src.models.base import set_fast_paths
from src.runtime import configure_threads, resolve_device


def add_machine_flags(p) -> None:
    """The flags every benchmark shares: --device, --threads, --baseline."""
    p.add_argument("--device", default=None, help="default: CUDA when available, else the CPU")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: main.py's)")
    p.add_argument("--baseline", action="store_true",
                   help="the step as before the fast paths: PyTorch's dropout masks, Adam's loop (for a before/after)")


def apply_machine_flags(a) -> torch.device:
    """Threads (main.py's default when --threads is not given) and --baseline; returns the device."""
    configure_threads(a.threads)
    if a.baseline:
        set_fast_paths(False)
    return resolve_device(a.device)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def step_seconds(step: Callable, make_batch: Callable[[int], object], n_steps: int, device, warmup: int = 5,
                 windows: int = 3, before: Optional[Callable[[], None]] = None) -> float:
    """Seconds per step of `step` (the trainer's `src.steps.Step`: the loss, backward, the optimiser
    step, after_optimizer_step, in whatever mode it was made): the `n_steps` steps on make_batch(i),
    after `warmup` untimed ones, are timed in `windows` windows and the best window's mean is
    returned (like the matmul peak's best of several: a shared machine's neighbours only ever add
    time); `before()` runs ahead of each window, untimed, when given."""
    for i in range(warmup):
        step(make_batch(i))
    per_window = max(1, n_steps // windows)
    best = float("inf")
    for w in range(windows):
        if before is not None:
            before()
        sync(device)
        t = time.perf_counter()
        for i in range(per_window):
            step(make_batch(warmup + w * per_window + i))
        sync(device)
        best = min(best, (time.perf_counter() - t) / per_window)
    return best


def host_sync_in_step(step: Callable, batch, device) -> Optional[str]:
    """None when one step (on `batch`, already on the device) asks nothing of the host; else the
    first synchronising call, as torch.cuda's sync debug mode names it. CUDA only."""
    if torch.device(device).type != "cuda":
        return "not measured (CPU)"
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step(batch)
        return None
    except RuntimeError as err:
        return str(err).splitlines()[0][:200]
    finally:
        torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()


def step_flops(step: Callable, batch) -> float:
    """FLOPs of one step (forward, backward, after_optimizer_step's pass), by torch.utils.flop_counter
    (matrix products and convolutions; the optimiser's element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        step(batch)
    return float(counter.get_total_flops())


def matmul_peak(device, n: int = 1536, repeats: int = 15) -> float:
    """This machine's float32 matrix-product rate in FLOP/s (n x n x n products, the best of
    `repeats`: the peak a step's matrix products could reach, not what its 300-wide ones reach)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 2):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def where_time_goes(step: Callable, make_batch: Callable[[int], object], n_steps: int = 10, top: int = 8) -> str:
    """The ops with the most self CPU time over `n_steps` steps (torch.profiler), as 'name share%' pairs."""
    from torch.profiler import ProfilerActivity, profile
    for i in range(3):
        step(make_batch(i))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(n_steps):
            step(make_batch(i))
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return ", ".join(f"{e.key} {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:top])


def bound_report(report, step: Callable, make_batch, step_s: float, device, peak: Optional[float] = None) -> None:
    """Print FLOPs per step, the matmul peak, the FLOP bound and the step's ratio to it (and, on the
    CPU, where the step's time goes)."""
    flops = step_flops(step, make_batch(0))
    peak = peak or matmul_peak(device)
    report("step_gflop", round(flops / 1e9, 3))
    report("matmul_peak_gflop_s", round(peak / 1e9, 1))
    report("flop_bound_ms", round(1000 * flops / peak, 2))
    report("step_over_bound", round(step_s / (flops / peak), 2))
    if torch.device(device).type == "cpu":
        report("self_cpu_time", where_time_goes(step, make_batch))
