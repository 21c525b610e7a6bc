"""What the benchmark scripts share: the time of one optimiser step on batches already drawn."""
import time
from typing import Callable

import torch


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def step_seconds(model, optimizer, make_batch: Callable[[int], object], n_steps: int, device, warmup: int = 5) -> float:
    """Seconds per step (training_step, backward, optimiser step, after_optimizer_step) over
    `n_steps` steps on make_batch(i), after `warmup` untimed ones."""
    for i in range(n_steps + warmup):
        if i == warmup:
            sync(device)
            t = time.perf_counter()
        batch = make_batch(i)
        loss, _ = model.training_step(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.after_optimizer_step(batch)
    sync(device)
    return (time.perf_counter() - t) / n_steps
