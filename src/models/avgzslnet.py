"""AVGZSLNet: triplet embeddings with a cross-modal decoder (docs/models.md, "AVGZSLNet").

The model when no model flag is given.
"""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..families import WORD_DIM
from .base import GZSLModel, PairBatch, audio_video_distances, loss_and_parts
from .blocks import MLPEmbeddingNet, TripletEmbeddings, TripletNet
from .registry import register_model, text_dim

JOINT_DIM = 64


def l2_distance(x: Tensor, y: Tensor, squared: bool = False) -> Tensor:
    """Per-sample distance [B] between x, y [B, d]: sqrt(sum((x - y)²)) (no eps), or its square."""
    sq = ((x - y) ** 2).sum(dim=1)
    return sq if squared else sq.sqrt()


class DecoderNet(nn.Module):
    """g: 64 -> decoder_hidden_size -> T (`embedding_net.fc`; T = text_dim, the class vectors'
    width, 300 for word2vec), L2-normalised outputs optionally."""

    def __init__(self, hidden: int, dropout: float, use_bn: bool, normalize_outputs: bool,
                 text_dim: int = WORD_DIM):
        super().__init__()
        self.embedding_net = MLPEmbeddingNet(JOINT_DIM, text_dim, dropout, use_bn, hidden)
        self.normalize_outputs = normalize_outputs

    def forward(self, x: Tensor) -> Tensor:
        out = self.embedding_net(x)
        return F.normalize(out, p=2, dim=1) if self.normalize_outputs else out


class AVGZSLNet(TripletEmbeddings, GZSLModel):
    """f_a, f_v, f_t into a 64-d space, trained with composite triplets and a decoder g back
    to the word space. Evaluation: f_a(a), f_v(v) against f_t(W); modes audio, video and
    `both` = the sum of the two (reported). The decoder is not used in evaluation.
    """
    modes = ("audio", "video", "both")

    def __init__(self, *, input_size_audio: int, input_size_video: int, embeddings_hidden_size: int,
                 decoder_hidden_size: int, embedding_dropout: float, decoder_dropout: float,
                 embedding_use_bn: bool = False, decoder_use_bn: bool = False,
                 normalize_decoder_outputs: bool = False, margin: float = 1.0,
                 squared_distance: bool = False, text_dim: int = WORD_DIM):
        super().__init__()
        # Each branch: Linear, [BN], ReLU, Dropout, Linear. text_dim: the class vectors' width,
        # f_t's input and the decoder's output.
        self.triplet_net = TripletNet(input_size_audio, input_size_video, embeddings_hidden_size,
                                      embedding_dropout, embedding_use_bn, out_dim=JOINT_DIM, word_dim=text_dim)
        self.decoder_net = DecoderNet(decoder_hidden_size, decoder_dropout, decoder_use_bn,
                                      normalize_decoder_outputs, text_dim)
        # Every triplet is TripletMarginLoss(margin) (L2) whatever --distance_fn says;
        # --distance_fn only chooses d in the three decoder terms.
        self.triplet = nn.TripletMarginLoss(margin=margin)
        self.squared_distance = squared_distance

    def training_step(self, batch: PairBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        w = batch.text
        # Positive and negative go through each net as separate calls (per-call BN stats).
        a_e, v_e, t = self.f_a(batch.audio), self.f_v(batch.video), self.f_t(w)                # (B, 64)
        a_e_n, v_e_n, t_n = self.f_a(batch.audio_neg), self.f_v(batch.video_neg), self.f_t(batch.text_neg)
        g = self.decoder_net
        g_t, g_a, g_v = g(t), g(a_e), g(v_e)                                                   # (B, T)
        g_a_n, g_v_n = g(a_e_n), g(v_e_n)                                                      # (B, T)

        def d(x, y):
            return l2_distance(x, y, self.squared_distance).mean()

        trip = self.triplet
        parts = {
            "decoder": (d(g_t, w) + d(g_a, w) + d(g_v, w)
                        + trip(g_t, g_a, g_a_n) + trip(g_t, g_v, g_v_n)),
            "composite_triplet": (trip(t, a_e, a_e_n) + trip(a_e, t, t_n)
                                  + trip(t, v_e, v_e_n) + trip(v_e, t, t_n)),
        }
        return loss_and_parts(parts)

    @torch.no_grad()
    def eval_embeddings(self, audio, video, text):
        """[f_a(a), f_v(v)] [N, 128] against [f_t(W), f_t(W)] [C, 128] (for pictures: its squared
        distance is the sum of the two modalities' squared distances)."""
        t = self.f_t(text)
        return torch.cat([self.f_a(audio), self.f_v(video)], 1), torch.cat([t, t], 1)

    @torch.no_grad()
    def eval_distances(self, audio, video, text, squared=False):
        t = self.f_t(text)                                                     # (C, 64)
        return audio_video_distances(self.f_a(audio), self.f_v(video), t, t, squared)


@register_model("avgzslnet", flag=None, class_name="AVGZSLNet",
                help="AVGZSLNet: triplet embeddings with a cross-modal decoder (no model flag)")
def avgzslnet(args) -> AVGZSLNet:
    return AVGZSLNet(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
                     embeddings_hidden_size=args.embeddings_hidden_size,
                     decoder_hidden_size=args.decoder_hidden_size,
                     embedding_dropout=args.embedding_dropout, decoder_dropout=args.decoder_dropout,
                     embedding_use_bn=args.embedding_use_bn, decoder_use_bn=args.decoder_use_bn,
                     normalize_decoder_outputs=args.normalize_decoder_outputs, margin=args.margin,
                     squared_distance=args.distance_fn == "SquaredL2Loss", text_dim=text_dim(args))
