"""ClipClap-GZSL (Kurzendörfer et al., CVPRW 2024), docs/clipclap.md: TCaF's training and evaluation with
a small MLP in place of the transformer, on one CLIP image vector and one WavCaps (CLAP) audio
vector per video, with [CLIP 512 || WavCaps 1024] class embeddings.

    o = [v || a]  -> O_enc (1536 -> 512) -> O_proj (512 -> 512 -> 64) = θ_o -> D_o (64 -> 512 -> 512) = ρ_o
    w             -> W_enc (1536 -> 512) = u -> W_proj (512 -> 64) = θ_w -> D_w (64 -> 512) = ρ_w
    loss = mse(u, ρ_o) + mse(u, ρ_w)  +  mse(θ_o, θ_w)  +  CE(θ_o · W_proj(W_enc(W_C))ᵀ, y)

The reconstruction target u = W_enc(w) is learned, its gradient flowing too [published
behaviour]. Evaluation: L2 distances between θ_o and W_proj(W_enc(w_c)) over the calibration
grid linspace(0, 5, 76) (docs/clipclap.md 7). State_dict names are the original's (56 keys,
`ClipClap_model_*.pt` run-folder files).
"""
import logging
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError
from .base import OPTIMIZERS, Batches, GZSLModel, adam_or_sam, distance_matrix, loss_and_parts, plateau
from .blocks import EmbeddingNet
from .flags import IGNORED, bool_value
from .registry import register_model, text_dim

log = logging.getLogger("avgzsl")

JOINT_DIM = 64
HIDDEN = 512                       # O_enc / W_enc outputs, D_o / D_w outputs
ENC_DROPOUT = 0.1                  # O_enc, W_enc: fixed in the original's code
ADAM_WEIGHT_DECAY = 1e-5
MODALITIES = ("both", "audio", "video")
WORD_EMBEDDINGS = ("both", "clip", "wavcaps")
MODALITY_PART = {"audio": "wavcaps", "video": "clip"}    # the class-vector part a single modality uses


def class_vector_part(modality: str, word_embeddings: str, clip_width: int = 512) -> slice:
    """The columns of the [CLIP clip_width || WavCaps] class vectors that W_enc reads, as the
    original: `--modality audio` the WavCaps part, `video` the CLIP part (whatever
    `--word_embeddings` says: the original ignores it there); `both` the `--word_embeddings` part
    (both: all, clip: the first clip_width, wavcaps: the rest)."""
    part = MODALITY_PART.get(modality, word_embeddings)
    return {"both": slice(None), "clip": slice(0, clip_width), "wavcaps": slice(clip_width, None)}[part]


@dataclass
class VectorBatch:
    """B samples: audio [B, D_a], video [B, D_v], their class vectors text [B, D_w], their position
    label [B] among the classes whose vectors are class_text [C, D_w] (the cross-entropy's)."""
    audio: Tensor
    video: Tensor
    text: Tensor
    label: Tensor
    class_text: Tensor


def vector_batch(split, idx: Tensor) -> VectorBatch:
    labels = split.labels[idx]
    return VectorBatch(split.audio[idx], split.video[idx], split.text[labels], labels, split.text)


class ClipClap_model(GZSLModel):  # noqa: N801 - the original's class name (run-folder file names)
    """ClipClap (docs/clipclap.md 4-5). One mode, reported as `both`. `modality` and `word_embeddings`
    choose the inputs (published: both and both; the others are the original's variants; with one
    modality the class-vector part is that modality's, `class_vector_part`): `clip_width` splits
    the class vector into its CLIP and WavCaps parts. `embeddings_batch_norm=False` builds O_proj,
    D_o, W_proj, D_w with the original's `use_bn=False` (only the hidden-layer form's first
    BatchNorm goes: O_proj and D_o with a decoder hidden layer). `optimizer`: "adam" (published)
    or "adam-sam" (SAM around Adam, src/models/sam.py)."""
    modes = ("both",)
    calibration = (0.0, 5.0, 76)

    def __init__(self, *, input_size_audio: int = 1024, input_size_video: int = 512, text_dim: int = 1536,
                 decoder_hidden_size: int = 512, decoder_dropout: float = 0.1, additional_dropout: float = 0.1,
                 modality: str = "both", word_embeddings: str = "both", clip_width: int = 512,
                 rec_loss: bool = True, reg_loss: bool = True, cross_entropy_loss: bool = True, eval_bs: int = 64,
                 embeddings_batch_norm: bool = True, optimizer: str = "adam"):
        super().__init__()
        if modality not in MODALITIES or word_embeddings not in WORD_EMBEDDINGS or optimizer not in OPTIMIZERS:
            raise ValueError(f"modality in {MODALITIES}, word_embeddings in {WORD_EMBEDDINGS}, "
                             f"optimizer in {OPTIMIZERS}")
        if word_embeddings != "both" and MODALITY_PART.get(modality, word_embeddings) != word_embeddings:
            log.warning("ClipClap --modality %s reads the %s part of the class vectors, as the original: "
                        "--word_embeddings %s is ignored", modality, MODALITY_PART[modality], word_embeddings)
        self.modality, self.eval_bs, self.optimizer_name = modality, eval_bs, optimizer
        self.text_slice = class_vector_part(modality, word_embeddings, clip_width)
        o_dim = {"both": input_size_video + input_size_audio, "audio": input_size_audio,
                 "video": input_size_video}[modality]
        w_dim = len(range(text_dim)[self.text_slice])
        bn = bool(embeddings_batch_norm)
        # creation order = docs/clipclap.md 4 (it fixes the default initialisation under a seed)
        self.O_enc = EmbeddingNet(o_dim, HIDDEN, ENC_DROPOUT)
        self.W_enc = EmbeddingNet(w_dim, HIDDEN, ENC_DROPOUT)
        self.O_proj = EmbeddingNet(HIDDEN, JOINT_DIM, decoder_dropout, hidden=decoder_hidden_size, use_bn=bn)
        self.D_o = EmbeddingNet(JOINT_DIM, HIDDEN, decoder_dropout, hidden=decoder_hidden_size, use_bn=bn)
        self.W_proj = EmbeddingNet(HIDDEN, JOINT_DIM, additional_dropout, use_bn=bn)
        self.D_w = EmbeddingNet(JOINT_DIM, HIDDEN, additional_dropout, use_bn=bn)
        self.losses_on = {"rec": rec_loss, "reg": reg_loss, "ce": cross_entropy_loss}

    # -- embeddings ------------------------------------------------------------------------------
    def inputs(self, audio: Tensor, video: Tensor) -> Tensor:
        """o [B, D_o]: CLIP first, then WavCaps (video cast to float32: stored as float16)."""
        video, audio = video.float(), audio.float()
        return {"both": lambda: torch.cat((video, audio), dim=1), "audio": lambda: audio,
                "video": lambda: video}[self.modality]()

    def class_embedding(self, text: Tensor) -> Tensor:
        """W_proj(W_enc(w)) [C, 64] of class vectors [C, D_w]."""
        return self.W_proj(self.W_enc(text[:, self.text_slice]))

    def get_embeddings(self, audio: Tensor, video: Tensor, text: Tensor) -> Tuple[Tensor, Tensor]:
        """θ_o [B, 64] of the samples and θ_w = W_proj(W_enc(text)) [C, 64]."""
        return self.O_proj(self.O_enc(self.inputs(audio, video))), self.class_embedding(text)

    # -- training --------------------------------------------------------------------------------
    def loss_parts(self, b: VectorBatch) -> Dict[str, Tensor]:
        """The three losses (docs/clipclap.md 5), modules in the original's order (it decides the dropout
        draws and the BatchNorm updates): O_enc, O_proj, D_o, W_enc, W_proj, D_w, then the class matrix."""
        theta_o = self.O_proj(self.O_enc(self.inputs(b.audio, b.video)))       # (B, 64)
        rho_o = self.D_o(theta_o)                                              # (B, 512)
        u = self.W_enc(b.text[:, self.text_slice])                             # (B, 512)
        theta_w = self.W_proj(u)                                               # (B, 64)
        rho_w = self.D_w(theta_w)                                              # (B, 512)
        on, zero = self.losses_on, theta_o.new_zeros(())
        return {"rec": F.mse_loss(u, rho_o) + F.mse_loss(u, rho_w) if on["rec"] else zero,
                "reg": F.mse_loss(theta_o, theta_w) if on["reg"] else zero,
                "ce": F.cross_entropy(theta_o @ self.class_embedding(b.class_text).t(), b.label) if on["ce"] else zero}

    def training_step(self, batch: VectorBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        """loss = l_rec + l_reg + l_ce of a VectorBatch."""
        return loss_and_parts(self.loss_parts(batch))

    @torch.no_grad()
    def after_optimizer_step(self, batch: VectorBatch) -> None:
        """The extra get_embeddings pass in train mode after each step, output discarded [published
        behaviour] (docs/tcaf.md 6): BatchNorm statistics of O_enc, O_proj, W_enc, W_proj, dropout draws
        (under --optimizer adam-sam the momenta are 0 here: the statistics stay, src.steps.sam_step)."""
        self.get_embeddings(batch.audio, batch.video, batch.text)

    def configure_optimizers(self, lr: float, lr_scheduler: bool = True):
        """Adam(lr, weight decay 1e-5) over every parameter (with "adam-sam": SAM around it);
        ReduceLROnPlateau(max, patience 3) with lr_scheduler (the published config: on), on Adam."""
        opt = adam_or_sam(self.optimizer_name, self.parameters(), lr=lr, weight_decay=ADAM_WEIGHT_DECAY)
        return opt, (plateau(opt) if lr_scheduler else None)

    # -- evaluation (docs/clipclap.md 7) ---------------------------------------------------------------
    @torch.no_grad()
    def eval_embeddings(self, audio: Tensor, video: Tensor, text: Tensor) -> Tuple[Tensor, Tensor]:
        return self.get_embeddings(audio, video, text)

    @torch.no_grad()
    def eval_distances(self, audio, video, text: Tensor, squared: bool = False) -> Dict[str, Tensor]:
        return {"both": distance_matrix(*self.get_embeddings(audio, video, text), squared)}


def train_batch(model: ClipClap_model, split, pos: Tensor, neg: Tensor, z_score: bool = False,
                generator: Optional[torch.Generator] = None, lengths=None) -> VectorBatch:
    """A training batch: the sampler's positives `pos` (its negatives are unused; vectors have no lengths)."""
    return vector_batch(split, pos)


def val_batch(model: ClipClap_model, split, idx: Tensor, neg: Optional[Tensor] = None,
              z_score: bool = False) -> VectorBatch:
    """A batch of the validation loss: the samples `idx` with the val split's class matrix."""
    return vector_batch(split, idx)


def add_arguments(parser, entry_point: str) -> None:
    """ClipClap's flags with the original's names (its config/clipclap.yaml and command lines); it also
    reads TCaF's (src/models/tcaf.py), as its code grew from TCaF's."""
    if entry_point != "main.py":
        return
    g = parser.add_argument_group("ClipClap (--clipclap; docs/clipclap.md)")
    g.add_argument("--use_wavcaps_embeddings", type=bool_value, nargs="?", const=True, default=True,
                   help="class vectors [CLIP || WavCaps] (the published True; False is not implemented)")
    g.add_argument("--modality", default="both", choices=["both", "audio", "video"],
                   help="the inputs: both (published), or only the WavCaps audio / CLIP image vector")
    g.add_argument("--word_embeddings", default="both", choices=["both", "clip", "wavcaps"],
                   help="the class-vector part: both (published), or only CLIP's / WavCaps'")
    g.add_argument("--best_model_criterion", default="score", choices=["score"],
                   help="the stage-1 checkpoint get_evaluation loads and stage 2's epoch (the published score)")
    g.add_argument("--data_parallel", type=bool_value, nargs="?", const=True, default=False, help=IGNORED)
    g.add_argument("--eval_modality", default=None, choices=["both", "audio", "video"],
                   help="ClipClap's evaluation modality: accepted, with no effect (ClipClap has one embedding, so "
                        "the audio, video and both evaluations are the same one)")


# TCaF's epoch on vectors (one Adam or SAM step a batch, then the extra get_embeddings pass), and its
# validation loss: the loss in eval mode over every val sample once, in batches of eval_bs, summed in
# float32 (as it always was: its logged numbers stay)
VECTOR_BATCHES = Batches(train=train_batch, val=val_batch, val_chunk=lambda model: model.eval_bs,
                         val_sum=torch.float32)


@register_model("clipclap", flag="clipclap", class_name="ClipClap_model", batches=VECTOR_BATCHES,
                vectors=True, optimizers=OPTIMIZERS,
                namespace_fields=("use_wavcaps_embeddings", "word_embeddings", "modality", "best_model_criterion",
                                  "data_parallel"), inherited_flags=("new_model_sequence",),
                defaults={"bs": 64, "rec_loss": True, "reg_loss": True, "cross_entropy_loss": True},
                add_arguments=add_arguments, ignored_flags=("data_parallel",),
                help="ClipClap: an MLP on CLIP image + CLAP (WavCaps) audio vectors with CLIP+CLAP class "
                     "embeddings (docs/clipclap.md; needs the CLIP/CLAP features)")
def clipclap(args) -> ClipClap_model:
    return ClipClap_model(**clipclap_kwargs(args, "--clipclap"))


def clipclap_kwargs(args, model_flag: str) -> dict:
    """ClipClap's keyword arguments from a Namespace, and its refusals (`model_flag` names the model in
    them; HSP-MoE, grown from ClipClap, is built from them too)."""
    if args.use_wavcaps_embeddings is False:
        raise UserError("--use_wavcaps_embeddings False is not implemented: the published runs use True "
                        "([CLIP || WavCaps] class embeddings); choose a part with --word_embeddings clip|wavcaps")
    if args.z_score_inputs:
        raise UserError(f"{model_flag} does not take --z_score_inputs (the original has no normalisation)")
    return dict(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
                text_dim=text_dim(args), decoder_hidden_size=args.decoder_hidden_size,
                decoder_dropout=args.decoder_dropout, additional_dropout=args.additional_dropout,
                modality=args.modality or "both", word_embeddings=args.word_embeddings or "both",
                rec_loss=bool(args.rec_loss), reg_loss=bool(args.reg_loss),
                cross_entropy_loss=bool(args.cross_entropy_loss), eval_bs=args.eval_bs,
                embeddings_batch_norm=args.embeddings_batch_norm is not False, optimizer=args.optimizer or "adam")
