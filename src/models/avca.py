"""AVCA: audio-visual cross-attention with language (docs/models.md, "AVCA")."""
from typing import Dict, Tuple

import torch
from torch import Tensor, nn

from ..families import WORD_DIM
from .base import GZSLModel, PairBatch, adam, distance_matrix, loss_and_parts, plateau
from .blocks import EmbeddingNet, Transformer
from .registry import register_model, text_dim

JOINT_DIM = 64


class AVCA(GZSLModel):
    """Audio and video attend to each other and are embedded with the word vectors in a 64-d
    space. One mode: the distance between θv (the video embedding) and θw, reported as `both`.
    """
    modes = ("both",)

    def __init__(self, *, input_size_audio: int, input_size_video: int, embeddings_hidden_size: int,
                 decoder_hidden_size: int, embedding_dropout: float, decoder_dropout: float,
                 additional_dropout: float, depth_transformer: int, momentum: float,
                 additional_triplets_loss: bool = False, first_additional_triplet: float = 1.0,
                 second_additional_triplet: float = 1.0, reg_loss: bool = False, text_dim: int = WORD_DIM):
        super().__init__()
        # Creation order is docs/models.md's (it fixes the default initialisation under a seed).
        # text_dim (T): the class vectors' width (300 word2vec, 1536 CLIP+CLAP); the audio and video
        # are encoded to it, attend to each other in it, and are reconstructed in it.
        self.A_enc = EmbeddingNet(input_size_audio, text_dim, embedding_dropout, momentum, embeddings_hidden_size)
        self.V_enc = EmbeddingNet(input_size_video, text_dim, embedding_dropout, momentum, embeddings_hidden_size)
        self.cross_attention = Transformer(text_dim, depth_transformer, heads=3, dim_head=100,
                                           mlp_dim=64, dropout=embedding_dropout)
        self.W_proj = EmbeddingNet(text_dim, JOINT_DIM, additional_dropout, momentum)
        self.D = EmbeddingNet(JOINT_DIM, text_dim, additional_dropout, momentum)
        self.A_proj = EmbeddingNet(text_dim, JOINT_DIM, decoder_dropout, momentum, decoder_hidden_size)
        self.V_proj = EmbeddingNet(text_dim, JOINT_DIM, decoder_dropout, momentum, decoder_hidden_size)
        self.A_rec = EmbeddingNet(JOINT_DIM, text_dim, additional_dropout, momentum)
        self.V_rec = EmbeddingNet(JOINT_DIM, text_dim, additional_dropout, momentum)
        self.pos_emb1D = nn.Parameter(torch.randn(2, text_dim))     # row 0 audio, row 1 video

        self.additional_triplets_loss = additional_triplets_loss
        self.first_additional_triplet = first_additional_triplet
        self.second_additional_triplet = second_additional_triplet
        self.reg_loss = reg_loss
        self.triplet = nn.TripletMarginLoss(margin=1.0)
        self.mse = nn.MSELoss()

    def attend(self, phi_a: Tensor, phi_v: Tensor) -> Tuple[Tensor, Tensor]:
        """Cross-attention over the (audio, video) token pair, with the residual: [B, T] x 2."""
        tokens = torch.stack((phi_a + self.pos_emb1D[0], phi_v + self.pos_emb1D[1]), dim=1)  # (B, 2, T)
        out = self.cross_attention(tokens)                                                   # (B, 2, T)
        return phi_a + out[:, 0], phi_v + out[:, 1]

    def get_embeddings(self, audio: Tensor, video: Tensor, text: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """θa [B, 64], θv [B, 64] of the samples and θw [C, 64] of the word vectors."""
        phi_a, phi_v = self.A_enc(audio), self.V_enc(video)
        theta_w = self.W_proj(text)
        att_a, att_v = self.attend(phi_a, phi_v)
        theta_v = self.V_proj(att_v)
        theta_a = self.A_proj(att_a)
        return theta_a, theta_v, theta_w

    def training_step(self, batch: PairBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        a, v, w = batch.audio, batch.video, batch.text
        a_n, v_n, w_n = batch.audio_neg, batch.video_neg, batch.text_neg
        # Positive and negative go through each module as separate calls (per-call BN stats),
        # in the original's order.
        phi_a, phi_v = self.A_enc(a), self.V_enc(v)
        phi_a_n, phi_v_n = self.A_enc(a_n), self.V_enc(v_n)
        theta_w, theta_w_n = self.W_proj(w), self.W_proj(w_n)
        rho_w = self.D(theta_w)
        with torch.no_grad():   # ρw' is computed by the original but used by no loss (moves BN stats)
            self.D(theta_w_n)
        att_a, att_v = self.attend(phi_a, phi_v)
        att_a_n, att_v_n = self.attend(phi_a_n, phi_v_n)
        theta_v, theta_v_n = self.V_proj(att_v), self.V_proj(att_v_n)
        theta_a, theta_a_n = self.A_proj(att_a), self.A_proj(att_a_n)
        phi_v_rec, phi_a_rec = self.V_rec(theta_v), self.A_rec(theta_a)
        # [published behaviour] computed and discarded: only moves BN statistics (and draws
        # dropout masks). Outside autograd: the same values, no graph kept for them.
        with torch.no_grad():
            self.A_proj(phi_a_rec)
            self.V_proj(phi_v_rec)
        rho_a, rho_a_n = self.D(theta_a), self.D(theta_a_n)
        rho_v, rho_v_n = self.D(theta_v), self.D(theta_v_n)

        t, mse = self.triplet, self.mse
        parts = {
            "l_rec": mse(w, rho_v) + mse(w, rho_a) + mse(w, rho_w),
            "l_ct": t(rho_w, rho_a, rho_a_n) + t(rho_w, rho_v, rho_v_n),
            "l_w": (t(theta_w, theta_a, theta_a_n) + t(theta_a, theta_w, theta_w_n)
                    + t(theta_w, theta_v, theta_v_n) + t(theta_v, theta_w, theta_w_n)),
        }
        if self.additional_triplets_loss:
            parts["l_t"] = (self.first_additional_triplet * (t(theta_a, theta_w, theta_a_n) + t(theta_v, theta_w, theta_v_n))
                            + self.second_additional_triplet * (t(theta_w, theta_a, theta_w_n) + t(theta_w, theta_v, theta_w_n)))
        if self.reg_loss:
            parts["l_r"] = (mse(phi_v_rec, phi_v) + mse(phi_a_rec, phi_a)
                            + mse(theta_v, theta_w) + mse(theta_a, theta_w))
        return loss_and_parts(parts)

    @torch.no_grad()
    def after_optimizer_step(self, batch: PairBatch) -> None:
        # [published behaviour] the original computed the batch's evaluation embeddings in
        # train mode after every step: it moves the BatchNorm running statistics (which with
        # --momentum 0.99 decides the evaluation-time statistics) and draws dropout masks.
        self.get_embeddings(batch.audio, batch.video, batch.text)

    @torch.no_grad()
    def eval_distances(self, audio, video, text, squared=False):
        _, theta_v, theta_w = self.get_embeddings(audio, video, text)
        return {"both": distance_matrix(theta_v, theta_w, squared)}     # (N, C)

    @torch.no_grad()
    def eval_embeddings(self, audio, video, text):
        """θv [N, 64] of the samples and θw [C, 64] of the classes (the reported distance's)."""
        _, theta_v, theta_w = self.get_embeddings(audio, video, text)
        return theta_v, theta_w

    def optimizer_parameters(self):
        # [published behaviour] pos_emb1D is not optimised: it keeps its N(0, 1) init.
        return [p for n, p in self.named_parameters() if n != "pos_emb1D"]

    def configure_optimizers(self, lr: float, lr_scheduler: bool):
        """Adam(lr, weight decay 1e-5) and the plateau scheduler, with or without `lr_scheduler`."""
        opt = adam(self.optimizer_parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=1e-5)
        return opt, plateau(opt)


@register_model("avca", flag="AVCA", class_name="AVCA",
                help="AVCA: cross-modal attention and language (the paper's model)")
def avca(args) -> AVCA:
    return AVCA(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
                embeddings_hidden_size=args.embeddings_hidden_size,
                decoder_hidden_size=args.decoder_hidden_size,
                embedding_dropout=args.embedding_dropout, decoder_dropout=args.decoder_dropout,
                additional_dropout=args.additional_dropout, depth_transformer=args.depth_transformer,
                momentum=args.momentum, additional_triplets_loss=args.additional_triplets_loss,
                first_additional_triplet=args.first_additional_triplet,
                second_additional_triplet=args.second_additional_triplet, reg_loss=args.reg_loss,
                text_dim=text_dim(args))
