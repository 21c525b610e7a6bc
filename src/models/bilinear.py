"""DEVISE, ALE and SJE: one bilinear compatibility model, three ranking losses.

docs/models.md, "DEVISE, ALE, SJE". The three share `DeviseModel` (class name in run folders:
`DeviseModel_score.pt`, state_dict `bilinear.weight [T, D_v + D_a]`, T = text_dim the class
vectors' width, 300 for word2vec) and differ only in the loss, which the builder passes in as a
function.
"""
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..families import WORD_DIM
from .base import GZSLModel, PairBatch, distance_matrix, loss_and_parts
from .dropout import Dropout
from .registry import register_model, text_dim

RANK_MARGIN = 0.1        # docs/models.md: the ranking losses' margin is fixed (not --margin)
ALE_MAX_CLASSES = 700    # the original tabulated L(r) up to 700 classes


def _violations(scores: Tensor, target: Tensor, margin: float) -> Tensor:
    """cost [B, C]: max(0, margin + s_k - s_y) for every wrong class k, 0 at k = y."""
    correct = scores.gather(1, target[:, None])                                 # (B, 1)
    cost = (margin + scores - correct).clamp(min=0)                             # (B, C)
    is_target = F.one_hot(target, scores.shape[1]).bool()                       # (B, C)
    return cost.masked_fill(is_target, 0.0)


def devise_loss(scores: Tensor, target: Tensor, margin: float = RANK_MARGIN) -> Tensor:
    """DEVISE: the hinge costs summed over every wrong class, divided by the batch size."""
    return _violations(scores, target, margin).sum() / scores.shape[0]


def sje_loss(scores: Tensor, target: Tensor, margin: float = RANK_MARGIN) -> Tensor:
    """SJE: only the largest violation of each sample, divided by the batch size."""
    return _violations(scores, target, margin).max(dim=1).values.sum() / scores.shape[0]


def harmonic_numbers(n: int, device=None) -> Tensor:
    """L(r) = sum_{i=1..r} 1/i for r = 0..n (float32, L(0) = 0): ALE's rank weights."""
    inv = 1.0 / torch.arange(1, n + 1, dtype=torch.float32, device=device)
    return torch.cat((inv.new_zeros(1), torch.cumsum(inv, 0)))


def ale_loss(scores: Tensor, target: Tensor, margin: float = RANK_MARGIN) -> Tensor:
    """ALE: each sample's summed costs weighted by L(r) / (r + 1e-8), r = its violating classes."""
    cost = _violations(scores, target, margin)                                  # (B, C)
    r = (cost > 0).sum(dim=1)                                                   # (B,)
    if scores.shape[1] - 1 > ALE_MAX_CLASSES:
        raise ValueError(f"ALE's rank weights are tabulated up to {ALE_MAX_CLASSES} classes, "
                         f"got {scores.shape[1]} training classes")
    L = harmonic_numbers(ALE_MAX_CLASSES, scores.device)[r]                  # (B,)
    weight = L / (r.to(scores.dtype) + 1e-8)                                    # (B,)
    return (weight * cost.sum(dim=1)).sum() / scores.shape[0]


class DeviseModel(GZSLModel):
    """Bilinear compatibility `bilinear(x) · Wᵀ` between x = concat(v, a) and word vectors W.

    One mode, `both`: the L2 distance between `bilinear(x)` [N, T] and the raw class vectors
    [C, T] (T = text_dim, the class vectors' width).
    """
    modes = ("both",)

    def __init__(self, *, input_size_audio: int, input_size_video: int, dropout: float,
                 loss_fn: Callable[[Tensor, Tensor], Tensor], norm_inputs: bool = False,
                 text_dim: int = WORD_DIM):
        super().__init__()
        self.bilinear = nn.Linear(input_size_audio + input_size_video, text_dim, bias=False)
        self.dropout = Dropout(dropout)   # one module: masks x and the class matrix W
        self.loss_fn = loss_fn
        self.norm_inputs = norm_inputs

    def inputs(self, audio: Tensor, video: Tensor) -> Tensor:
        """x [B, D_v + D_a] = concat(video, audio), L2-normalised with --norm_inputs."""
        x = torch.cat((video, audio), dim=1)
        return F.normalize(x, p=2, dim=1) if self.norm_inputs else x

    def training_step(self, batch: PairBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        x = self.dropout(self.inputs(batch.audio, batch.video))                 # (B, D_v + D_a)
        W = self.dropout(batch.class_text)                                      # (C, T)
        scores = self.bilinear(x) @ W.t()                                       # (B, C)
        return loss_and_parts({"rank": self.loss_fn(scores, batch.label)})

    @torch.no_grad()
    def eval_embeddings(self, audio, video, text):
        """bilinear(x) [N, T] against the raw class vectors [C, T]."""
        return self.bilinear(self.inputs(audio, video)), text

    @torch.no_grad()
    def eval_distances(self, audio, video, text, squared=False):
        return {"both": distance_matrix(self.bilinear(self.inputs(audio, video)), text, squared)}   # (N, C)


def _bilinear(args, loss_fn) -> DeviseModel:
    return DeviseModel(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
                       dropout=args.dropout_baselines, loss_fn=loss_fn, norm_inputs=args.norm_inputs,
                       text_dim=text_dim(args))


@register_model("ale", flag="ale", class_name="DeviseModel",
                help="ALE: bilinear compatibility, rank-weighted hinge loss")
def ale(args) -> DeviseModel:
    return _bilinear(args, ale_loss)


@register_model("sje", flag="sje", class_name="DeviseModel",
                help="SJE: bilinear compatibility, hinge loss on the largest violation")
def sje(args) -> DeviseModel:
    return _bilinear(args, sje_loss)


@register_model("devise", flag="devise", class_name="DeviseModel",
                help="DEVISE: bilinear compatibility, hinge loss summed over wrong classes")
def devise(args) -> DeviseModel:
    return _bilinear(args, devise_loss)
