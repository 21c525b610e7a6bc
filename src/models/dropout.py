"""Dropout with its masks drawn on a fast path on the CPU (every model's `nn.Dropout`).

PyTorch's CPU dropout draws its mask with `bernoulli_`, a serial scalar loop (about 8 ns an
element, 70 times a multiply) that does not scale with threads: a fifth of an AVCA step on this
machine kind. Here the mask comes from 64-bit random words, each read as four 16-bit integers
compared with a threshold: an element is kept with probability round((1 - p) * 2^16) / 2^16
(within 2^-17 of 1 - p) and scaled by 1 / (1 - p), as `F.dropout` does. The comparison is done
in float32 arithmetic, clamp(threshold - w, 0, 1), exact on these integers: on this CPU a
comparison into a bool tensor and the bool-to-float cast are each about six times a vectorised
float pass (the mask for 256 x 512 elements: 75 us after the random words instead of 330). The words come from
torch's default CPU generator, so `--seed` and `--resume` (which saves that generator) keep
their exactness; the masks differ from `bernoulli_`'s (training is not bit-comparable to the
original's anyway, docs/protocol.md). On CUDA (a fused kernel) and in eval mode it is `F.dropout`.
`FAST_MASKS = False` (or `set_fast_masks(False)`) restores PyTorch's masks everywhere.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FAST_MASKS = True
LEVELS = 1 << 16


def set_fast_masks(on: bool) -> None:
    global FAST_MASKS
    FAST_MASKS = bool(on)


def _words(n: int, generator=None) -> Tensor:
    """Random 64-bit words for n elements: read as int16 (`.view(torch.int16)[:n]`), four values
    uniform in [-2^15, 2^15) each."""
    return torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None, generator=generator)


def _threshold(p: float) -> int:
    return round((1.0 - p) * LEVELS) - LEVELS // 2               # keep a word w when w < threshold


def keep_mask(shape, p: float, generator=None) -> Tensor:
    """A bool mask of `shape`, True with probability round((1 - p) * 2^16) / 2^16 (the same draws
    and the same elements as `scaled_mask`)."""
    n = math.prod(shape)
    return (_words(n, generator).view(torch.int16)[:n] < _threshold(p)).view(shape)


def scaled_mask(shape, p: float, dtype=torch.float32, generator=None) -> Tensor:
    """`keep_mask` as `dtype`, 1 / (1 - p) where kept and 0 elsewhere: clamp(threshold - w, 0, 1)
    is exactly 1 or 0 on these integers in float32, then scaled in place."""
    n = math.prod(shape)
    mask = (_threshold(p) - _words(n, generator).view(torch.int16)[:n].to(torch.float32)).clamp_(0.0, 1.0).to(dtype)
    return mask.mul_(torch.tensor(1.0 / (1.0 - p), dtype=dtype)).view(shape)


def dropout(x: Tensor, p: float, training: bool, inplace: bool = False) -> Tensor:
    """`F.dropout` with this module's masks on the CPU. `inplace` masks `x` itself when autograd
    does not record (evaluation embeddings, the published after-step pass); under autograd it
    returns a new tensor (the ReLU before it keeps its output for its backward)."""
    inplace = inplace and not (torch.is_grad_enabled() and x.requires_grad)
    if not training or p == 0.0 or not FAST_MASKS or x.device.type != "cpu" or not x.is_floating_point():
        return F.dropout(x, p, training, inplace)
    if p == 1.0:
        return x.mul_(0.0) if inplace else x * 0.0
    if torch.compiler.is_compiling():      # --compile: the comparison (inductor fuses it); its
        return x * (keep_mask(x.shape, p) * x.new_full((), 1.0 / (1.0 - p)))   # tracing rejects the float path's view
    mask = scaled_mask(x.shape, p, x.dtype)
    return x.mul_(mask) if inplace else x * mask


class Dropout(nn.Dropout):
    """`nn.Dropout` (same state) with the fast CPU masks of this module; `inplace=True` works in
    place only where autograd does not record (`dropout`)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training, self.inplace)
