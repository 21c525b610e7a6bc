"""Dropout with its masks drawn on a fast path on the CPU (every model's `nn.Dropout`).

PyTorch's CPU dropout draws its mask with `bernoulli_`, a serial scalar loop (about 8 ns an
element, 70 times a multiply) that does not scale with threads: a fifth of an AVCA step on this
machine kind. Here the mask comes from 64-bit random words, each read as four 16-bit integers
compared with a threshold: an element is kept with probability round((1 - p) * 2^16) / 2^16
(within 2^-17 of 1 - p) and scaled by 1 / (1 - p), as `F.dropout` does. The words come from
torch's default CPU generator, so `--seed` and `--resume` (which saves that generator) keep
their exactness; the masks differ from `bernoulli_`'s (training is not bit-comparable to the
original's anyway, PROTOCOL.md). On CUDA (a fused kernel) and in eval mode it is `F.dropout`.
`FAST_MASKS = False` (or `set_fast_masks(False)`) restores PyTorch's masks everywhere.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

FAST_MASKS = True
LEVELS = 1 << 16


def set_fast_masks(on: bool) -> None:
    global FAST_MASKS
    FAST_MASKS = bool(on)


def keep_mask(shape, p: float, generator=None) -> Tensor:
    """A bool mask of `shape`, True with probability round((1 - p) * 2^16) / 2^16."""
    n = 1
    for s in shape:
        n *= s
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None, generator=generator)
    threshold = round((1.0 - p) * LEVELS) - LEVELS // 2          # int16 values are uniform in [-2^15, 2^15)
    return (words.view(torch.int16)[:n] < threshold).view(shape)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    if not training or p == 0.0 or not FAST_MASKS or x.device.type != "cpu" or not x.is_floating_point():
        return F.dropout(x, p, training)
    if p == 1.0:
        return x * 0.0
    scale = x.new_full((), 1.0 / (1.0 - p))
    return x * (keep_mask(x.shape, p) * scale)          # bool * 0-d float: the scaled mask in one kernel


class Dropout(nn.Dropout):
    """`nn.Dropout` (same state, same repr) with the fast CPU masks of this module."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
