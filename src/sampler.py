"""Class-balanced positive/negative pairs drawn on tensors, on the device (docs/protocol.md 3).

A positive: a class uniformly among the C training classes, then a sample of it uniformly.
Its negative: a class uniformly among the C - 1 others, then a sample of it uniformly.
One call draws a whole epoch of indices with a dedicated generator (saved for --resume).
"""
from typing import Tuple

import torch
from torch import Tensor

from .errors import UserError


class PairSampler:
    def __init__(self, labels: Tensor, num_classes: int, seed: int, device=None):
        """labels [N]: class position (0..C-1) of every training sample."""
        device = labels.device if device is None else torch.device(device)
        labels = labels.to(device)
        counts = torch.bincount(labels, minlength=num_classes)                  # [C]
        if num_classes < 2:
            raise UserError("the training split needs at least two classes to draw negatives")
        if bool((counts == 0).any()):
            raise UserError(f"{int((counts == 0).sum())} training classes have no sample")
        self.num_classes = num_classes
        self.order = torch.argsort(labels, stable=True)                         # [N] grouped by class
        self.counts = counts
        self.offsets = torch.cumsum(counts, 0) - counts                         # [C]
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.device = device

    def _sample_of(self, cls: Tensor) -> Tensor:
        u = torch.rand(cls.shape, generator=self.generator, device=self.device)
        k = (u * self.counts[cls]).long().minimum(self.counts[cls] - 1)
        return self.order[self.offsets[cls] + k]

    def draw(self, n: int) -> Tuple[Tensor, Tensor]:
        """Indices [n] of positives and [n] of their negatives."""
        g, dev, c = self.generator, self.device, self.num_classes
        cls = torch.randint(0, c, (n,), generator=g, device=dev)
        cls_neg = (cls + torch.randint(1, c, (n,), generator=g, device=dev)) % c   # any other class
        return self._sample_of(cls), self._sample_of(cls_neg)

    def negatives(self, labels: Tensor) -> Tensor:
        """One negative index per sample of class position `labels` [n]: another class, then a sample."""
        shift = torch.randint(1, self.num_classes, labels.shape, generator=self.generator, device=self.device)
        return self._sample_of((labels.to(self.device) + shift) % self.num_classes)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"].cpu())
