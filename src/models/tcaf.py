"""TCaF: temporal and cross-modal attention (Mercea et al., ECCV 2022), docs/tcaf.md.

A video is two token sequences (audio, video; `Sequences` of a temporal split). Each token is
encoded to 300-d (A_enc, V_enc), joined with a modality + time embedding and projected back to
300-d; a class token and the tokens go through a transformer whose attention is cross-modal only
(cls attends to every valid token, audio to cls + video, video to cls + audio); the class token's
output is projected to θ_o [B, 64], compared with θ_w = W_proj(w) of the class vectors (word vectors;
of width text_dim: 300 for word2vec, 1536 for CLIP+CLAP).

    model = Multimodal_Sequence_Transformer(input_size_audio=128, input_size_video=4096, ...)
    tokens = collate(split.audio, split.video, idx, model.train_collation)   # padded, masks, times
    theta_o = model(*tokens)                                                 # (B, 64)

Pieces, in the order of the file:
- `Collation`, `collate`: a batch of a split's sequences padded (and, in `fixed` mode, cut) on the
  device (docs/tcaf.md 2); `TemporalBatch`: what `training_step` takes.
- the network: `AudioVisualEmbedding`, `CrossModalAttention`, the transformer, the model
  (construction order, and so initialisation, as docs/tcaf.md 3; state_dict keys as 8).
- the losses (docs/tcaf.md 4), Adam with weight decay (5; or SAM around it, `--optimizer adam-sam`,
  src/models/sam.py), the extra forward pass after each step (6), how its training and
  validation-loss batches are built (`TEMPORAL_BATCHES`: the trainer's epoch and validation loss
  run on them), and evaluation (7).

Shapes: B batch, T_a / T_v tokens, D_a / D_v input widths, N = 1 + T_a + T_v, C classes,
300 token width (transformer_dim), text_dim the class vectors' width (300 for word2vec), 64 joint
width, E = 64 embedding width.
"""
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..families import FAMILIES, WORD_DIM, FeatureFamily, family_of_args
from ..errors import UserError
from ..sequences import Sequences
from .base import OPTIMIZERS, Batches, GZSLModel, adam_or_sam, distance_matrix, loss_and_parts, plateau
from .blocks import EmbeddingNet, FeedForward
from .dropout import Dropout
from .flags import IGNORED, bool_value, dropout, positive_float, positive_int
from .registry import register_model, text_dim

JOINT_DIM = 64                    # dim_out, fixed in the original (src/utils_improvements.py)
TOKEN_DIM = 300                   # transformer_dim: the token width (not the class vectors' text_dim)
ADAM_WEIGHT_DECAY = 1e-5          # docs/tcaf.md 5 (coupled L2, as torch.optim.Adam)


def modality_rates(family: FeatureFamily) -> Tuple[float, float]:
    """(rate_audio, rate_video): the seconds between two tokens of a feature family (src/families.py)."""
    return family.audio_rate, family.video_rate


CLS_RATES = modality_rates(FAMILIES["cls_temporal"])      # (0.96, 0.64): one VGGish example, one C3D clip
SELAVI_RATES = modality_rates(FAMILIES["main_temporal"])  # (1.0, 1.0): SeLaVi windows, one second apart (docs/tcaf.md 1)


# -- collation (docs/tcaf.md 2) --------------------------------------------------------------------------

@dataclass(frozen=True)
class Collation:
    """How a batch of sequences is padded (and cut): `max` pads each modality to the batch's longest
    sequence; `fixed` makes the video `maxlen` tokens and the audio round(maxlen * rate_video *
    rate_audio) [published behaviour], cutting a longer video at a `random` or `center` start."""
    mode: str = "max"
    maxlen: int = 60
    trim: str = "random"
    rate_audio: float = 1.0
    rate_video: float = 1.0

    def __post_init__(self):
        if self.mode not in ("max", "fixed"):
            raise UserError(f"sequence length mode {self.mode!r}: expected max or fixed")
        if self.trim not in ("random", "center"):
            raise UserError(f"trim {self.trim!r}: expected random or center")
        if self.maxlen < 1:
            raise UserError(f"maxlen {self.maxlen}: expected >= 1")

    @property
    def fixed_lengths(self) -> Tuple[int, int]:
        """(audio tokens, video tokens) in `fixed` mode (cls: 37 / 60, 184 / 300; SeLaVi: L / L)."""
        return round(self.maxlen * self.rate_video * self.rate_audio), self.maxlen


class Tokens(NamedTuple):
    """A collated batch, in the order of `Multimodal_Sequence_Transformer.forward`'s arguments."""
    audio: Tensor           # (B, T_a, D_a) float32, zero rows after the valid tokens
    audio_mask: Tensor      # (B, T_a) float: 1 valid, 0 padded
    audio_time: Tensor      # (B, T_a) float32 seconds: k * rate_audio
    video: Tensor           # (B, T_v, D_v) the stored dtype
    video_mask: Tensor      # (B, T_v)
    video_time: Tensor      # (B, T_v)


def timesteps(b: int, length: int, rate: float, device) -> Tensor:
    """(B, L) float32 k * rate for k = 0 .. L-1, the same for every sample, starting at 0 even after a
    cut [published behaviour]; computed in float64 and then rounded, as the original."""
    return (torch.arange(length, dtype=torch.float64, device=device) * rate).float().expand(b, length)


def collate(audio: Sequences, video: Sequences, idx: Optional[Tensor], collation: Collation,
            generator: Optional[torch.Generator] = None, lengths: Optional[Tuple[int, int]] = None) -> Tokens:
    """The samples `idx` [B] (all by default) of a split's audio and video sequences as padded
    tensors, masks and timesteps, on the sequences' device. In `max` mode each modality is padded
    to the batch's longest sequence: `lengths` (T_a, T_v), when the caller knows them
    (`max_lengths`), else read from the device (one host sync). In `fixed` mode a video longer than
    L = maxlen is cut from s = randint(T_v - L) [published behaviour: the last window is never
    drawn] (`random`, from `generator`, else torch's global generator of the device) or s =
    (T_v - L) // 2 (`center`); a longer audio from min(T_a - L_a, round(s * rate_video /
    rate_audio)) when s > 0, else from 0."""
    dev = video.lengths.device
    if idx is None:
        idx = torch.arange(len(video), device=dev)
    b = idx.shape[0]
    if collation.mode == "max":
        len_a, len_v = lengths if lengths is not None else (None, None)
        a, a_mask = audio.gather(idx, length=len_a)                            # (B, T_a, D_a), (B, T_a)
        v, v_mask = video.gather(idx, length=len_v)                            # (B, T_v, D_v), (B, T_v)
    else:
        len_a, len_v = collation.fixed_lengths
        extra_v = video.lengths[idx] - len_v                                   # (B,) > 0: cut
        extra_a = audio.lengths[idx] - len_a
        cut = extra_v > 0
        if collation.trim == "random":
            gen_dev = generator.device if generator is not None else dev
            u = torch.rand(b, dtype=torch.float64, generator=generator, device=gen_dev).to(dev)
            start_v = torch.minimum((u * extra_v.clamp(min=1)).long(), (extra_v - 1).clamp(min=0))
        else:
            start_v = extra_v.div(2, rounding_mode="floor")
        start_v = torch.where(cut, start_v, torch.zeros_like(start_v))
        # the original's float32 arithmetic: (tensor(s) * rate_video / rate_audio).round()
        follow = (start_v.float() * collation.rate_video / collation.rate_audio).round().long()
        start_a = torch.where((extra_a > 0) & (start_v > 0), torch.minimum(extra_a, follow),
                              torch.zeros_like(start_v))
        a, a_mask = audio.gather(idx, length=len_a, starts=start_a)
        v, v_mask = video.gather(idx, length=len_v, starts=start_v)
    return Tokens(a.float(), a_mask, timesteps(b, a.shape[1], collation.rate_audio, dev),
                  v, v_mask, timesteps(b, v.shape[1], collation.rate_video, dev))


def max_lengths(audio: Sequences, video: Sequences, idx: Tensor) -> Tensor:
    """[n, 2] long on the device: (T_a, T_v) of `max` mode's padding of each of n batches of samples
    `idx` [n, B]: their longest audio and video sequences (`collate`'s `lengths`)."""
    return torch.stack((audio.lengths[idx].amax(dim=1), video.lengths[idx].amax(dim=1)), dim=1)


def as_sequences(x: Union[Sequences, Tensor]) -> Sequences:
    """Sequences as they are; a tensor [N, D] as N one-token sequences (an averaged feature); a
    tensor [N, T, D] as N sequences of T tokens."""
    if isinstance(x, Sequences):
        return x
    if x.dim() == 2:
        x = x[:, None, :]
    if x.dim() != 3:
        raise ValueError(f"expected Sequences or a [N, D] / [N, T, D] tensor, got shape {tuple(x.shape)}")
    n, t, d = x.shape
    lengths = torch.full((n,), t, dtype=torch.long, device=x.device)
    return Sequences(x.reshape(n * t, d), torch.arange(n, device=x.device) * t, lengths)


@dataclass
class TemporalBatch:
    """What `training_step` takes: a collated batch (`Tokens`' fields), the word vector of each
    sample's class text [B, text_dim], its position label [B] among the classes whose class vectors are
    class_text [C, text_dim] (the cross-entropy's classes)."""
    audio: Tensor
    audio_mask: Tensor
    audio_time: Tensor
    video: Tensor
    video_mask: Tensor
    video_time: Tensor
    text: Tensor
    label: Tensor
    class_text: Tensor

    @property
    def tokens(self) -> Tokens:
        return Tokens(*(getattr(self, f) for f in Tokens._fields))


def temporal_batch(split, idx: Tensor, collation: Collation, generator: Optional[torch.Generator] = None,
                   lengths: Optional[Tuple[int, int]] = None) -> TemporalBatch:
    """The samples `idx` [B] of a split (audio/video Sequences or tensors, labels [N], text [C, text_dim])
    collated (`max` mode: padded to `lengths` when given), with their word vectors and the split's
    class matrix."""
    labels = split.labels[idx]
    tokens = collate(as_sequences(split.audio), as_sequences(split.video), idx, collation, generator, lengths)
    return TemporalBatch(*tokens, text=split.text[labels], label=labels, class_text=split.text)


# -- the network (docs/tcaf.md 3) ------------------------------------------------------------------------

class AudioVisualEmbedding(nn.Module):
    """Per token of modality m at time t: e = modal_embedding[m] + time(t) + pad_embedding[0] where
    padded, time(t) = Linear([sin p, cos p]) with p = 2 pi [t, t] @ fourier_randn; the token becomes
    Dropout(Conv1d(300 + E -> 300, k=1)(concat(x, e)))."""

    def __init__(self, token_dim: int, embed_dim: int, dropout: float, fourier_scale: float):
        super().__init__()
        # creation order = the original's (it fixes the initialisation under a seed)
        self.modal_embedding = nn.Embedding(2, embed_dim)                  # row 0 audio, row 1 video
        self.fourier_embeddings = nn.Linear(embed_dim, embed_dim)
        self.register_buffer("fourier_randn", fourier_scale * torch.randn(2, embed_dim // 2))
        self.pad_embedding = nn.Embedding(1, embed_dim)
        self.dropout = Dropout(dropout)
        self.out_proj_audio = nn.Conv1d(token_dim + embed_dim, token_dim, kernel_size=1)
        self.out_proj_video = nn.Conv1d(token_dim + embed_dim, token_dim, kernel_size=1)

    def time_embedding(self, t: Tensor) -> Tensor:
        """t (..., T) seconds, or integer positions -> (..., T, E)."""
        pos = torch.stack((t, t), dim=-1)                                      # (..., T, 2)
        proj = (2.0 * math.pi * pos) @ self.fourier_randn                      # (..., T, E/2)
        return self.fourier_embeddings(torch.cat((torch.sin(proj), torch.cos(proj)), dim=-1))

    def embed(self, x: Tensor, padded: Tensor, t: Optional[Tensor], modality: int, proj: nn.Conv1d) -> Tensor:
        """x (B, T, 300), padded (B, T) bool, t (B, T) seconds or None (positions 0 .. T-1) -> (B, T, 300)."""
        if t is None:
            t = torch.arange(x.shape[1], device=x.device)                      # (T,) integer positions
        e = self.modal_embedding.weight[modality] + self.time_embedding(t)     # (B or 1, T, E)
        e = e + torch.where(padded[..., None], self.pad_embedding.weight[0], torch.zeros_like(e[..., :1]))
        tokens = torch.cat((x, e.expand(x.shape[0], -1, -1)), dim=-1)          # (B, T, 300 + E)
        return self.dropout(proj(tokens.transpose(1, 2))).transpose(1, 2)      # (B, T, 300)

    def forward(self, audio: Tensor, video: Tensor, audio_padded: Tensor, video_padded: Tensor,
                audio_time: Optional[Tensor] = None, video_time: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        return (self.embed(audio, audio_padded, audio_time, 0, self.out_proj_audio),
                self.embed(video, video_padded, video_time, 1, self.out_proj_video))


def cross_modal_mask(audio_valid: Tensor, video_valid: Tensor) -> Tensor:
    """(B, N, N) bool over [cls, audio tokens, video tokens]: query i may attend key j iff both are
    valid and they are not two audio or two video tokens (docs/tcaf.md 3.6)."""
    b, t_a = audio_valid.shape
    valid = torch.cat((audio_valid.new_ones(b, 1), audio_valid, video_valid), dim=1)     # (B, N)
    position = torch.arange(valid.shape[1], device=valid.device)                         # (N,)
    kind = (position > 0).long() + (position > t_a).long()      # (N,) 0 cls, 1 audio, 2 video; made on the
    # device: a copy from the host would sync, and a CUDA graph cannot capture it
    same_modality = (kind[:, None] == kind[None, :]) & (kind[:, None] > 0)               # (N, N)
    return valid[:, :, None] & valid[:, None, :] & ~same_modality


class CrossModalAttention(nn.Module):
    """Multi-head attention with separate q, k, v projections (no bias) and a boolean mask; masked
    logits are -finfo.max, not -inf, so a fully masked (padded) query row stays finite."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), Dropout(dropout))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = (f(x).view(b, n, self.heads, -1).transpose(1, 2)             # (B, h, N, dh)
                   for f in (self.to_q, self.to_k, self.to_v))
        dots = (q @ k.transpose(-1, -2)) * self.scale                          # (B, h, N, N)
        dots = dots.masked_fill(~mask[:, None], -torch.finfo(dots.dtype).max)
        out = (dots.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, -1)     # (B, N, h*dh)
        return self.to_out(out)


class TransformerLayer(nn.Module):
    """x = x + Attn(LN(x)); x = x + FF(LN(x)) with ONE LayerNorm used twice [published behaviour]."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.attn = CrossModalAttention(dim, heads, dim_head, dropout)
        self.ff = FeedForward(dim, mlp_dim, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.attn(self.norm(x), mask) + x
        return self.ff(self.norm(x)) + x


class SequenceTransformer(nn.Module):
    """`depth` layers, no final norm."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList([TransformerLayer(dim, heads, dim_head, mlp_dim, dropout) for _ in range(depth)])

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


# -- the losses (docs/tcaf.md 4) -------------------------------------------------------------------------

def tcaf_losses(theta_o: Tensor, rho_o: Tensor, theta_w: Tensor, rho_w: Tensor, w: Tensor,
                theta_classes: Tensor, label: Tensor, rec: bool = True, reg: bool = True,
                ce: bool = True) -> Dict[str, Tensor]:
    """{"rec": mse(w, ρ_o) + mse(w, ρ_w), "reg": mse(θ_o, θ_w), "ce": CE(θ_o θ_cᵀ, label)}: θ_o, θ_w
    [B, 64], ρ_o, ρ_w, w [B, text_dim], θ_c [C, 64] (W_proj of the class matrix), label [B]; a loss
    switched off is 0 (as the original)."""
    zero = theta_o.new_zeros(())
    return {"rec": F.mse_loss(w, rho_o) + F.mse_loss(w, rho_w) if rec else zero,
            "reg": F.mse_loss(theta_o, theta_w) if reg else zero,
            "ce": F.cross_entropy(theta_o @ theta_classes.t(), label) if ce else zero}


# -- the model --------------------------------------------------------------------------------------

EMBEDDING_ALIASES = ("position_encoder_block.", "audiovisual_embeddings.")


class Multimodal_Sequence_Transformer(GZSLModel):  # noqa: N801 - the original's class name (run-folder file names)
    """TCaF (docs/tcaf.md 3). One mode: the L2 distance between θ_o and θ_w, reported as `both`."""
    modes = ("both",)

    def __init__(self, *, input_size_audio: int, input_size_video: int, embeddings_hidden_size: int,
                 embedding_dropout: float, decoder_hidden_size: int = 512, decoder_dropout: float,
                 additional_dropout: float, depth: int, heads: int, dim_head: int, mlp_dim: int = 128,
                 transformer_dropout: float, embedding_dim: int = 64, embedding_token_dropout: float,
                 fourier_scale: float = 10.0, rec_loss: bool = True, reg_loss: bool = True,
                 cross_entropy_loss: bool = True, seqlen_train: str = "max", seqlen_train_maxlen: int = 60,
                 seqlen_train_trim: str = "random", seqlen_test: str = "max", seqlen_test_maxlen: int = 60,
                 seqlen_test_trim: str = "center", rate_audio: float = 1.0, rate_video: float = 1.0,
                 eval_bs: int = 64, text_dim: int = WORD_DIM, optimizer: str = "adam"):
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {optimizer!r}: expected one of {OPTIMIZERS}")
        # creation order = docs/tcaf.md 3 (it fixes the default initialisation under a seed); text_dim, the
        # class vectors' width: W_proj's input, and D_w's and D_o's outputs (both reconstruct w)
        self.A_enc = EmbeddingNet(input_size_audio, TOKEN_DIM, embedding_dropout, hidden=embeddings_hidden_size)
        self.V_enc = EmbeddingNet(input_size_video, TOKEN_DIM, embedding_dropout, hidden=embeddings_hidden_size)
        self.W_proj = EmbeddingNet(text_dim, JOINT_DIM, additional_dropout)
        self.D_w = EmbeddingNet(JOINT_DIM, text_dim, additional_dropout)
        self.cls_token = nn.Parameter(torch.randn(1, 1, TOKEN_DIM))
        # one module under two names [published behaviour]: its tensors appear under both prefixes
        self.position_encoder_block = self.audiovisual_embeddings = AudioVisualEmbedding(
            TOKEN_DIM, embedding_dim, embedding_token_dropout, fourier_scale)
        self.Audio_visual_transformer = SequenceTransformer(TOKEN_DIM, depth, heads, dim_head, mlp_dim,
                                                            transformer_dropout)
        self.O_proj = EmbeddingNet(TOKEN_DIM, JOINT_DIM, decoder_dropout, hidden=decoder_hidden_size)
        self.D_o = EmbeddingNet(JOINT_DIM, text_dim, decoder_dropout, hidden=decoder_hidden_size)

        self.losses_on = {"rec": rec_loss, "reg": reg_loss, "ce": cross_entropy_loss}
        self.train_collation = Collation(seqlen_train, seqlen_train_maxlen, seqlen_train_trim, rate_audio, rate_video)
        self.test_collation = Collation(seqlen_test, seqlen_test_maxlen, seqlen_test_trim, rate_audio, rate_video)
        self.eval_bs, self.optimizer_name = eval_bs, optimizer

    # -- embeddings ------------------------------------------------------------------------------
    def encode(self, audio: Tensor, audio_mask: Tensor, video: Tensor, video_mask: Tensor,
               audio_time: Optional[Tensor] = None, video_time: Optional[Tensor] = None) -> Tensor:
        """θ_o (B, 64) of padded audio (B, T_a, D_a) and video (B, T_v, D_v) with masks (1 valid);
        times in seconds (B, T), or None for integer positions."""
        b, t_a, _ = audio.shape
        t_v = video.shape[1]
        a = audio / 255.0                       # every family, SeLaVi too [published behaviour]
        v = F.normalize(video, dim=1)           # each channel L2-normalised over time [published behaviour]
        # the encoders see the padded rows too (their zeros enter the BatchNorm batch statistics)
        a = self.A_enc(a.reshape(b * t_a, -1)).view(b, t_a, -1)               # (B, T_a, 300)
        v = self.V_enc(v.reshape(b * t_v, -1)).view(b, t_v, -1)               # (B, T_v, 300)
        audio_valid, video_valid = audio_mask.bool(), video_mask.bool()
        a, v = self.position_encoder_block(a, v, ~audio_valid, ~video_valid, audio_time, video_time)
        x = torch.cat((self.cls_token.expand(b, -1, -1), a, v), dim=1)        # (B, N, 300)
        x = self.Audio_visual_transformer(x, cross_modal_mask(audio_valid, video_valid))
        return self.O_proj(x[:, 0])                                            # (B, 64)

    def forward(self, audio: Tensor, audio_mask: Tensor, audio_time: Optional[Tensor], video: Tensor,
                video_mask: Tensor, video_time: Optional[Tensor]) -> Tensor:
        """θ_o (B, 64) with the collator's timesteps in seconds (the training and validation loss)."""
        return self.encode(audio, audio_mask, video, video_mask, audio_time, video_time)

    def get_embeddings(self, audio: Tensor, audio_mask: Tensor, video: Tensor, video_mask: Tensor,
                       text: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        """θ_o (B, 64) with integer positions for times [published behaviour], and θ_w = W_proj(text)
        (None without text): evaluation, and the extra pass after each training step."""
        theta_o = self.encode(audio, audio_mask, video, video_mask)
        return theta_o, (self.W_proj(text) if text is not None else None)

    # -- training --------------------------------------------------------------------------------
    def loss_parts(self, batch: TemporalBatch) -> Dict[str, Tensor]:
        """The three losses; modules run in the original's order (it decides the dropout draws):
        encoders .. O_proj, D_o, W_proj(w), D_w, W_proj(class matrix, in the current mode)."""
        theta_o = self(*batch.tokens)                                          # (B, 64)
        rho_o = self.D_o(theta_o)                                              # (B, text_dim)
        theta_w = self.W_proj(batch.text)                                      # (B, 64)
        rho_w = self.D_w(theta_w)                                              # (B, text_dim)
        on = self.losses_on
        theta_c = self.W_proj(batch.class_text) if on["ce"] else None         # (C, 64)
        return tcaf_losses(theta_o, rho_o, theta_w, rho_w, batch.text, theta_c, batch.label,
                           rec=on["rec"], reg=on["reg"], ce=on["ce"])

    def training_step(self, batch: TemporalBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        """loss = l_rec + l_reg + l_ce (docs/tcaf.md 4) of a TemporalBatch."""
        return loss_and_parts(self.loss_parts(batch))

    @torch.no_grad()
    def after_optimizer_step(self, batch: TemporalBatch) -> None:
        """The extra get_embeddings pass after each step, in the current (train) mode, output discarded
        [published behaviour]: it moves the BatchNorm statistics of A_enc, V_enc, O_proj and W_proj
        and draws dropout masks (docs/tcaf.md 6; under --optimizer adam-sam the momenta are 0 here, so the
        statistics stay: src.steps.sam_step)."""
        self.get_embeddings(batch.audio, batch.audio_mask, batch.video, batch.video_mask, batch.text)

    def configure_optimizers(self, lr: float, lr_scheduler: bool = False):
        """Adam(lr, betas (0.9, 0.999), eps 1e-8, weight decay 1e-5) over every parameter (the shared
        embedding module once), with "adam-sam" SAM around it; ReduceLROnPlateau(max, patience 3) with
        lr_scheduler (docs/tcaf.md 5), on Adam."""
        opt = adam_or_sam(self.optimizer_name, self.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                          weight_decay=ADAM_WEIGHT_DECAY)
        return opt, (plateau(opt) if lr_scheduler else None)

    # -- evaluation (docs/tcaf.md 7) ------------------------------------------------------------------
    @torch.no_grad()
    def sample_embeddings(self, audio: Union[Sequences, Tensor], video: Union[Sequences, Tensor]) -> Tensor:
        """θ_o (N, 64) in batches of eval_bs collated with the test collation (integer positions)."""
        audio, video = as_sequences(audio), as_sequences(video)
        n, dev = len(video), video.lengths.device
        out = []
        for i in range(0, n, self.eval_bs):
            idx = torch.arange(i, min(i + self.eval_bs, n), device=dev)
            t = collate(audio, video, idx, self.test_collation)
            out.append(self.get_embeddings(t.audio, t.audio_mask, t.video, t.video_mask)[0])
        return torch.cat(out) if out else torch.zeros(0, JOINT_DIM, device=dev)

    @torch.no_grad()
    def eval_embeddings(self, audio, video, text: Tensor) -> Tuple[Tensor, Tensor]:
        """θ_o (N, 64) of the samples and θ_w (C, 64) = W_proj(text) of the classes."""
        return self.sample_embeddings(audio, video), self.W_proj(text)

    @torch.no_grad()
    def eval_distances(self, audio, video, text: Tensor, squared: bool = False) -> Dict[str, Tensor]:
        """{"both": L2 distances (N, C) between θ_o and θ_w} (squared with `squared`)."""
        return {"both": distance_matrix(*self.eval_embeddings(audio, video, text), squared)}

    # -- checkpoints (docs/tcaf.md 8) -----------------------------------------------------------------
    def complete_state_dict(self, state: dict) -> dict:
        """A checkpoint with the embedding's tensors under one of its two names gets them under the
        other too (published checkpoints have both; write both, accept either)."""
        missing = {want + k[len(have):]: v for have, want in (EMBEDDING_ALIASES, EMBEDDING_ALIASES[::-1])
                   for k, v in state.items() if k.startswith(have) and want + k[len(have):] not in state}
        if not missing:
            return state
        completed = OrderedDict(state)
        completed.update(missing)
        metadata = getattr(state, "_metadata", None)          # per-module versions (BatchNorm reads them)
        if metadata is not None:
            completed._metadata = metadata
        return completed

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return super().load_state_dict(self.complete_state_dict(state_dict), strict=strict, assign=assign)


# -- its batches (docs/tcaf.md 6) --------------------------------------------------------------------------

def train_batch(model: Multimodal_Sequence_Transformer, split, pos: Tensor, neg: Tensor, z_score: bool = False,
                generator: Optional[torch.Generator] = None,
                lengths: Optional[Tuple[int, int]] = None) -> TemporalBatch:
    """A training batch: the sampler's positives `pos` (its negatives are unused) collated with the
    training collation, random cuts from `generator` (the sampler's, saved for --resume); `max` mode
    pads to `lengths` (T_a, T_v) when given (`train_lengths`: no host sync)."""
    return temporal_batch(split, pos, model.train_collation, generator, lengths)


def train_lengths(model: Multimodal_Sequence_Transformer, split, pos: Tensor) -> Optional[Tensor]:
    """[n, 2] (T_a, T_v) of the n training batches of positives `pos` [n, B] in `max` mode, on the
    device (the epoch reads them at once); None in `fixed` mode (its lengths are fixed)."""
    if model.train_collation.mode != "max":
        return None
    return max_lengths(as_sequences(split.audio), as_sequences(split.video), pos)


def val_batch(model: Multimodal_Sequence_Transformer, split, idx: Tensor, neg: Optional[Tensor] = None,
              z_score: bool = False) -> TemporalBatch:
    """A batch of the validation loss: the samples `idx` with the test collation (timesteps in
    seconds, the val split's class matrix)."""
    return temporal_batch(split, idx, model.test_collation)


# the trainer's epoch and validation loss on these: the loss in eval mode over every val sample once,
# in batches of eval_bs, the mean per sample; the epoch's training batches padded to the lengths it
# reads at once (`train_lengths`)
TEMPORAL_BATCHES = Batches(train=train_batch, val=val_batch, val_chunk=lambda model: model.eval_bs,
                           lengths=train_lengths)


# -- the builder ------------------------------------------------------------------------------------

# The switches of the published configurations (docs/tcaf.md 3), the only ones implemented: flag -> value.
# A flag that is absent or None takes this value. (--optimizer adam-sam is implemented: src/models/sam.py.)
PUBLISHED_SWITCHES = {
    "transformer_use_embedding_net": True, "transformer_use_class_token": True, "use_cross_attention": True,
    "use_self_attention": False, "transformer_average_features": False, "audio_only": False,
    "video_only": False, "transformer_embedding_embed_augment_position": False,
    "transformer_embedding_modality": True, "transformer_embedding_time_embed_type": "sinusoid",
    "transformer_dim": TOKEN_DIM, "embeddings_batch_norm": True}
LOSS_FLAGS = ("rec_loss", "reg_loss", "cross_entropy_loss")      # absent or None: on (the published value)


def flag_value(args, name: str, published):
    value = vars(args)[name]
    return published if value is None else value


def check_published_switches(args) -> None:
    """UserError naming every switch set otherwise than in the published configurations."""
    wrong = {k: flag_value(args, k, v) for k, v in PUBLISHED_SWITCHES.items() if flag_value(args, k, v) != v}
    if wrong:
        got = ", ".join(f"--{k} {v}" for k, v in wrong.items())
        need = " ".join(f"--{k} {PUBLISHED_SWITCHES[k]}" for k in wrong)
        raise UserError(f"--new_model_sequence implements TCaF's published configuration only (docs/tcaf.md 3); got "
                        f"{got}: pass {need}, or a published config (--cfg config/best/best_cls/best_ucf.yaml)")
    if args.z_score_inputs:
        raise UserError("--new_model_sequence does not take --z_score_inputs: TCaF scales audio by 1/255 and "
                        "L2-normalises video over time (docs/tcaf.md 3.1)")
    if not any(flag_value(args, k, True) for k in LOSS_FLAGS):
        raise UserError("--new_model_sequence needs at least one of --rec_loss, --reg_loss, --cross_entropy_loss "
                        "(the published configurations use all three)")


# Its flags (src/args.py collects them through the registry).
IGNORED_FLAGS = ("transformer_embedding_time_len", "eval_num_workers", "mixup_parameter", "ct_loss", "w_loss",
                 "use_mixup", "perceiver", "attention_fusion", "new_model_attention", "eval_save_performances")
# The original's defaults of the switches whose default depends on the model (parser default None):
# a model whose entry gives none takes these (TCaF's entry gives the published configuration's).
ORIGINAL_DEFAULTS = {"rec_loss": False, "cross_entropy_loss": False, "transformer_use_embedding_net": False,
                     "use_self_attention": True, "transformer_embedding_time_embed_type": "fixed"}


def add_arguments(parser, entry_point: str) -> None:
    """TCaF's flags with the original's names and defaults (its config/default.yaml); get_evaluation.py
    takes its test collation, the stage-2 run's by default."""
    if entry_point == "get_evaluation.py":
        g = parser.add_argument_group("TCaF's evaluation batches (default: the stage-2 run's)")
        g.add_argument("--batch_seqlen_test", default=None, choices=["max", "fixed"])
        g.add_argument("--batch_seqlen_test_maxlen", type=positive_int, default=None)
        g.add_argument("--batch_seqlen_test_trim", default=None, choices=["random", "center"])
        return
    g = parser.add_argument_group("TCaF (--new_model_sequence; docs/tcaf.md)")
    for flag, kind, default, help_ in (
            ("transformer_dim", positive_int, 300, "token width"),
            ("transformer_depth", positive_int, 5, "transformer layers"),
            ("transformer_heads", positive_int, 4, "attention heads"),
            ("transformer_dim_head", positive_int, 64, "width of an attention head"),
            ("transformer_mlp_dim", positive_int, 128, "feed-forward width"),
            ("transformer_dropout", dropout, 0.5, "dropout of attention outputs and feed-forward"),
            ("transformer_embedding_dim", positive_int, 64, "width of the modality/time embeddings"),
            ("transformer_embedding_dropout", dropout, 0.1, "dropout after the token projections"),
            ("transformer_embedding_fourier_scale", positive_float, 10.0, "scale of the random Fourier time features"),
            ("transformer_embedding_time_len", positive_int, 200, IGNORED),
            ("batch_seqlen_train_maxlen", positive_int, 60, "video tokens of a training batch in fixed mode"),
            ("batch_seqlen_test_maxlen", positive_int, 60, "video tokens of an evaluation batch in fixed mode"),
            ("eval_bs", positive_int, 64, "samples per evaluation batch"),
            ("eval_num_workers", int, 8, IGNORED),
            ("mixup_parameter", float, 0.5, IGNORED)):
        g.add_argument(f"--{flag}", type=kind, default=default, help=help_)
    g.add_argument("--transformer_embedding_time_embed_type", default=None, choices=["none", "fixed", "sinusoid"],
                   help="time embedding; default fixed, sinusoid with --new_model_sequence (the best configurations' "
                        "and the one implemented)")
    for flag in ("batch_seqlen_train", "batch_seqlen_test"):
        g.add_argument(f"--{flag}", default="max", choices=["max", "fixed"],
                       help="max: pad a batch to its longest sequence; fixed: cut/pad the video to the maxlen")
    g.add_argument("--batch_seqlen_train_trim", default="random", choices=["random", "center"],
                   help="where a longer training video is cut in fixed mode")
    g.add_argument("--batch_seqlen_test_trim", default="center", choices=["random", "center"],
                   help="where a longer evaluation video is cut in fixed mode")
    g.add_argument("--optimizer", default="adam", choices=["adam", "adam-sam"],
                   help="adam (published), or adam-sam: SAM (rho 0.05) around Adam, two passes a step "
                        "(TCaF, ClipClap and HSP-MoE only; not with --compile, --amp, --cuda_graph)")
    for flag, default, help_ in (
            ("transformer_use_class_token", True, "read the class token (the best configurations)"),
            ("transformer_use_embedding_net", None,
             "encode tokens with the embedding nets; default False, True with --new_model_sequence"),
            ("transformer_embedding_modality", True, "add the modality embedding"),
            ("transformer_embedding_embed_augment_position", False, "not implemented (best: False)"),
            ("transformer_average_features", False, "not implemented (best: False)"),
            ("use_self_attention", None,
             "self-attention within a modality; default True, False with --new_model_sequence"),
            ("use_cross_attention", True, "cross-attention between modalities (best: True)"),
            ("audio_only", False, "not implemented (best: False)"),
            ("video_only", False, "not implemented (best: False)"),
            ("embeddings_batch_norm", True, "BatchNorm in TCaF's embedding nets"),
            ("rec_loss", None, "TCaF: reconstruction loss l_rec (on by default with --new_model_sequence)"),
            ("cross_entropy_loss", None, "TCaF: cross-entropy loss l_ce (on by default with --new_model_sequence)"),
            ("ct_loss", False, IGNORED), ("w_loss", False, IGNORED), ("use_mixup", False, IGNORED),
            ("selavi", False, "the features are SeLaVi's (TCaF's configs): when given, it must agree with "
                              "--feature_extraction_method (True for main_features*, False for the others)"),
            ("perceiver", False, IGNORED), ("attention_fusion", False, IGNORED),
            ("new_model_attention", False, IGNORED), ("eval_save_performances", False, IGNORED)):
        g.add_argument(f"--{flag}", type=bool_value, nargs="?", const=True, default=default, help=help_)


def finalize_args(args) -> None:
    """TCaF's switches left None by the chosen model's defaults take the original's."""
    for name, value in ORIGINAL_DEFAULTS.items():
        if vars(args)[name] is None:
            setattr(args, name, value)


@register_model("tcaf", flag="new_model_sequence", class_name="Multimodal_Sequence_Transformer",
                batches=TEMPORAL_BATCHES, temporal=True, first_epoch_defect=True,
                optimizers=OPTIMIZERS,
                defaults={**{k: PUBLISHED_SWITCHES[k] for k in ("transformer_use_embedding_net", "use_self_attention",
                                                                "transformer_embedding_time_embed_type")},
                          **{k: True for k in LOSS_FLAGS}},
                add_arguments=add_arguments, ignored_flags=IGNORED_FLAGS, finalize_args=finalize_args,
                help="TCaF: temporal and cross-modal attention over token sequences (docs/tcaf.md; "
                     "needs temporal features, *_non_averaged)")
def tcaf(args) -> Multimodal_Sequence_Transformer:
    check_published_switches(args)
    rate_audio, rate_video = modality_rates(family_of_args(args))
    return Multimodal_Sequence_Transformer(
        input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
        embeddings_hidden_size=args.embeddings_hidden_size, embedding_dropout=args.embedding_dropout,
        decoder_hidden_size=args.decoder_hidden_size, decoder_dropout=args.decoder_dropout,
        additional_dropout=args.additional_dropout, depth=args.transformer_depth, heads=args.transformer_heads,
        dim_head=args.transformer_dim_head, mlp_dim=args.transformer_mlp_dim,
        transformer_dropout=args.transformer_dropout, embedding_dim=args.transformer_embedding_dim,
        embedding_token_dropout=args.transformer_embedding_dropout,
        fourier_scale=args.transformer_embedding_fourier_scale,
        **{k: bool(flag_value(args, k, True)) for k in LOSS_FLAGS},
        seqlen_train=args.batch_seqlen_train, seqlen_train_maxlen=args.batch_seqlen_train_maxlen,
        seqlen_train_trim=args.batch_seqlen_train_trim, seqlen_test=args.batch_seqlen_test,
        seqlen_test_maxlen=args.batch_seqlen_test_maxlen, seqlen_test_trim=args.batch_seqlen_test_trim,
        rate_audio=rate_audio, rate_video=rate_video, eval_bs=args.eval_bs,
        text_dim=text_dim(args), optimizer=args.optimizer or "adam")
