"""Variable-length token sequences of a split, packed once on the device (docs/tcaf.md §1-2).

`Sequences(values [sum T_i, D], offsets [N], lengths [N])`: sample i's tokens are
`values[offsets[i] : offsets[i] + lengths[i]]`. A batch is gathered on the device in one
indexing operation, padded with zero rows to the batch's own longest sequence (or a given
length) and cut from per-sample starts: no per-sample Python.

    seq = Sequences.from_list([torch.randn(5, 8), torch.randn(3, 8)])
    x, mask = seq.gather(torch.tensor([1, 0]))        # x [2, 5, 8], mask [2, 5] (1 valid, 0 pad)

A leaf: it imports nothing from the project.
"""
from dataclasses import dataclass
from typing import Optional, Sequence as Seq, Tuple, Union

import torch
from torch import Tensor


@dataclass
class Sequences:
    values: Tensor       # [sum T_i, D] the tokens of every sample, sample after sample
    offsets: Tensor      # [N] long: where sample i starts in values
    lengths: Tensor      # [N] long: T_i (>= 1)

    @staticmethod
    def from_list(arrays: Seq[Tensor]) -> "Sequences":
        """From one [T_i, D] tensor per sample (same D and dtype)."""
        lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
        offsets = torch.cumsum(lengths, 0) - lengths
        width = arrays[0].shape[1] if len(arrays) else 0
        values = torch.cat(list(arrays)) if len(arrays) else torch.zeros(0, width)
        return Sequences(values, offsets, lengths)

    @staticmethod
    def cat(parts: Seq["Sequences"]) -> "Sequences":
        """The samples of several Sequences, one after the other."""
        values = torch.cat([p.values for p in parts])
        shift = torch.cumsum(torch.tensor([0] + [len(p.values) for p in parts[:-1]]), 0)
        offsets = torch.cat([p.offsets + s.to(p.offsets.device) for p, s in zip(parts, shift)])
        return Sequences(values, offsets, torch.cat([p.lengths for p in parts]))

    @staticmethod
    def packed(parts: Seq["Sequences"]) -> "Sequences":
        """The samples of several Sequences (views from indexing allowed), one after the other, in
        new compact values holding only their tokens: one copy, no unused rows."""
        lengths = torch.cat([p.lengths for p in parts])
        offsets = torch.cumsum(lengths, 0) - lengths
        values = parts[0].values.new_empty((int(lengths.sum()), parts[0].width))
        start = 0
        for p in parts:
            n = int(p.lengths.sum())
            local = torch.cumsum(p.lengths, 0) - p.lengths                       # where each sample goes
            rows = torch.repeat_interleave(p.offsets - local, p.lengths) + torch.arange(n, device=p.lengths.device)
            torch.index_select(p.values, 0, rows, out=values[start:start + n])
            start += n
        return Sequences(values, offsets, lengths)

    def pack(self) -> "Sequences":
        """A compact copy: only this view's samples' tokens, in order."""
        return Sequences.packed([self])

    @property
    def width(self) -> int:
        return self.values.shape[1]

    @property
    def shape(self) -> Tuple[int, int, int]:
        """(N, longest T, D), like a padded tensor's."""
        return len(self), int(self.lengths.max()) if len(self) else 0, self.width

    def __len__(self) -> int:
        return self.lengths.shape[0]

    def __getitem__(self, idx: Union[slice, Tensor]) -> "Sequences":
        """The samples `idx` (a slice, or an index / bool tensor); the values are shared."""
        return Sequences(self.values, self.offsets[idx], self.lengths[idx])

    def to(self, device) -> "Sequences":
        return Sequences(self.values.to(device), self.offsets.to(device), self.lengths.to(device))

    def float(self) -> "Sequences":
        return Sequences(self.values.float(), self.offsets, self.lengths)

    def gather(self, idx: Optional[Tensor] = None, length: Optional[int] = None,
               starts: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Samples `idx` [B] (all by default) as a padded tensor [B, L, D] and a float mask [B, L]
        (1 valid, 0 padded). Sample b keeps tokens starts[b] (default 0) onwards, at most L; L =
        `length`, or the longest kept sequence of the batch."""
        offsets = self.offsets if idx is None else self.offsets[idx]
        lengths = self.lengths if idx is None else self.lengths[idx]
        if starts is None:
            starts = torch.zeros_like(lengths)
        kept = (lengths - starts).clamp(min=0)                                  # [B]
        if length is not None:
            kept = kept.clamp(max=length)
        L = int(length if length is not None else (kept.max() if len(kept) else 0))
        steps = torch.arange(L, device=lengths.device)                          # [L]
        valid = steps[None, :] < kept[:, None]                                  # [B, L]
        rows = (offsets + starts)[:, None] + steps[None, :]                     # [B, L]
        rows = torch.where(valid, rows, torch.zeros_like(rows))
        x = self.values[rows] * valid[..., None].to(self.values.dtype)         # [B, L, D], pads zero
        return x, valid.to(torch.float32)
