"""--cuda_graph: the whole training step (forward, backward, Adam, the after-step pass) captured
once as a CUDA graph and replayed for every batch of the same shapes.

A small model's step on a GPU is bound by kernel launches (AVCA on an H200: 19 ms eager, 3.6 ms
as one graph). The first `WARMUP` steps of the run are ordinary eager steps (on a side stream, as
capture requires); the next one is captured, and from then on each step copies its batch into
the captured batch's tensors and replays. The optimiser runs with `capturable=True` and a tensor
learning rate (which ReduceLROnPlateau updates in place). A batch of other shapes (TCaF's padded
sequences) runs eagerly. Opt-in: the numbers differ from the eager step's at rounding level.
"""
from dataclasses import fields, is_dataclass
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

WARMUP = 3


def make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Adam as a graph can replay it: capturable, the foreach path, its lr a device tensor."""
    device = next(p.device for g in optimizer.param_groups for p in g["params"])
    for group in optimizer.param_groups:
        group["capturable"], group["fused"], group["foreach"] = True, None, True
        # a device tensor (a resumed optimiser may bring a float, or a tensor saved from the CPU)
        group["lr"] = torch.tensor(float(group["lr"]), device=device)


def _tensors(batch) -> Dict[str, Tensor]:
    return {f.name: getattr(batch, f.name) for f in fields(batch)} if is_dataclass(batch) else {}


class GraphedStep:
    """Callable(model, optimizer, training_step, batch) -> (loss, parts), the step done."""

    def __init__(self):
        self.steps = 0
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.static = None
        self.out: Optional[Tuple[Tensor, Dict[str, Tensor]]] = None
        self.side = torch.cuda.Stream()

    def _shapes(self, batch):
        return {k: (v.shape, v.dtype) for k, v in _tensors(batch).items()}

    @staticmethod
    def _eager(model, optimizer, training_step: Callable, batch):
        loss, parts = training_step(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.after_optimizer_step(batch)
        return loss, parts

    def __call__(self, model, optimizer, training_step: Callable, batch):
        self.steps += 1
        if not _tensors(batch) or (self.graph is not None and self._shapes(batch) != self._shapes(self.static)):
            return self._eager(model, optimizer, training_step, batch)      # not a fixed-shape batch
        if self.graph is None and self.steps <= WARMUP:
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                out = self._eager(model, optimizer, training_step, batch)
            torch.cuda.current_stream().wait_stream(self.side)
            return out
        if self.graph is None:
            self.static = batch
            self.graph = torch.cuda.CUDAGraph()
            optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                loss, parts = training_step(self.static)
                loss.backward()
                optimizer.step()
                model.after_optimizer_step(self.static)
            self.out = (loss, parts)
        else:
            for name, t in _tensors(batch).items():
                getattr(self.static, name).copy_(t)
        self.graph.replay()
        return self.out
