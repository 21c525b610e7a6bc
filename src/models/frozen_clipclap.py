"""The training-free CLIP/CLAP row (docs/hspmoe.md section 6): no model, the frozen encoders' own zero-shot
matching, evaluated with the same calibrated stacking as every method (β on val, applied on test).

    x̂_i = normalize([CLIP video_i (512) || WavCaps audio_i (1024)])     whole 1536-vector, video first
    t̂_c = normalize([CLIP text_c (512)  || WavCaps text_c (1024)])      the split's class rows
    d(i, c) = ||x̂_i - t̂_c||₂                                           (squared for SquaredL2Loss)

Each part is stored unit-norm, so cos(x̂_i, t̂_c) is about the mean of the CLIP and the CLAP
cosines; it is computed literally as above. It tells how much of a CLIP/CLAP-family result the
frozen encoders already give. HSP-MoE's FAR mixes the same distance into its own (src/models/hspmoe.py).

A method like the others (`--frozen_clipclap`, its row in the methods table): with no parameter to
train, the trainer validates it once as its epoch 1 and writes the run folder every method writes
(src/train.py), so get_evaluation.py picks β on val and applies it on test as for any run.
"""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError
from .base import GZSLModel, distance_matrix
from .registry import register_model


def raw_distances(x: Tensor, t: Tensor, squared: bool = False) -> Tensor:
    """cdist [N, C] between the L2-normalised float32 rows of x [N, D] and t [C, D] (eps 1e-12)."""
    if x.shape[1] != t.shape[1]:
        raise ValueError(f"raw features of width {x.shape[1]} against class vectors of width {t.shape[1]}")
    return distance_matrix(F.normalize(x.float(), dim=1), F.normalize(t.float(), dim=1), squared)


def frozen_distances(audio: Tensor, video: Tensor, text: Tensor, squared: bool = False) -> Tensor:
    """The training-free row's distances [N, C]: [CLIP video || WavCaps audio] [N, 512 + 1024]
    against the [CLIP text || WavCaps text] class vectors [C, 1536], both L2-normalised."""
    return raw_distances(torch.cat((video.float(), audio.float()), dim=1), text, squared)


class FrozenClipClap(GZSLModel):
    """No parameters and nothing to train (`trainable` False: the trainer builds no optimiser and
    runs no step): `eval_distances` is `frozen_distances`. Calibration grid as ClipClap's,
    linspace(0, 5, 76) (docs/clipclap.md 7)."""
    modes = ("both",)
    calibration = (0.0, 5.0, 76)
    trainable = False

    def training_step(self, batch):
        raise NotImplementedError("the frozen CLIP/CLAP row is training-free: it has no training step")

    @torch.no_grad()
    def eval_embeddings(self, audio: Tensor, video: Tensor, text: Tensor) -> Tuple[Tensor, Tensor]:
        return (F.normalize(torch.cat((video.float(), audio.float()), dim=1), dim=1),
                F.normalize(text.float(), dim=1))

    @torch.no_grad()
    def eval_distances(self, audio: Tensor, video: Tensor, text: Tensor, squared: bool = False) -> Dict[str, Tensor]:
        return {"both": frozen_distances(audio, video, text, squared)}


@register_model("frozen_clipclap", flag="frozen_clipclap", class_name="FrozenClipClap", vectors=True,
                help="the frozen CLIP/CLAP encoders' zero-shot matching, training-free (docs/hspmoe.md 6): the "
                     "CLIP video and WavCaps audio vectors against the CLIP and WavCaps text class vectors, each "
                     "side concatenated and normalised (needs the CLIP/CLAP features; --epochs is ignored)")
def frozen_clipclap(args) -> FrozenClipClap:
    """The row from a Namespace: no keyword arguments; the raw features, so no --z_score_inputs."""
    if args.z_score_inputs:
        raise UserError("--frozen_clipclap compares the raw CLIP/CLAP vectors with the class vectors: it does "
                        "not take --z_score_inputs")
    return FrozenClipClap()
