"""f-VAEGAN-D2 (Xian et al., CVPR 2019) in the two-stage protocol (MODELS.md "f-VAEGAN-D2").

A conditional VAE-GAN learns to generate the audio-visual feature of a sample,
x = L2normalise(concat(a, v)) (audio first), from its class's word vector w. It is scored like
every other model: `eval_distances` returns, for the samples of a split and the split's
classes, the negative log-probabilities [N, C] of a linear softmax classifier, and calibrated
stacking runs on them. The classifier is trained at evaluation time, deterministically from the
stored `eval_seed`, on
- the real features of the model's training classes that are classes of the split (a column of
  `text` is such a class when its word vector equals the training class's; the training
  features are `ctx.train` while fitting, and are read again from the run's dataset for a
  model restored from a checkpoint: `train`, or `train_val` when `trained_on_train_val`), and
- `syn_num` generated features for each other class of the split (the unseen classes).
So a stage-1 checkpoint scores `val`, a stage-2 checkpoint scores `test`, and the numbers of
get_evaluation.py are those of the training-time validation for the same checkpoint.

Departures from the original script (MODELS.md):
- [original defect] its stray `break` trained one critic and one generator step per epoch; here
  an epoch is one pass over the training samples in batches of `--bs` (at most `--n_batches`
  generator steps), each generator step after `--critic_iter` critic steps. The original's
  epochs under `--reproduce_original`.
- [original defect] it chose the epoch (and the classifier's epoch) on its evaluation split, the
  test set in stage 2; here stage 1 chooses the epoch on `val` and the classifier trains for a
  fixed `--cls_epochs`. The original's selection under `--test_selection`.
- ZSL: like every model here, the classifier's scores restricted to the unseen classes (the
  original trained a second classifier on generated features alone; `--test_selection` does).

Shapes: B batch, N samples, C classes of a split, D = D_a + D_v, 300 word dims, L latent.
"""
import logging
import math
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from .base import GZSLModel, PairBatch
from .registry import register_model

log = logging.getLogger("avgzsl")

WORD_DIM = 300
ENC_HIDDEN, GEN_HIDDEN, CRITIC_HIDDEN = 300, 512, 512    # MODELS.md
GP_LAMBDA = 10.0        # gradient-penalty weight of both critics
D2_WEIGHT = 1.0         # the unconditional critic's loss next to the conditional one's


class Encoder(nn.Module):
    """E(x, w) -> (mu [B, L], log sigma^2 [B, L])."""

    def __init__(self, x_dim: int, latent: int):
        super().__init__()
        self.fc = nn.Linear(x_dim + WORD_DIM, ENC_HIDDEN)
        self.mu = nn.Linear(ENC_HIDDEN, latent)
        self.logvar = nn.Linear(ENC_HIDDEN, latent)

    def forward(self, x: Tensor, w: Tensor) -> Tuple[Tensor, Tensor]:
        h = F.relu(self.fc(torch.cat((x, w), dim=1)))                 # (B, 300)
        return self.mu(h), self.logvar(h)


class Generator(nn.Module):
    """G(z, w) -> a feature in (0, 1)^D (Sigmoid output)."""

    def __init__(self, x_dim: int, latent: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent + WORD_DIM, GEN_HIDDEN), nn.ReLU(),
                                 nn.Linear(GEN_HIDDEN, x_dim), nn.Sigmoid())

    def forward(self, z: Tensor, w: Tensor) -> Tensor:
        return self.net(torch.cat((z, w), dim=1))                     # (B, D)


class Critic(nn.Module):
    """WGAN critic: D(x, w) when built with the word vector's width, D2(x) without. Output [B]."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, CRITIC_HIDDEN), nn.LeakyReLU(0.2), nn.Linear(CRITIC_HIDDEN, 1))
        for m in self.net:
            if isinstance(m, nn.Linear):        # MODELS.md: critics N(0, 0.02), zero bias
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
    """(BCE summed, KL) per sample of the batch, as f-VAEGAN's reference code."""
    b = x.shape[0]
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce_sum(recon, x) / b, kl / b


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: mean (||grad critic(x_hat)||_2 - 1)^2 at random interpolates of real and fake."""
    alpha = torch.rand(real.shape[0], 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


def train_softmax(x: Tensor, y: Tensor, num_classes: int, epochs: int, batch_size: int, lr: float,
                  generator: torch.Generator, on_epoch=None) -> Tuple[Tensor, Tensor]:
    """Linear softmax classifier on x [N, D] -> labels y [N] (MODELS.md: N(0, 0.02) init, zero
    bias, Adam(lr, beta1 0.5)); randomness from `generator` only. Returns W [C, D], b [C];
    `on_epoch(epoch, W, b)` is called after each epoch."""
    dev = x.device
    weight = (torch.randn(num_classes, x.shape[1], generator=generator, device=dev) * 0.02).requires_grad_()
    bias = torch.zeros(num_classes, device=dev, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr, betas=(0.5, 0.999))
    with torch.enable_grad():
        for epoch in range(epochs):
            perm = torch.randperm(len(x), generator=generator, device=dev)
            for i in range(0, len(x), batch_size):
                idx = perm[i:i + batch_size]
                loss = F.cross_entropy(x[idx] @ weight.t() + bias, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if on_epoch is not None:
                on_epoch(epoch, weight.detach(), bias.detach())
    return weight.detach(), bias.detach()


class RealData(NamedTuple):
    """The real training features: x [N, D] (normalised), labels [N] rows of text [C_tr, 300]."""
    x: Tensor
    labels: Tensor
    text: Tensor


class ClassifierData(NamedTuple):
    x: Tensor                # [M, D] real features then generated ones
    y: Tensor                # [M] column of the split's class
    n_real: int
    unseen_cols: Tensor      # [U] columns with generated features (classes not trained on)


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

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


class FVAEGAN(GZSLModel):
    """Encoder E, generator G, conditional critic D, unconditional critic D2 (in that order)."""

    def __init__(self, input_size_audio: int, input_size_video: int, latent_size: int = 300,
                 gan_weight: float = 1e5, vae_weight: float = 1.0, critic_iter: int = 5, syn_num: int = 1000,
                 cls_epochs: int = 30, cls_lr: float = 1e-3, seed: int = 42,
                 data_source: Optional[Callable[[str], object]] = None):
        super().__init__()
        x_dim = input_size_audio + input_size_video
        self.E = Encoder(x_dim, latent_size)
        self.G = Generator(x_dim, latent_size)
        self.D = Critic(x_dim + WORD_DIM)
        self.D2 = Critic(x_dim)
        # saved with the weights: what evaluation needs to rebuild the same classifier
        self.register_buffer("eval_seed", torch.tensor(seed, dtype=torch.long))
        self.register_buffer("trained_on_train_val", torch.tensor(False))
        self.latent_size, self.gan_weight, self.vae_weight = latent_size, gan_weight, vae_weight
        self.critic_iter, self.syn_num, self.cls_epochs, self.cls_lr = critic_iter, syn_num, cls_epochs, cls_lr
        self._data_source = data_source          # split name -> SplitData (a restored model's real data)
        self._real: Optional[RealData] = None
        self._classifier = None                  # (text [C, 300], W [C, D], b [C]) of the last split

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
        return float(bce + kl)

    # -- evaluation --------------------------------------------------------------------------
    def train(self, mode: bool = True):
        self._classifier = None          # a classifier belongs to one state of the generator
        return super().train(mode)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._classifier = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def attach_training_data(self, split) -> None:
        """The real training features (a SplitData), used by the evaluation classifier."""
        self._real = RealData(self.features(split.audio, split.video), split.labels, split.text)

    def real_data(self, device) -> RealData:
        if self._real is None:
            name = "train_val" if bool(self.trained_on_train_val) else "train"
            if self._data_source is None:
                raise UserError(f"f-VAEGAN-D2 needs the real features of its training split ({name}) to "
                                f"train its classifier: build the model with create_model(name, args)")
            self.attach_training_data(self._data_source(name))
        return RealData(*(t.to(device) for t in self._real))

    @torch.no_grad()
    def generate(self, text: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """n normalised features per word vector of text [U, 300] -> [U * n, D], class-major."""
        if text.shape[0] == 0 or n == 0:
            return text.new_zeros(0, self.G.net[-2].out_features)
        was_training = self.G.training
        self.G.eval()
        w = text.repeat_interleave(n, dim=0)                                     # (U*n, 300)
        z = torch.randn(w.shape[0], self.latent_size, generator=generator, device=text.device)
        out = torch.cat([self.G(z[i:i + 65536], w[i:i + 65536]) for i in range(0, len(w), 65536)])
        self.G.train(was_training)
        return F.normalize(out, dim=1)

    def classifier_data(self, text: Tensor, generator: torch.Generator) -> ClassifierData:
        """Real features of the training classes among the columns of text [C, 300], then syn_num
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

    def _generator(self, device) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(int(self.eval_seed))

    def classifier(self, text: Tensor) -> Tuple[Tensor, Tensor]:
        """The softmax classifier (W [C, D], b [C]) over the classes of text [C, 300], cached
        until the model changes mode or weights (evaluation calls it once per chunk)."""
        cached = self._classifier
        if cached is not None and cached[0].shape == text.shape and torch.equal(cached[0], text):
            return cached[1], cached[2]
        g = self._generator(text.device)
        data = self.classifier_data(text, g)
        weight, bias = train_softmax(data.x, data.y, len(text), self.cls_epochs, self.syn_num, self.cls_lr, g)
        self._classifier = (text.clone(), weight, bias)
        return weight, bias

    @torch.no_grad()
    def eval_distances(self, audio, video, text, squared=False):
        """-log p(c | x) [N, C] of the classifier (`squared` does not apply), one mode as all three."""
        weight, bias = self.classifier(text)
        d = -F.log_softmax(self.features(audio, video) @ weight.t() + bias, dim=1)
        return {"audio": d, "video": d, "both": d}

    @torch.no_grad()
    def original_scores(self, split) -> Dict[str, float]:
        """[original defect] The original's numbers on `split` itself (MODELS.md): GZSL by the
        classifier's argmax (no calibration) at its best epoch by HM on the split, ZSL by a
        classifier over the unseen classes trained on generated features alone, best epoch."""
        from ..evaluate import harmonic_mean, per_class_recall     # metrics, imported where used

        x = self.features(split.audio, split.video)
        labels, seen, c = split.labels, split.seen_mask, len(split.class_ids)
        g = self._generator(x.device)
        data = self.classifier_data(split.text, g)
        best = {"seen": 0.0, "unseen": 0.0, "hm": -1.0, "zsl": 0.0}

        def gzsl_epoch(_, weight, bias):
            recall = per_class_recall((x @ weight.t() + bias).argmax(dim=1), labels, c)
            s, u = recall[seen].mean(), recall[~seen].mean() if bool((~seen).any()) else torch.zeros(())
            h = float(harmonic_mean(s, u))
            if h > best["hm"]:
                best.update(seen=float(s), unseen=float(u), hm=h)

        train_softmax(data.x, data.y, c, self.cls_epochs, self.syn_num, self.cls_lr, g, on_epoch=gzsl_epoch)
        u_cols = (~seen).nonzero()[:, 0]
        if len(u_cols) and len(data.unseen_cols):
            position = torch.full((c,), -1, dtype=torch.long, device=x.device)
            position[u_cols] = torch.arange(len(u_cols), device=x.device)
            syn_y = position[data.y[data.n_real:]]
            keep = syn_y >= 0
            is_unseen = ~seen[labels]

            def zsl_epoch(_, weight, bias):
                pred = (x[is_unseen] @ weight.t() + bias).argmax(dim=1)
                best["zsl"] = max(best["zsl"], float(per_class_recall(pred, position[labels[is_unseen]],
                                                                      len(u_cols)).mean()))

            train_softmax(data.x[data.n_real:][keep], syn_y[keep], len(u_cols), self.cls_epochs, self.syn_num,
                          self.cls_lr, g, on_epoch=zsl_epoch)
        return best

    # -- training ----------------------------------------------------------------------------
    def configure_optimizers(self, args):
        """Adam(lr, betas (0.5, 0.999)) for each of E, G, D, D2; no scheduler."""
        return OptimizerSet({name: torch.optim.Adam(getattr(self, name).parameters(), lr=args.lr, betas=(0.5, 0.999))
                             for name in ("E", "G", "D", "D2")}), None

    def fit(self, ctx) -> dict:
        """Own epochs (`GANEpochs`) inside the project's fit loop (validation, checkpoints, logs, resume)."""
        from ..train import Trainer        # imported here: model files sit below the trainer
        self.trained_on_train_val.fill_(bool(ctx.args.retrain_all))
        self.eval_seed.fill_(int(ctx.args.seed))
        self.attach_training_data(ctx.train)
        if bool((self._real.x < 0).any()):
            log.warning("f-VAEGAN-D2: the features have negative values, which its Sigmoid generator "
                        "cannot produce (MODELS.md); expect poor unseen-class features")
        trainer = type("FVAEGANTrainer", (GANEpochs, Trainer), {})(ctx)
        return trainer.fit()


class GANEpochs:
    """f-VAEGAN-D2's epochs, mixed into `src.train.Trainer` (which keeps validation, checkpoints,
    logs and --resume). Batch indices come from the trainer's sampler generator, noise from the
    global RNG: both are part of the resume state."""

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        ctx, a, model, opt = self.ctx, self.ctx.args, self.ctx.model, self.ctx.optimizer
        model.train()
        x = model.features(ctx.train.audio, ctx.train.video)                   # (N, D)
        w = ctx.train.text[ctx.train.labels]                                   # (N, 300)
        n = len(x)
        if a.reproduce_original:       # [original defect] MODELS.md: a stray break, one step per epoch
            steps, critic_iter = 1, 1
        else:
            steps, critic_iter = min(a.n_batches, math.ceil(n / a.bs)), model.critic_iter
        sums: Dict[str, Tensor] = {}
        for _ in range(steps):
            for _ in range(critic_iter):
                idx = torch.randperm(n, generator=self.sampler.generator, device=ctx.device)[:a.bs]
                loss_d, parts_d = model.critic_loss(x[idx], w[idx])
                opt.zero_grad()
                loss_d.backward()
                opt.step("D", "D2")
            loss_g, parts_g = model.generator_loss(x[idx], w[idx])
            opt.zero_grad()
            loss_g.backward()
            opt.step("E", "G")
            for k, v in {"loss": loss_g.detach(), **parts_g, **parts_d}.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
        stats = {k: float(v) / steps for k, v in sums.items()}
        if not all(math.isfinite(v) for v in stats.values()):
            raise UserError(f"non-finite f-VAEGAN-D2 loss at epoch {epoch + 1} ({stats}): try a lower --lr or "
                            f"--gan_weight; {ctx.run.path} keeps the last finished epoch")
        return stats

    def validation_loss(self) -> float:
        model, val = self.ctx.model, self.ctx.val
        model.eval()
        loss = model.reconstruction_loss(val.audio, val.video, val.text[val.labels])
        model.train()
        return loss

    # -- [original defect] --test_selection: the original's choice on the evaluation split ----
    def log_epoch(self, epoch, *rest) -> None:
        super().log_epoch(epoch, *rest)
        if self.ctx.args.test_selection:
            self.select_on_evaluation_split(epoch)

    def select_on_evaluation_split(self, epoch: int) -> None:
        import json
        from ..data import dataset_from_args
        from ..evaluate import format_line
        from ..io_utils import atomic_write_json

        ctx = self.ctx
        path = ctx.run.path / "test_selection.json"
        if not hasattr(self, "selection"):
            self.selection = json.loads(path.read_text()) if ctx.resuming and path.exists() else None
            name = "test" if ctx.args.retrain_all else "val"
            self.selection_split = ctx.val if name == "val" else dataset_from_args(ctx.args).split(name).to(ctx.device)
        ctx.model.eval()
        r = ctx.model.original_scores(self.selection_split)
        ctx.model.train()
        log.info("epoch %d on %s (original selection): %s", epoch + 1, self.selection_split.name, format_line(r))
        if self.selection is None or r["hm"] > self.selection["hm"]:
            self.selection = {**r, "epoch": epoch + 1, "split": self.selection_split.name, "line": format_line(r)}
            atomic_write_json(self.selection, path)

    def fit(self) -> dict:
        out = super().fit()
        if self.ctx.args.test_selection and getattr(self, "selection", None):
            log.info("best epoch %d on %s (original selection, chosen on that split):", self.selection["epoch"],
                     self.selection["split"])
            print(self.selection["line"])
            out["test_selection"] = self.selection
        return out


@register_model("fvaegan", flag="fvaegan", class_name="FVAEGAN", defaults={"bs": 64},
                help="f-VAEGAN-D2: a feature-generating VAE-GAN with a softmax classifier (MODELS.md)")
def fvaegan(args) -> FVAEGAN:
    if getattr(args, "z_score_inputs", False):
        raise UserError("--fvaegan does not take --z_score_inputs: it L2-normalises concat(audio, video) "
                        "and generates features in (0, 1)")

    for flag in ("critic_iter", "syn_num", "cls_epochs", "latent_size"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be >= 1, got {getattr(args, flag)}")

    def data_source(split: str):
        from ..data import dataset_from_args
        return dataset_from_args(args).split(split)

    return FVAEGAN(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
                   latent_size=args.latent_size, gan_weight=args.gan_weight, vae_weight=args.vae_weight,
                   critic_iter=args.critic_iter, syn_num=args.syn_num, cls_epochs=args.cls_epochs,
                   cls_lr=args.cls_lr, seed=args.seed, data_source=data_source)
