"""What the benchmark scripts share: the time of one optimiser step on batches already drawn,
whether that step syncs with the host (CUDA), and the step replayed as one CUDA graph."""
import time
from dataclasses import fields
from typing import Callable, Optional

import torch


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def train_step(model, optimizer, batch):
    loss, _ = model.training_step(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    model.after_optimizer_step(batch)
    return loss


def step_seconds(model, optimizer, make_batch: Callable[[int], object], n_steps: int, device, warmup: int = 5) -> float:
    """Seconds per step (training_step, backward, optimiser step, after_optimizer_step) over
    `n_steps` steps on make_batch(i), after `warmup` untimed ones."""
    for i in range(n_steps + warmup):
        if i == warmup:
            sync(device)
            t = time.perf_counter()
        train_step(model, optimizer, make_batch(i))
    sync(device)
    return (time.perf_counter() - t) / n_steps


def host_sync_in_step(model, optimizer, batch, device) -> Optional[str]:
    """None when one step (on `batch`, already on the device) asks nothing of the host; else the
    first synchronising call, as torch.cuda's sync debug mode names it. CUDA only."""
    if torch.device(device).type != "cuda":
        return "not measured (CPU)"
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(model, optimizer, batch)
        return None
    except RuntimeError as err:
        return str(err).splitlines()[0][:200]
    finally:
        torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()


def graphed_step_seconds(model, optimizer, make_batch: Callable[[int], object], n_steps: int,
                         warmup: int = 3) -> float:
    """Seconds per step with the whole step (forward, backward, Adam with capturable=True,
    after_optimizer_step) captured once as a CUDA graph and replayed, each replay after copying
    batch make_batch(i) into the captured batch's tensors (the copy is timed). CUDA only."""
    opt = type(optimizer)(optimizer.param_groups[0]["params"], **{**optimizer.defaults, "capturable": True})
    static = make_batch(0)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            train_step(model, opt, static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss, _ = model.training_step(static)
        loss.backward()
        opt.step()
        model.after_optimizer_step(static)

    def replay(i):
        batch = make_batch(i)
        for f in fields(static):
            getattr(static, f.name).copy_(getattr(batch, f.name))
        graph.replay()

    for i in range(warmup):
        replay(i)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(n_steps):
        replay(i)
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n_steps
