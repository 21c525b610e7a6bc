"""f-VAEGAN-D2 (Xian et al., CVPR 2019) in the two-stage protocol (docs/models.md "f-VAEGAN-D2").

A conditional VAE-GAN learns to generate the audio-visual feature of a sample,
x = L2normalise(concat(a, v)) (audio first), from its class's word vector w. It is scored like
every other model: `eval_distances` returns, for the samples of a split and the split's
classes, the negative log-probabilities [N, C] of a linear softmax classifier (calibrated
stacking runs on them), and under the key `zsl` those of a second classifier over the unseen
classes alone (the ZSL column). Both classifiers (`SoftmaxClassifier`) are trained at evaluation
time, deterministically from the stored `eval_seed`, by the fit the model is given
(`fit_classifier`: the trainer's `src.steps.fit_classifier`, set by `src.steps.build_model`,
which training and evaluation build with; the model runs no optimiser loop of its own):
- GZSL: on the real features of the model's training classes that are classes of the split (a
  column of `text` is such a class when its word vector equals the training class's; the
  training features are `ctx.train` while fitting, and are read again from the run's dataset for
  a model restored from a checkpoint: `train`, or `train_val` when `trained_on_train_val`), and
  `syn_num` generated features for each other class of the split (the unseen classes);
- ZSL: on the generated features alone, over the unseen classes.
Their epoch counts (at most `--cls_epochs`) are chosen on `val` after every training epoch of
stage 1 (`choose_classifier_epochs`: GZSL by calibrated HM, ZSL by ZSL accuracy), saved with the
weights, and carried to the stage-2 model by get_evaluation.py (`adopt_stage_1_choices`).

Training: an epoch is `--n_batches` critic batches of `--bs` samples drawn by the class-balanced
sampler (docs/protocol.md 3); after every `--critic_iter` critic steps, one encoder/generator step on
the last critic batch. The VAE term is `vae_weight * (BCE + KL)` summed over the batch (docs/models.md).
Both steps are the trainer's (`EpochInputs.steps`): --amp and --cuda_graph apply to them, --compile
to the encoder/generator step (the critic's gradient penalty, a second derivative, is not one
torch.compile can differentiate).

Departures from the original script (docs/models.md):
- [original defect] its stray `break` trained one critic and one generator step per epoch; the
  original's epochs under `--reproduce_original`.
- [original defect] it chose the epoch (and the classifiers' epochs) on its evaluation split, the
  test set in stage 2; here stage 1 chooses them on `val`. The original's selection under
  `--test_selection`.

Shapes: B batch, N samples, C classes of a split, U unseen classes, D = D_a + D_v, T = text_dim the
class vectors' width (300 for word2vec, 1536 for CLIP+CLAP), L latent.
"""
import logging
import math
from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..families import WORD_DIM
from ..errors import UserError
from .base import EpochInputs, GZSLModel, PairBatch, adam
from .flags import nonnegative_float, positive_float, positive_int
from .fvaegan_selection import selection_callbacks
from .registry import register_model, text_dim

log = logging.getLogger("avgzsl")

ENC_HIDDEN, GEN_HIDDEN, CRITIC_HIDDEN = 300, 512, 512    # docs/models.md
GP_LAMBDA = 10.0        # gradient-penalty weight of both critics
D2_WEIGHT = 1.0         # the unconditional critic's loss next to the conditional one's


class Encoder(nn.Module):
    """E(x, w) -> (mu [B, L], log sigma^2 [B, L]); w [B, T]."""

    def __init__(self, x_dim: int, latent: int, text_dim: int = WORD_DIM):
        super().__init__()
        self.fc = nn.Linear(x_dim + text_dim, ENC_HIDDEN)
        self.mu = nn.Linear(ENC_HIDDEN, latent)
        self.logvar = nn.Linear(ENC_HIDDEN, latent)

    def forward(self, x: Tensor, w: Tensor) -> Tuple[Tensor, Tensor]:
        h = F.relu(self.fc(torch.cat((x, w), dim=1)))                 # (B, ENC_HIDDEN)
        return self.mu(h), self.logvar(h)


class Generator(nn.Module):
    """G(z, w) -> a feature in (0, 1)^D (Sigmoid output); w [B, T]."""

    def __init__(self, x_dim: int, latent: int, text_dim: int = WORD_DIM):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent + text_dim, GEN_HIDDEN), nn.ReLU(),
                                 nn.Linear(GEN_HIDDEN, x_dim), nn.Sigmoid())

    def forward(self, z: Tensor, w: Tensor) -> Tensor:
        return self.net(torch.cat((z, w), dim=1))                     # (B, D)


class Critic(nn.Module):
    """WGAN critic: D(x, w) when built with in_dim = D + T (the class vector's width), D2(x) with
    in_dim = D. Output [B]."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, CRITIC_HIDDEN), nn.LeakyReLU(0.2), nn.Linear(CRITIC_HIDDEN, 1))
        for m in self.net:
            if isinstance(m, nn.Linear):        # docs/models.md: critics N(0, 0.02), zero bias
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, w: Optional[Tensor] = None) -> Tensor:
        inp = x if w is None else torch.cat((x, w), dim=1)
        return self.net(inp)[:, 0]


def bce_sum(pred: Tensor, target: Tensor) -> Tensor:
    """Summed binary cross-entropy, PyTorch's formula (logs clamped at -100) without its check
    that targets lie in [0, 1]: features with negative values are accepted (and cannot be
    reconstructed by the Sigmoid generator; `fit` warns about them)."""
    return -(target * torch.log(pred).clamp(min=-100) + (1 - target) * torch.log1p(-pred).clamp(min=-100)).sum()


def vae_loss(recon: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> Tuple[Tensor, Tensor]:
    """(BCE, KL), each summed over the batch and the dimensions (docs/models.md: not divided by B)."""
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce_sum(recon, x), kl


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: mean (||grad critic(x_hat)||_2 - 1)^2 at random interpolates of real and fake."""
    alpha = torch.rand(real.shape[0], 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


class SoftmaxClassifier(nn.Module):
    """The evaluation's linear softmax classifier, x [B, D] -> logits [B, C] (docs/models.md):
    W [C, D] drawn N(0, 0.02) from `generator` when it is built, zero bias b [C], cross-entropy,
    Adam(lr, betas (0.5, 0.999)). The model defines it; the trainer's `fit_classifier` fits it."""

    def __init__(self, in_dim: int, num_classes: int, lr: float, generator: torch.Generator, device):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, in_dim, generator=generator, device=device) * 0.02)
        self.bias = nn.Parameter(torch.zeros(num_classes, device=device))
        self.lr = lr

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight.t() + self.bias                        # (B, C)

    def loss(self, batch: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Cross-entropy of a batch (x [B, D], labels [B]); no parts."""
        x, y = batch
        return F.cross_entropy(self(x), y), {}

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, betas=(0.5, 0.999))

    def weights(self) -> Tuple[Tensor, Tensor]:
        """W [C, D], b [C], detached (live while it is fitted: clone to keep them)."""
        return self.weight.detach(), self.bias.detach()


def train_softmax(x: Tensor, y: Tensor, num_classes: int, epochs: int, batch_size: int, lr: float,
                  generator: torch.Generator, fit: Callable, on_epoch=None) -> Tuple[Tensor, Tensor]:
    """A `SoftmaxClassifier` on x [N, D] -> labels y [N], fitted by `fit` (the trainer's
    `src.steps.fit_classifier`: `epochs` passes in batches of `batch_size`); randomness from
    `generator` only (W first, then the fit's order). Returns W [C, D], b [C];
    `on_epoch(epoch, W, b)` is called after each epoch (W, b live: clone to keep them)."""
    classifier = SoftmaxClassifier(x.shape[1], num_classes, lr, generator, x.device)
    fit(classifier, x, y, epochs, batch_size, generator,
        on_epoch=None if on_epoch is None else lambda epoch: on_epoch(epoch, *classifier.weights()))
    return classifier.weights()


def gzsl_distances(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """-log softmax [N, C] of a classifier W [C, D], b [C] on x [N, D]."""
    return -F.log_softmax(x @ weight.t() + bias, dim=1)


def zsl_distances(x: Tensor, weight: Tensor, bias: Tensor, unseen_cols: Tensor, num_classes: int) -> Tensor:
    """[N, C]: -log softmax of a classifier W [U, D], b [U] over the unseen columns, +inf elsewhere."""
    d = x.new_full((len(x), num_classes), math.inf)
    d[:, unseen_cols] = gzsl_distances(x, weight, bias)
    return d


class RealData(NamedTuple):
    """The real training features: x [N, D] (normalised), labels [N] rows of text [C_tr, T]."""
    x: Tensor
    labels: Tensor
    text: Tensor


class ClassifierData(NamedTuple):
    x: Tensor                # [M, D] real features then generated ones
    y: Tensor                # [M] column of the split's class
    n_real: int
    unseen_cols: Tensor      # [U] columns with generated features (classes not trained on)

    @property
    def zsl(self) -> Tuple[Tensor, Tensor]:
        """The generated features [U * syn_num, D] and their position [U * syn_num] among unseen_cols."""
        x_syn, y_syn = self.x[self.n_real:], self.y[self.n_real:]
        return x_syn, torch.searchsorted(self.unseen_cols, y_syn)


class Classifiers(NamedTuple):
    """The two softmax classifiers of a split: GZSL over its C classes, ZSL over its U unseen ones."""
    text: Tensor             # [C, T] the split's classes they were trained for
    gzsl: Tuple[Tensor, Tensor]                  # W [C, D], b [C]
    zsl: Optional[Tuple[Tensor, Tensor]]         # W [U, D], b [U] (None: no unseen class)
    unseen_cols: Tensor      # [U]


class OptimizerSet:
    """One Adam per network behind the optimiser methods the trainer and run folder use."""

    def __init__(self, optimizers: Dict[str, torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self):
        return [g for opt in self.optimizers.values() for g in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self, *names: str) -> None:
        for name in names:
            self.optimizers[name].step()

    def part(self, *names: str) -> "OptimizerPart":
        return OptimizerPart(self, names)

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


class OptimizerPart:
    """The optimiser of one of the two steps (critic: D and D2; encoder/generator: E and G): `step`
    steps its nets' Adams, `zero_grad` clears every net's gradients, as the set's does."""

    def __init__(self, optimizers: OptimizerSet, names: Tuple[str, ...]):
        self.optimizers, self.names = optimizers, names

    @property
    def param_groups(self):
        return [g for name in self.names for g in self.optimizers.optimizers[name].param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizers.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.optimizers.step(*self.names)


@dataclass
class GanBatch:
    """A batch of both steps: normalised features x [B, D] and their class vectors w [B, T]."""
    x: Tensor
    w: Tensor


class FVAEGAN(GZSLModel):
    """Encoder E, generator G, conditional critic D, unconditional critic D2 (in that order)."""

    def __init__(self, *, input_size_audio: int, input_size_video: int, latent_size: int = 300,
                 gan_weight: float = 1e5, vae_weight: float = 1.0, critic_iter: int = 5, syn_num: int = 1000,
                 cls_epochs: int = 30, cls_lr: float = 1e-3, seed: int = 42, trained_on_train_val: bool = False,
                 text_dim: int = WORD_DIM):
        super().__init__()
        x_dim = input_size_audio + input_size_video
        # text_dim: the class vectors' width, the condition of E, G and D (latent_size is separate)
        self.E = Encoder(x_dim, latent_size, text_dim)
        self.G = Generator(x_dim, latent_size, text_dim)
        self.D = Critic(x_dim + text_dim)
        self.D2 = Critic(x_dim)
        # saved with the weights: what evaluation needs to rebuild the same classifier
        self.register_buffer("eval_seed", torch.tensor(seed, dtype=torch.long))
        self.register_buffer("trained_on_train_val", torch.tensor(trained_on_train_val))
        # the classifiers' epoch counts, chosen on val in stage 1 (cls_epochs until then)
        self.register_buffer("cls_epochs_gzsl", torch.tensor(cls_epochs, dtype=torch.long))
        self.register_buffer("cls_epochs_zsl", torch.tensor(cls_epochs, dtype=torch.long))
        self.latent_size, self.gan_weight, self.vae_weight = latent_size, gan_weight, vae_weight
        self.critic_iter, self.syn_num, self.cls_epochs, self.cls_lr = critic_iter, syn_num, cls_epochs, cls_lr
        self._real: Optional[RealData] = None
        self._classifiers: Optional[Classifiers] = None     # of the last split evaluated

    # -- features, losses ------------------------------------------------------------------
    @staticmethod
    def features(audio: Tensor, video: Tensor) -> Tensor:
        return F.normalize(torch.cat((audio, video), dim=1), dim=1)      # (N, D), audio first

    def critic_loss(self, x: Tensor, w: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """WGAN-GP losses of D(x, w) and D2(x) against G(z, w) (G is not updated by it)."""
        fake = self.G(torch.randn(x.shape[0], self.latent_size, device=x.device), w).detach()
        wd = self.D(x, w).mean() - self.D(fake, w).mean()            # Wasserstein estimates
        wd2 = self.D2(x).mean() - self.D2(fake).mean()
        gp = gradient_penalty(lambda t: self.D(t, w), x, fake)
        gp2 = gradient_penalty(self.D2, x, fake)
        loss = (-wd + GP_LAMBDA * gp) + D2_WEIGHT * (-wd2 + GP_LAMBDA * gp2)
        return loss, {"critic": loss.detach(), "wasserstein": wd.detach(), "wasserstein_d2": wd2.detach()}

    def generator_loss(self, x: Tensor, w: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """gan_weight * (-D(recon, w) - D(G(z, w), w)) + vae_weight * (BCE + KL), for E and G."""
        mu, logvar = self.E(x, w)
        recon = self.G(mu + torch.randn_like(mu) * torch.exp(0.5 * logvar), w)
        fake = self.G(torch.randn_like(mu), w)
        bce, kl = vae_loss(recon, x, mu, logvar)
        gan = -self.D(recon, w).mean() - self.D(fake, w).mean()
        loss = self.gan_weight * gan + self.vae_weight * (bce + kl)
        return loss, {"gan": gan.detach(), "bce": bce.detach(), "kl": kl.detach()}

    def training_step(self, batch: PairBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The encoder/generator loss of the batch's positives (the negatives are not used)."""
        return self.generator_loss(self.features(batch.audio, batch.video), batch.text)

    @torch.no_grad()
    def reconstruction_loss(self, audio: Tensor, video: Tensor, w: Tensor) -> float:
        """BCE + KL per sample, decoding the mean mu (no sampling): the validation loss."""
        x = self.features(audio, video)
        mu, logvar = self.E(x, w)
        bce, kl = vae_loss(self.G(mu, w), x, mu, logvar)
        return float(bce + kl) / len(x)

    # -- evaluation --------------------------------------------------------------------------
    def train(self, mode: bool = True):
        if mode:                         # classifiers belong to one state of the generator
            self._classifiers = None
        return super().train(mode)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._classifiers = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def adopt_stage_1_choices(self, stage_1: "FVAEGAN") -> None:
        """The classifiers' epoch counts stage 1 chose on val (get_evaluation.py, before the test)."""
        self.cls_epochs_gzsl.copy_(stage_1.cls_epochs_gzsl)
        self.cls_epochs_zsl.copy_(stage_1.cls_epochs_zsl)
        self._classifiers = None

    def evaluation_needs_split(self) -> Optional[str]:
        """Its training split: the real features of its classifiers (src/two_stage.restore_model)."""
        return "train_val" if bool(self.trained_on_train_val) else "train"

    def attach_training_data(self, split) -> None:
        """The real training features (a SplitData), used by the evaluation classifiers."""
        x = self.features(split.audio, split.video)
        if self._real is None and bool((x < 0).any()):
            log.warning("f-VAEGAN-D2: the features have negative values, which its Sigmoid generator "
                        "cannot produce (docs/models.md); expect poor unseen-class features")
        self._real = RealData(x, split.labels, split.text)

    def real_data(self, device) -> RealData:
        if self._real is None:
            raise UserError("f-VAEGAN-D2 needs the real features of its training split to train its classifiers: "
                            "attach_training_data(split) first (src/two_stage.restore_model does)")
        return RealData(*(t.to(device) for t in self._real))

    @torch.no_grad()
    def generate(self, text: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """n normalised features per class vector of text [U, T] -> [U * n, D], class-major."""
        if text.shape[0] == 0 or n == 0:
            return text.new_zeros(0, self.G.net[-2].out_features)
        was_training = self.G.training
        self.G.eval()
        w = text.repeat_interleave(n, dim=0)                                     # (U*n, T)
        z = torch.randn(w.shape[0], self.latent_size, generator=generator, device=text.device)
        out = torch.cat([self.G(z[i:i + 65536], w[i:i + 65536]) for i in range(0, len(w), 65536)])
        self.G.train(was_training)
        return F.normalize(out, dim=1)

    def classifier_data(self, text: Tensor, generator: torch.Generator) -> ClassifierData:
        """Real features of the training classes among the columns of text [C, T], then syn_num
        generated features for each other column."""
        real = self.real_data(text.device)
        match = (text[:, None, :] == real.text[None, :, :]).all(dim=2)          # (C, C_tr)
        if not bool(match.any()):
            raise UserError("f-VAEGAN-D2: none of the evaluated classes is one of the model's training "
                            "classes (word vectors paired differently than in training? see "
                            "--reproduce_original)")
        col_of_train = torch.where(match.any(dim=0), match.to(torch.int64).argmax(dim=0), -1)   # (C_tr,)
        cols = col_of_train[real.labels]                                          # (N,)
        keep = cols >= 0
        unseen_cols = (~match.any(dim=1)).nonzero()[:, 0]                         # (U,)
        x_syn = self.generate(text[unseen_cols], self.syn_num, generator)
        y_syn = unseen_cols.repeat_interleave(self.syn_num)
        return ClassifierData(torch.cat((real.x[keep], x_syn)), torch.cat((cols[keep], y_syn)),
                              int(keep.sum()), unseen_cols)

    def classifier_fit(self) -> Callable:
        """The fit of the evaluation classifiers the model was given (`fit_classifier`)."""
        if self.fit_classifier is None:
            raise UserError("f-VAEGAN-D2's evaluation classifiers are fitted by the trainer's fit: set "
                            "model.fit_classifier = src.steps.fit_classifier first (src.steps.build_model "
                            "does)")
        return self.fit_classifier

    def _generator(self, device, stream: int) -> torch.Generator:
        """Stream 0 generates the features, 1 trains the GZSL classifier, 2 the ZSL one."""
        return torch.Generator(device=device).manual_seed(int(self.eval_seed) + stream)

    def train_classifiers(self, text: Tensor, gzsl_epochs: int, zsl_epochs: int, x: Optional[Tensor] = None,
                          on_gzsl=None, on_zsl=None) -> Classifiers:
        """The GZSL and ZSL classifiers over the classes of text [C, T], trained for the given
        epoch counts. With samples x [N, D], on_gzsl / on_zsl(epoch, distances [N, C]) are called
        after each epoch with the distances of x (`distances`'s both and zsl)."""
        dev = text.device
        data = self.classifier_data(text, self._generator(dev, 0))

        def watch(fn, to_distances):
            return None if fn is None else (lambda epoch, w, b: fn(epoch, to_distances(x, w, b)))

        fit = self.classifier_fit()
        gzsl = train_softmax(data.x, data.y, len(text), gzsl_epochs, self.syn_num, self.cls_lr,
                             self._generator(dev, 1), fit, on_epoch=watch(on_gzsl, gzsl_distances))
        zsl = None
        if len(data.unseen_cols):
            zsl = train_softmax(*data.zsl, len(data.unseen_cols), zsl_epochs, self.syn_num, self.cls_lr,
                                self._generator(dev, 2), fit,
                                on_epoch=watch(on_zsl, lambda x_, w, b: zsl_distances(x_, w, b, data.unseen_cols,
                                                                                       len(text))))
        return Classifiers(text.clone(), gzsl, zsl, data.unseen_cols)

    def classifiers(self, text: Tensor) -> Classifiers:
        """The classifiers over the classes of text [C, T] at the chosen epoch counts, cached
        until the model goes back to training or changes weights (evaluation calls it per chunk)."""
        cached = self._classifiers
        if cached is None or cached.text.shape != text.shape or not torch.equal(cached.text, text):
            self._classifiers = self.train_classifiers(text, int(self.cls_epochs_gzsl), int(self.cls_epochs_zsl))
        return self._classifiers

    @torch.no_grad()
    def eval_distances(self, audio, video, text, squared=False):
        """-log p(c | x) [N, C] of the GZSL classifier (one mode); `zsl`: the ZSL
        classifier's over the unseen columns, +inf elsewhere (`squared` does not apply)."""
        x, c = self.features(audio, video), self.classifiers(text)
        d = gzsl_distances(x, *c.gzsl)
        d_zsl = d.new_full(d.shape, math.inf) if c.zsl is None else \
            zsl_distances(x, *c.zsl, c.unseen_cols, len(text))
        return {"both": d, "zsl": d_zsl}

    @torch.no_grad()
    def choose_classifier_epochs(self, audio: Tensor, video: Tensor, text: Tensor,
                                 gzsl_score: Callable[[Tensor], float], zsl_score: Callable[[Tensor], float]) -> dict:
        """Train both classifiers for `cls_epochs` on the classes of a val split and keep, in
        `cls_epochs_gzsl` / `cls_epochs_zsl`, the epoch counts whose distances score highest (the
        first on ties). Returns {"gzsl": (score, epochs), "zsl": (score, epochs)}."""
        best = {"gzsl": (-math.inf, self.cls_epochs), "zsl": (-math.inf, self.cls_epochs)}

        def keep(kind, score):
            def on_epoch(epoch, distances):
                value = score(distances)
                if value > best[kind][0]:
                    best[kind] = (value, epoch + 1)
            return on_epoch

        self.train_classifiers(text, self.cls_epochs, self.cls_epochs, self.features(audio, video),
                               keep("gzsl", gzsl_score), keep("zsl", zsl_score))
        self.cls_epochs_gzsl.fill_(best["gzsl"][1])
        self.cls_epochs_zsl.fill_(best["zsl"][1])
        self._classifiers = None
        return best

    # -- training ----------------------------------------------------------------------------
    def configure_optimizers(self, lr: float, lr_scheduler: bool = False):
        """Adam(lr, betas (0.5, 0.999)) for each of E, G, D, D2; no scheduler (docs/models.md)."""
        return OptimizerSet({name: adam(getattr(self, name).parameters(), lr=lr, betas=(0.5, 0.999))
                             for name in ("E", "G", "D", "D2")}), None


def gan_epoch(inp: EpochInputs) -> Dict[str, float]:
    """f-VAEGAN-D2's epoch (the trainer's `epoch_fn`): `n_batches` class-balanced critic batches of
    `bs` from the sampler, an encoder/generator step after every `critic_iter` of them (and after
    the last), both the trainer's steps (`inp.steps`); in stage 1 the classifiers' epoch counts are
    then chosen on val. Batch indices come from the sampler, noise from the global RNG: both are in
    the trainer's resume state."""
    model, opt = inp.model, inp.optimizer
    model.train()
    model.attach_training_data(inp.train)
    x = model.features(inp.train.audio, inp.train.video)                    # (N, D)
    w = inp.train.text[inp.train.labels]                                    # (N, T)
    if inp.reproduce_original:     # [original defect] docs/models.md: a stray break, one step per epoch
        n_batches, critic_iter = 1, 1
    else:
        n_batches, critic_iter = inp.n_batches, model.critic_iter
    batches = inp.sampler.draw(n_batches * inp.bs)[0].view(n_batches, inp.bs)     # positives only
    # the critic's gradient penalty differentiates twice, which torch.compile cannot: eager under --compile
    critic = inp.steps("critic", lambda b: model.critic_loss(b.x, b.w), opt.part("D", "D2"), compilable=False)
    generator = inp.steps("generator", lambda b: model.generator_loss(b.x, b.w), opt.part("E", "G"))
    sums: Dict[str, Tensor] = {}
    steps = 0
    for i, idx in enumerate(batches):
        batch = GanBatch(x[idx], w[idx])
        loss_d, parts_d = critic(batch)
        if (i + 1) % critic_iter and i + 1 < n_batches:
            continue
        loss_g, parts_g = generator(batch)                 # on the group's last critic batch
        steps += 1
        for k, v in {"loss": loss_g.detach(), **parts_g, **parts_d}.items():
            sums[k] = sums[k] + v if k in sums else v.clone()
    stats = {k: float(v) / steps for k, v in sums.items()}
    if not all(math.isfinite(v) for v in stats.values()):
        raise UserError(f"non-finite f-VAEGAN-D2 loss at epoch {inp.epoch + 1} ({stats}): try a lower --lr or "
                        f"--gan_weight; the run folder keeps the last finished epoch")
    if not inp.retrain_all:        # stage 1: the classifiers' epoch counts, on val
        val = inp.val
        model.eval()
        best = model.choose_classifier_epochs(val.audio, val.video, val.text,
                                              gzsl_score=lambda d: inp.val_metrics(d)["hm"],
                                              zsl_score=lambda d: inp.val_metrics(d)["zsl"])
        log.debug("classifier epochs chosen on val: GZSL %d (HM %.4f), ZSL %d (ZSL %.4f)", best["gzsl"][1],
                  best["gzsl"][0], best["zsl"][1], best["zsl"][0])
    return stats


def reconstruction_val_loss(model: FVAEGAN, val) -> float:
    """The validation loss (the trainer's `val_loss_fn`): BCE + KL per val sample, decoding mu."""
    model.eval()
    loss = model.reconstruction_loss(val.audio, val.video, val.text[val.labels])
    model.train()
    return loss


# -- its flags and the builder -----------------------------------------------------------------------

def add_arguments(parser, entry_point: str) -> None:
    """f-VAEGAN-D2's flags (main.py)."""
    if entry_point != "main.py":
        return
    g = parser.add_argument_group("f-VAEGAN-D2 (--fvaegan; docs/models.md \"f-VAEGAN-D2\")")
    g.add_argument("--syn_num", type=positive_int, default=1000,
                   help="generated features per unseen class for the softmax classifier")
    g.add_argument("--critic_iter", type=positive_int, default=5,
                   help="critic batches per generator step: an epoch is --n_batches class-balanced critic "
                        "batches of --bs, with a generator step after every --critic_iter of them ([original "
                        "defect] under --reproduce_original: one critic and one generator step per epoch, the "
                        "original's stray break)")
    g.add_argument("--gan_weight", type=nonnegative_float, default=1e5, help="weight of the generator's WGAN loss")
    g.add_argument("--vae_weight", type=nonnegative_float, default=1.0, help="weight of the VAE loss (BCE + KL)")
    g.add_argument("--latent_size", type=positive_int, default=300, help="size of the VAE latent / generator noise")
    g.add_argument("--cls_epochs", type=positive_int, default=30,
                   help="most epochs of the softmax classifiers (GZSL and ZSL); stage 1 chooses each one's count "
                        "on val after every epoch, get_evaluation.py carries it to the stage-2 model")
    g.add_argument("--cls_lr", type=positive_float, default=1e-3, help="learning rate of the softmax classifier")
    g.add_argument("--test_selection", action="store_true",
                   help="[original defect] also evaluate every epoch on the run's evaluation split (val in "
                        "stage 1, test in stage 2) as the original did: uncalibrated argmax, the classifiers' "
                        "best epochs on that split, and the best epoch by GZSL HM; writes "
                        "test_selection.json. Numbers chosen on the test set: only to reproduce the seed's table")


def finalize_args(args) -> None:
    """--test_selection is f-VAEGAN-D2's alone."""
    if args.test_selection and args.model_name != "fvaegan":
        raise UserError("--test_selection reproduces f-VAEGAN-D2's original epoch choice: use it with --fvaegan")


@register_model("fvaegan", flag="fvaegan", class_name="FVAEGAN", defaults={"bs": 64}, epoch_fn=gan_epoch,
                val_loss_fn=reconstruction_val_loss,
                add_arguments=add_arguments, finalize_args=finalize_args, callbacks=selection_callbacks,
                help="f-VAEGAN-D2: a feature-generating VAE-GAN with a softmax classifier (docs/models.md)")
def fvaegan(args) -> FVAEGAN:
    if args.z_score_inputs:
        raise UserError("--fvaegan does not take --z_score_inputs: it L2-normalises concat(audio, video) "
                        "and generates features in (0, 1)")
    return FVAEGAN(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
                   latent_size=args.latent_size, gan_weight=args.gan_weight, vae_weight=args.vae_weight,
                   critic_iter=args.critic_iter, syn_num=args.syn_num, cls_epochs=args.cls_epochs,
                   cls_lr=args.cls_lr, seed=args.seed, trained_on_train_val=bool(args.retrain_all),
                   text_dim=text_dim(args))
