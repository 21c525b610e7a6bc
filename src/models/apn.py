"""APN: attribute-prototype style regression onto the word vectors (docs/models.md, "APN")."""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..families import WORD_DIM
from .base import GZSLModel, PairBatch, distance_matrix, loss_and_parts
from .registry import register_model, text_dim

INIT_SCALE = 2e-4   # the original initialises both maps as 2e-4 * U(0, 1)


class APN(GZSLModel):
    """Two linear maps x = concat(v, a) -> T "attributes", stored as 1x1 convolutions.

    `ALE_vector` [T, D, 1, 1] gives `final`, `prototype_vectors.layer4` [T, D, 1, 1]
    gives `layer4` (D = D_v + D_a; T = text_dim, the class vectors' width: 300 for word2vec).
    Evaluation: one mode, `both`, the L2 distance between `final` and the class vectors.
    """
    modes = ("both",)

    def __init__(self, *, input_size_audio: int, input_size_video: int, norm_inputs: bool = False,
                 text_dim: int = WORD_DIM):
        super().__init__()
        dim = input_size_audio + input_size_video
        # Creation order is the original's: prototype_vectors first (it fixes the init under a seed).
        self.prototype_vectors = nn.ParameterDict(
            {"layer4": nn.Parameter(INIT_SCALE * torch.rand(text_dim, dim, 1, 1))})
        self.ALE_vector = nn.Parameter(INIT_SCALE * torch.rand(text_dim, dim, 1, 1))
        self.norm_inputs = norm_inputs

    def inputs(self, audio: Tensor, video: Tensor) -> Tensor:
        """x [B, D_v + D_a] = concat(video, audio), L2-normalised with --norm_inputs."""
        x = torch.cat((video, audio), dim=1)
        return F.normalize(x, p=2, dim=1) if self.norm_inputs else x

    def attributes(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """final [B, T], layer4 [B, T]: the 1x1 convolutions, computed as the original did
        (`conv2d` on x [B, D, 1, 1]), so that near-ties in evaluation break the same way."""
        x4 = x[:, :, None, None]                                                 # (B, D, 1, 1)
        return (F.conv2d(x4, self.ALE_vector)[:, :, 0, 0],
                F.conv2d(x4, self.prototype_vectors["layer4"])[:, :, 0, 0])

    def training_step(self, batch: PairBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        final, layer4 = self.attributes(self.inputs(batch.audio, batch.video))   # (B, T) x 2
        W, y, w_y = batch.class_text, batch.label, batch.text
        # The original applies CrossEntropyLoss to the softmax output (a double softmax); kept.
        parts = {
            "ce_final": F.cross_entropy((final @ W.t()).softmax(dim=1), y),
            "mse_final": F.mse_loss(final, w_y),
            "ce_layer4": F.cross_entropy((layer4 @ W.t()).softmax(dim=1), y),
            "mse_layer4": F.mse_loss(layer4, w_y),
        }
        return loss_and_parts(parts)

    @torch.no_grad()
    def eval_embeddings(self, audio, video, text):
        """`final` attributes [N, T] against the raw class vectors [C, T]."""
        final, _ = self.attributes(self.inputs(audio, video))
        return final, text

    @torch.no_grad()
    def eval_distances(self, audio, video, text, squared=False):
        return {"both": distance_matrix(*self.eval_embeddings(audio, video, text), squared)}   # (N, C)


@register_model("apn", flag="apn", class_name="APN",
                help="APN: attribute-prototype regression onto the word vectors")
def apn(args) -> APN:
    return APN(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
               norm_inputs=args.norm_inputs, text_dim=text_dim(args))
