"""CJME: coordinated joint embeddings with modality attention (docs/models.md, "CJME")."""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..families import WORD_DIM
from .base import GZSLModel, PairBatch, distance_matrix, loss_and_parts
from .blocks import TripletEmbeddings, TripletNet
from .registry import register_model, text_dim

JOINT_DIM = 64
ENTROPY_GAP = 0.1   # an entropy must exceed the other by more than this to pick a modality


def entropy(logits: Tensor) -> Tensor:
    """Entropy [B] (nats) of softmax(logits [B, C])."""
    logp = logits.log_softmax(dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def attention_target(h_audio: Tensor, h_video: Tensor, gap: float = ENTROPY_GAP) -> Tensor:
    """[B]: 0 (trust audio) where H_v > H_a + gap, 1 (trust video) where H_a > H_v + gap, else 0.5."""
    target = torch.full_like(h_audio, 0.5)
    target[h_video - h_audio > gap] = 0.0
    target[h_audio - h_video > gap] = 1.0
    return target


def attention_weighted_triplet(alpha: Tensor, l_a: Tensor, l_v: Tensor, broadcast: bool = False) -> Tensor:
    """mean((1 - α)·l_a + α·l_v) per sample; alpha [B, 1], l_a, l_v [B].

    `broadcast` reproduces the original's [B, 1] x [B] -> [B, B] product **[original defect]**
    (docs/models.md, CJME), which equals mean(1 - α)·mean(l_a) + mean(α)·mean(l_v).
    """
    if broadcast:
        return ((1 - alpha) * l_a + alpha * l_v).mean()                        # (B, B) -> ()
    a = alpha[:, 0]                                                             # (B,)
    return ((1 - a) * l_a + a * l_v).mean()


class CJME(TripletEmbeddings, GZSLModel):
    """Audio and video embedded against the word vectors in one 64-d space, with a learned
    per-sample modality weight α = attention(concat(a, v)) in [0, 1].

    Evaluation modes: audio, video, and `both` = per sample the video distance where α >= 0.5,
    else the audio distance (reported).
    """
    modes = ("audio", "video", "both")

    def __init__(self, *, input_size_audio: int, input_size_video: int, hidden_size: int,
                 dropout: float, use_bn: bool, margin: float = 1.0, broadcast_attention_loss: bool = False,
                 text_dim: int = WORD_DIM):
        super().__init__()
        # Each branch: Linear, [BN], ReLU, Dropout, Linear, ReLU; f_t reads text_dim-d class vectors.
        self.triplet_net = TripletNet(input_size_audio, input_size_video, hidden_size, dropout, use_bn,
                                      final_relu=True, out_dim=JOINT_DIM, word_dim=text_dim)
        av_dim = input_size_audio + input_size_video
        # The BatchNorm is there whatever --embedding_use_bn says.
        self.attention_model = nn.Sequential(nn.BatchNorm1d(av_dim), nn.Linear(av_dim, 1), nn.Sigmoid())
        self.triplet = nn.TripletMarginLoss(margin=margin, reduction="none")
        self.broadcast_attention_loss = broadcast_attention_loss

    def attention(self, audio: Tensor, video: Tensor) -> Tensor:
        """α [B, 1] from concat(audio, video) (audio first)."""
        return self.attention_model(torch.cat((audio, video), dim=1))

    def training_step(self, batch: PairBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        a_e, v_e, t = self.f_a(batch.audio), self.f_v(batch.video), self.f_t(batch.text)   # (B, 64)
        a_e_n, v_e_n = self.f_a(batch.audio_neg), self.f_v(batch.video_neg)                # (B, 64)
        # [published behaviour] the original also embeds the negative's word vector, unused by the
        # loss: in train mode it moves f_t's BatchNorm statistics, which evaluation then uses.
        self.f_t(batch.text_neg)
        alpha = self.attention(batch.audio, batch.video)                                    # (B, 1)
        with torch.no_grad():
            # Targets from the entropies of the class posteriors over T = f_t(W), computed in
            # train mode each step (moves f_t's BatchNorm statistics), no gradient.
            T = self.f_t(batch.class_text)                                                  # (C, 64)
            target = attention_target(entropy(a_e @ T.t()), entropy(v_e @ T.t()))          # (B,)
        l_a = self.triplet(t, a_e, a_e_n)                                                   # (B,)
        l_v = self.triplet(t, v_e, v_e_n)                                                   # (B,)
        parts = {
            "triplet": attention_weighted_triplet(alpha, l_a, l_v, self.broadcast_attention_loss),
            "mse_av": F.mse_loss(a_e, v_e),
            "attention": F.mse_loss(alpha, target[:, None]),
        }
        return loss_and_parts(parts)

    @torch.no_grad()
    def eval_embeddings(self, audio, video, text):
        """Each sample's trusted modality (video if α >= 0.5, else audio) [N, 64]; f_t(W) [C, 64]."""
        use_video = self.attention(audio, video) >= 0.5                             # (N, 1)
        return torch.where(use_video, self.f_v(video), self.f_a(audio)), self.f_t(text)

    @torch.no_grad()
    def eval_distances(self, audio, video, text, squared=False):
        t = self.f_t(text)                                                          # (C, 64)
        d_a = distance_matrix(self.f_a(audio), t, squared)                          # (N, C)
        d_v = distance_matrix(self.f_v(video), t, squared)                          # (N, C)
        use_video = self.attention(audio, video) >= 0.5                             # (N, 1)
        return {"audio": d_a, "video": d_v, "both": torch.where(use_video, d_v, d_a)}


@register_model("cjme", flag="cjme", class_name="CJME",
                help="CJME: coordinated joint embeddings with modality attention")
def cjme(args) -> CJME:
    return CJME(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
                hidden_size=args.embeddings_hidden_size, dropout=args.dropout_baselines,
                use_bn=args.embedding_use_bn, margin=args.margin,
                # [original defect] docs/models.md, CJME: α [B, 1] times per-sample losses [B].
                broadcast_attention_loss=args.reproduce_original, text_dim=text_dim(args))
