"""HSP-MoE's model core (docs/hspmoe.md 2-6): state_dict keys and size, the original's construction order,
each loss term and FAR against a hand computation on small tensors, each ablation switch changing only
its own term, a few steps lowering the loss, and the training-free CLIP/CLAP row: its distances, and its runs
with nothing to train."""
import json
import math
import re
from argparse import Namespace

import pytest
import torch
import yaml

from conftest import REFERENCE, ROOT
from src.errors import UserError
from src.models import hspmoe
from src.models.blocks import EmbeddingNet
from src.models.clipclap import ClipClap_model, VectorBatch
from src.models.frozen_clipclap import FrozenClipClap, frozen_distances, raw_distances
from src.models.hspmoe import ABLATIONS, FLAGS, RECIPE, HSPMoE, HypersphericalConsensusRouting

SPEC = ROOT.parent / "shared" / "spec" / "HSPMOE.md"
CLIPCLAP_FIELDS = dict(input_size_audio=1024, input_size_video=512, text_dim=1536, decoder_hidden_size=512,
                       decoder_dropout=0.1, additional_dropout=0.1, rec_loss=True, reg_loss=True,
                       cross_entropy_loss=True, eval_bs=64, modality="both", word_embeddings="both")
SWITCHES = ("hypersphere", "dp", "rp", "hup", "far", "av_moe")


def namespace(**flags) -> Namespace:
    """main.py's arguments of an HSP-MoE run on the CLIP/CLAP vectors, `flags` replaced."""
    from src.args import finalize_main_args, get_main_parser
    args = finalize_main_args(get_main_parser().parse_args(["--root_dir", "x", "--dataset_name", "UCF", "--hspmoe"]))
    vars(args).update({**CLIPCLAP_FIELDS, **flags})
    return args


def batch(b=8, c=4, seed=1) -> VectorBatch:
    """B samples of C classes (each class twice at least), unit-norm parts as the stored features, video float16."""
    g = torch.Generator().manual_seed(seed)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s, generator=g), dim=-1)  # noqa: E731
    class_text = torch.cat((unit(c, 512), unit(c, 1024)), dim=1)
    label = torch.arange(b) % c
    return VectorBatch(audio=unit(b, 1024), video=unit(b, 512).half(), text=class_text[label], label=label,
                       class_text=class_text)


def no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def flags_of(switches) -> dict:
    """HSPMoE keyword arguments: the recipe's settings with exactly `switches` on."""
    return {**hspmoe.hspmoe_kwargs(RECIPE), **{s: s in switches for s in SWITCHES}}


# -- state_dict, size, construction order (docs/hspmoe.md 2.1, 2.5) ----------------------------------------

MOE_SHAPES = {
    "video_router_proj": [(64, 512), (64,)], "audio_router_proj": [(64, 1024), (64,)],
    "multimodal_experts.0.0": [(128, 1536), (128,)], "multimodal_experts.0.1": [(128,), (128,)],
    "multimodal_experts.0.4": [(64, 128), (64,)],
    "singlemodal_experts.0.0": [(128, 512), (128,)], "singlemodal_experts.0.1": [(128,), (128,)],
    "singlemodal_experts.0.4": [(64, 128), (64,)],
    "singlemodal_experts.1.0": [(128, 1024), (128,)], "singlemodal_experts.1.1": [(128,), (128,)],
    "singlemodal_experts.1.4": [(64, 128), (64,)],
    "router.0": [(128, 128), (128,)], "router.3": [(32, 128), (32,)], "router.5": [(3, 32), (3,)],
}


def test_the_recipe_model_has_the_spec_keys_and_size():
    model = hspmoe.hspmoe(namespace(**RECIPE))
    state = model.state_dict()
    assert len(state) == 84 and sum(p.numel() for p in model.parameters()) == 2_776_131
    assert list(dict.fromkeys(k.split(".")[0] for k in state)) == \
        ["O_enc", "W_enc", "semantic_consensus", "O_proj", "D_o", "W_proj", "D_w"]
    moe = {k.removeprefix("semantic_consensus."): tuple(v.shape) for k, v in state.items()
           if k.startswith("semantic_consensus.")}
    assert moe == {f"{name}.{p}": shape for name, shapes in MOE_SHAPES.items()
                   for p, shape in zip(("weight", "bias"), shapes)}
    assert list(moe) == [f"{name}.{p}" for name in MOE_SHAPES for p in ("weight", "bias")]    # registration order
    clipclap = ClipClap_model().state_dict()
    assert [k for k in state if not k.startswith("semantic_consensus.")] == list(clipclap)
    if SPEC.is_file():          # the spec's own table: `semantic_consensus.name·  [o,i],[o]`
        block = SPEC.read_text().split("### 2.5")[1].split("### 3.")[0]
        rows = re.findall(r"semantic_consensus\.([\w.]+)·\s+\[([\d,]+)\],\[(\d+)\]", block)
        assert len(rows) == 14
        for name, weight, bias in rows:
            assert moe[f"{name}.weight"] == tuple(int(n) for n in weight.split(",")), name
            assert moe[f"{name}.bias"] == (int(bias),), name
        assert "538,307" in block and "2,776,131" in block
    assert sum(p.numel() for p in model.semantic_consensus.parameters()) == 538_307


def test_sizes_without_the_moe_and_with_the_av_fusion():
    for row, values in ABLATIONS.items():
        model = hspmoe.hspmoe(namespace(**values))
        expected = (84, 2_776_131) if row == "Full model" else (56, 2_237_824)
        assert (len(model.state_dict()), sum(p.numel() for p in model.parameters())) == expected, row
    model = hspmoe.hspmoe(namespace(**{**RECIPE, "av_fusion_module": True}))
    assert (len(model.state_dict()), sum(p.numel() for p in model.parameters())) == (96, 6_452_291)
    assert list(dict.fromkeys(k.split(".")[0] for k in model.state_dict()))[2:4] == ["av_fusion", "semantic_consensus"]
    assert sum(p.numel() for p in model.av_fusion.parameters()) == 3_676_160
    # with one modality the original builds neither
    model = hspmoe.hspmoe(namespace(**{**RECIPE, "av_fusion_module": True, "modality": "audio"}))
    assert len(model.state_dict()) == 56 and not model.moe


def assert_same_weights(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_without_the_moe_the_initial_weights_are_clipclaps():
    for row, values in ABLATIONS.items():
        if values["semantic_consensus_routing"]:
            continue
        torch.manual_seed(3)
        reference, rng = ClipClap_model().state_dict(), torch.get_rng_state()
        torch.manual_seed(3)
        model = hspmoe.hspmoe(namespace(**values))
        assert_same_weights(model.state_dict(), reference)
        assert torch.equal(torch.get_rng_state(), rng), row


def test_with_the_moe_the_original_construction_order():
    """O_enc, W_enc, semantic_consensus, O_proj, D_o, W_proj, D_w drawn in that order (docs/hspmoe.md 2.1), and the
    generator left where that order leaves it."""
    torch.manual_seed(5)
    ref = torch.nn.Module()
    ref.O_enc = EmbeddingNet(1536, 512, 0.1)
    ref.W_enc = EmbeddingNet(1536, 512, 0.1)
    ref.semantic_consensus = HypersphericalConsensusRouting(512, 1024, 64, 0.1)
    ref.O_proj = EmbeddingNet(512, 64, 0.1, hidden=512)
    ref.D_o = EmbeddingNet(64, 512, 0.1, hidden=512)
    ref.W_proj = EmbeddingNet(512, 64, 0.1)
    ref.D_w = EmbeddingNet(64, 512, 0.1)
    rng = torch.get_rng_state()
    torch.manual_seed(5)
    model = hspmoe.hspmoe(namespace(**RECIPE))
    assert_same_weights(model.state_dict(), ref.state_dict())
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(5)
    clipclap = ClipClap_model().state_dict()
    for k, v in model.state_dict().items():     # the encoders as ClipClap's; the projections drawn after the MoE
        if k.startswith(("O_enc.", "W_enc.")):
            assert torch.equal(v, clipclap[k])
        elif k.startswith("O_proj.fc.0.weight"):
            assert not torch.equal(v, clipclap[k])


# -- the terms by hand (docs/hspmoe.md 3.1, 4.1) -------------------------------------------------------------

def unit_rows(x):
    return x / x.pow(2).sum(1, keepdim=True).sqrt()


def log_softmax_rows(z):
    return z - z.exp().sum(1, keepdim=True).log()


def test_dp_by_hand():
    g = torch.Generator().manual_seed(0)
    s, c, x, t = (torch.randn(n, d, generator=g) for n, d in ((5, 6), (3, 6), (5, 9), (3, 9)))
    T = 2.0
    p = torch.exp(log_softmax_rows(unit_rows(x) @ unit_rows(t).t() / T))
    log_q = log_softmax_rows(unit_rows(s) @ unit_rows(c).t() / T)
    expected = T * T * sum(float(p[i, k] * (p[i, k].log() - log_q[i, k])) for i in range(5) for k in range(3)) / 5
    assert hspmoe.dp_loss(s, c, x, t, T).item() == pytest.approx(expected, rel=1e-5)
    # the teacher carries no gradient, the student does
    s.requires_grad_(True)
    x.requires_grad_(True)
    hspmoe.dp_loss(s, c, x, t, T).backward()
    assert s.grad.abs().sum() > 0 and x.grad is None


def test_rp_by_hand():
    g = torch.Generator().manual_seed(1)
    s, x = torch.randn(4, 6, generator=g), torch.randn(4, 9, generator=g)
    cos = lambda a, i, j: float((a[i] @ a[j]) / (a[i].norm() * a[j].norm()))  # noqa: E731
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    expected = sum((cos(s, i, j) - cos(x, i, j)) ** 2 for i, j in pairs) / len(pairs)
    assert hspmoe.rp_loss(s, x).item() == pytest.approx(expected, rel=1e-5)
    assert hspmoe.rp_loss(s[:1], x[:1]).item() == 0.0


def test_hup_by_hand():
    g = torch.Generator().manual_seed(2)
    s, x = torch.randn(5, 6, generator=g), torch.randn(5, 9, generator=g)
    y = torch.tensor([0, 0, 1, 2, 1])
    t = 2.0

    def uniformity(f, cross):
        f = unit_rows(f)
        terms = [-t * max(2 - 2 * float(f[i] @ f[j]), 0.0) for i in range(5) for j in range(5)
                 if i != j and (not cross or y[i] != y[j])]
        return math.log(sum(math.exp(v) for v in terms) / len(terms))

    assert hspmoe.hup_loss(s, y, t).item() == pytest.approx(max(uniformity(s, True) + 4 * t, 0.0), rel=1e-5)
    assert hspmoe.hup_loss(s, y, t, cross_class_only=False).item() == \
        pytest.approx(uniformity(s, False) + 4 * t, rel=1e-5)
    u_s, u_x = uniformity(s, True), uniformity(x, True)
    assert hspmoe.hup_loss(s, y, t, mode="preserve", x=x, margin=0.01).item() == \
        pytest.approx(max(u_s - u_x - 0.01, 0.0), abs=1e-6)
    assert hspmoe.hup_loss(s, torch.zeros(5, dtype=torch.long), t).item() == 0.0      # no cross-class pair
    assert hspmoe.hup_loss(s[:1], y[:1], t).item() == 0.0


def test_far_by_hand():
    g = torch.Generator().manual_seed(3)
    d_ad = torch.rand(4, 3, generator=g) + 0.5
    x, t = torch.randn(4, 7, generator=g), torch.randn(3, 7, generator=g)
    xn, tn = unit_rows(x), unit_rows(t)
    d_raw = torch.tensor([[float(((xn[i] - tn[c]) ** 2).sum().sqrt()) for c in range(3)] for i in range(4)])
    w = 0.5
    scaled = d_raw * (d_ad.sum() / 12) / (d_raw.sum() / 12)
    assert torch.allclose(hspmoe.far_distances(d_ad, x, t, w, True), w * d_ad + (1 - w) * scaled, atol=1e-6)
    assert torch.allclose(hspmoe.far_distances(d_ad, x, t, 0.25, False), 0.25 * d_ad + 0.75 * d_raw, atol=1e-6)
    assert torch.allclose(hspmoe.far_distances(d_ad ** 2, x, t, w, False, squared=True),
                          w * d_ad ** 2 + (1 - w) * d_raw ** 2, atol=1e-5)
    assert torch.equal(hspmoe.far_distances(d_ad, x, t, 1.0), d_ad)          # weight 1: FAR has no effect
    assert torch.equal(hspmoe.far_distances(d_ad, x, t, 7.0), d_ad)          # clamped to [0, 1]
    assert torch.allclose(hspmoe.far_distances(d_ad, x, t, -1.0, False), d_raw, atol=1e-6)
    with pytest.raises(ValueError, match="width"):
        hspmoe.far_distances(d_ad, x, t[:, :5], 0.5)


def test_the_moe_by_hand():
    torch.manual_seed(4)
    moe = no_dropout(HypersphericalConsensusRouting(6, 5, 4, 0.1)).eval()
    g = torch.Generator().manual_seed(4)
    s, v, a = torch.randn(3, 4, generator=g), torch.randn(3, 6, generator=g), torch.randn(3, 5, generator=g)
    out, m, pi = moe(s, v, a, mix_weight=0.3, temperature=0.5)
    logits = moe.router(torch.cat((unit_rows(moe.video_router_proj(v)), unit_rows(moe.audio_router_proj(a))), 1))
    weights = (logits / 0.5).exp() / (logits / 0.5).exp().sum(1, keepdim=True)
    experts = [unit_rows(moe.multimodal_experts[0](torch.cat((v, a), 1))), unit_rows(moe.singlemodal_experts[0](v)),
               unit_rows(moe.singlemodal_experts[1](a))]
    mixed = unit_rows(sum(weights[:, k:k + 1] * experts[k] for k in range(3)))
    assert torch.allclose(pi, weights, atol=1e-6) and torch.allclose(m, mixed, atol=1e-6)
    assert torch.allclose(out, unit_rows(0.7 * unit_rows(s) + 0.3 * mixed), atol=1e-6)
    assert torch.allclose(moe(s, v, a, mix_weight=2.0, temperature=0.5)[0], mixed, atol=1e-6)     # λ clamped to 1


def test_the_model_losses_by_hand():
    """The recipe (every component on) in train mode, dropout off: each part from the model's own modules
    and the formulas of docs/hspmoe.md 3.1 in plain operations."""
    torch.manual_seed(0)
    model = no_dropout(HSPMoE(**flags_of(SWITCHES))).train()
    b = batch()
    parts = model.loss_parts(b)
    x = torch.cat((b.video.float(), b.audio), dim=1)
    theta_o = model.O_proj(model.O_enc(x))
    u = model.W_enc(b.text)
    theta_w = model.W_proj(u)
    theta_c = model.W_proj(model.W_enc(b.class_text))
    moe = model.semantic_consensus
    logits = moe.router(torch.cat((unit_rows(moe.video_router_proj(b.video.float())),
                                   unit_rows(moe.audio_router_proj(b.audio))), 1))
    pi = logits.exp() / logits.exp().sum(1, keepdim=True)
    experts = [unit_rows(moe.multimodal_experts[0](x)), unit_rows(moe.singlemodal_experts[0](b.video.float())),
               unit_rows(moe.singlemodal_experts[1](b.audio))]
    m = unit_rows(sum(pi[:, k:k + 1] * experts[k] for k in range(3)))
    s = unit_rows(0.5 * unit_rows(theta_o) + 0.5 * m)
    c = unit_rows(theta_c)
    n = len(b.label)
    assert parts["rec"].item() == pytest.approx(((u - model.D_o(theta_o)) ** 2).mean().item()
                                                + ((u - model.D_w(theta_w)) ** 2).mean().item(), rel=1e-5)
    assert parts["reg"].item() == pytest.approx(((theta_o - theta_w) ** 2).mean().item(), rel=1e-5)
    logits = s @ c.t() / 0.1
    ce = (logits.exp().sum(1).log() - logits[torch.arange(n), b.label]).mean()
    assert parts["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    p = torch.exp(log_softmax_rows(unit_rows(x) @ unit_rows(b.class_text).t() / 2.0))
    dp = 4.0 * (p * (p.log() - log_softmax_rows(s @ c.t() / 2.0))).sum() / n
    assert parts["dp"].item() == pytest.approx(0.001 * dp.item(), rel=1e-4)
    off = ~torch.eye(n, dtype=torch.bool)
    rp = ((s @ s.t() - unit_rows(x) @ unit_rows(x).t())[off] ** 2).mean()
    assert parts["rp"].item() == pytest.approx(0.0002 * rp.item(), rel=1e-4)
    cross = off & (b.label[None] != b.label[:, None])
    d2 = (2 - 2 * s @ s.t()).clamp_min(0)[cross]
    hup = (-2.0 * d2).exp().mean().log() + 8.0
    assert parts["hup"].item() == pytest.approx(0.0002 * hup.item(), rel=1e-4)
    loss, logged = model.training_step(b)
    assert loss.item() == pytest.approx(sum(v.item() for v in parts.values()), rel=1e-6)
    assert list(logged) == ["rec", "reg", "ce", "dp", "rp", "hup"]
    # evaluation: s̃ and c without dropout, FAR with the raw distances rescaled to the adapted ones' mean
    model.eval()
    d = model.eval_distances(b.audio, b.video, b.class_text)["both"]
    s_e, c_e = model.eval_embeddings(b.audio, b.video, b.class_text)
    d_ad = torch.cdist(s_e, c_e)
    d_raw = torch.cdist(unit_rows(x), unit_rows(b.class_text))
    assert torch.allclose(d, 0.5 * d_ad + 0.5 * d_raw * d_ad.mean() / d_raw.mean(), atol=1e-6)


def test_the_radial_modes():
    """Off in the recipe (the script's default: ce, α 0.5): r(θ) = 1 + α (clamp(|θ| / mean|θ|, 0.5, 2) - 1)."""
    theta = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 0.5]])           # radii 5, 1, 0.5; mean 13/6
    r = hspmoe.radial_scale(theta, 0.5)
    rel = torch.tensor([5.0, 1.0, 0.5]) / (6.5 / 3)
    assert torch.allclose(r.view(-1), 1 + 0.5 * (rel.clamp(0.5, 2.0) - 1))
    assert hspmoe.radial_scale(theta, 0.0) == 1.0
    torch.manual_seed(0)
    kw = flags_of(("hypersphere",))
    base = no_dropout(HSPMoE(**kw)).train()
    b = batch()
    for mode in ("ce", "norm"):
        model = no_dropout(HSPMoE(**{**kw, "radial_mode": mode, "radial_alpha": 0.5})).train()
        model.load_state_dict(base.state_dict())
        parts, ref = model.loss_parts(b), base.loss_parts(b)
        assert parts["ce"].item() != pytest.approx(ref["ce"].item()) and parts["rec"] == ref["rec"]
    model.eval()            # norm: the evaluation's sample radii are per batch of eval_bs
    model.eval_bs = 4
    s, _ = model.eval_embeddings(b.audio, b.video, b.class_text)
    assert torch.allclose(s[:4], model.sample_embeddings(b.audio[:4], b.video[:4]))


# -- the six switches (docs/hspmoe.md 5.2) -------------------------------------------------------------------

CHANGES = {      # what each switch changes, all else equal (AV-MoE: every term reading s̃)
    "hypersphere": {"ce", "eval"}, "dp": {"dp"}, "rp": {"rp"}, "hup": {"hup"}, "far": {"eval"},
    "av_moe": {"ce", "dp", "rp", "hup", "eval"},
}


def outputs(model, b):
    torch.manual_seed(9)
    parts = model.train().loss_parts(b)
    return {**{k: v.item() for k, v in parts.items()},
            "eval": model.eval().eval_distances(b.audio, b.video, b.class_text)["both"]}


def differing(a, b):
    """The outputs that differ beyond rounding (DP and RP normalise s̃ again: the hypersphere's own
    normalisation changes them in the last bits only, by thread count and kernel)."""
    return {k for k in a if not (torch.allclose(a[k], b[k], rtol=1e-6, atol=1e-7) if k == "eval"
                                 else math.isclose(a[k], b[k], rel_tol=1e-6, abs_tol=1e-9))}


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_changes_its_own_terms(switch):
    # the others on (the hypersphere's own test without the MoE: the MoE acts only on the hypersphere)
    others = [s for s in SWITCHES if s != switch and not (switch == "hypersphere" and s == "av_moe")]
    torch.manual_seed(0)
    on = no_dropout(HSPMoE(**flags_of(others + [switch])))
    off = no_dropout(HSPMoE(**flags_of(others)))
    result = off.load_state_dict(on.state_dict(), strict=False)
    assert not result.missing_keys and all(k.startswith("semantic_consensus.") for k in result.unexpected_keys)
    b = batch()
    a, z = outputs(on, b), outputs(off, b)
    assert differing(a, z) == CHANGES[switch]
    if switch in ("dp", "rp", "hup"):
        assert z[switch] == 0.0 and a[switch] > 0.0
    # the auxiliary terms only on optimisation steps: in eval mode (the val loss) they are 0
    on.eval()
    parts = on.loss_parts(b)
    assert parts["dp"] == parts["rp"] == parts["hup"] == 0.0


def test_everything_off_is_clipclap():
    """The original's config defaults (every flag off): ClipClap's weights, losses and distances."""
    torch.manual_seed(2)
    clipclap = no_dropout(ClipClap_model())
    torch.manual_seed(2)
    model = no_dropout(hspmoe.hspmoe(namespace()))
    b = batch()
    torch.manual_seed(1)
    ref = clipclap.train().loss_parts(b)
    torch.manual_seed(1)
    parts = model.train().loss_parts(b)
    assert {k: parts[k] for k in ref} == ref and parts["dp"] == parts["rp"] == parts["hup"] == 0.0
    assert torch.equal(model.eval().eval_distances(b.audio, b.video, b.class_text)["both"],
                       clipclap.eval().eval_distances(b.audio, b.video, b.class_text)["both"])
    # the MoE with the hypersphere off: built, never called (docs/hspmoe.md 2.1)
    torch.manual_seed(2)
    idle = no_dropout(hspmoe.hspmoe(namespace(semantic_consensus_routing=True, semantic_consensus_weight=0.5)))
    assert sum(p.numel() for p in idle.semantic_consensus.parameters()) == 538_307
    clipclap.load_state_dict({k: v for k, v in idle.state_dict().items() if not k.startswith("semantic_consensus.")})
    torch.manual_seed(1)
    ref = clipclap.train().loss_parts(b)
    torch.manual_seed(1)
    parts = idle.train().loss_parts(b)
    assert {k: parts[k].item() for k in ref} == {k: v.item() for k, v in ref.items()}


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = hspmoe.hspmoe(namespace(**RECIPE)).train()
    opt, _ = model.configure_optimizers(lr=1e-3)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == 2_776_131
    b = batch(b=16, c=4)
    losses = []
    for _ in range(12):
        loss, _ = model.training_step(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_optimizer_step(b)
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.7 * losses[0]
    assert model.semantic_consensus.router[0].weight.grad.abs().sum() > 0


# -- flags, recipe, builder (docs/hspmoe.md 5) ---------------------------------------------------------------

def test_flags_recipe_and_rows():
    assert [f.name for f in FLAGS] == list(RECIPE)
    config = REFERENCE / "original_configs" / "hspmoe" / "default.yaml"
    if config.is_file():         # the original's config defaults
        values = yaml.safe_load(config.read_text())
        for f in FLAGS:
            assert values.get(f.name) == f.default, f.name
    switches = {row: tuple(s for s in SWITCHES if hspmoe.hspmoe_kwargs(v)[s]) for row, v in ABLATIONS.items()}
    assert switches == {"+ Hypersphere": ("hypersphere",), "+ DP": ("hypersphere", "dp"),
                        "+ DP + RP": ("hypersphere", "dp", "rp"), "+ DP + RP + HUP": ("hypersphere", "dp", "rp", "hup"),
                        "+ FAR": ("hypersphere", "dp", "rp", "hup", "far"), "Full model": SWITCHES}
    model = hspmoe.hspmoe(namespace(**RECIPE))
    assert model.losses_on == {"rec": True, "reg": True, "ce": True, "dp": True, "rp": True, "hup": True}
    assert (model.tau, model.dp_weight, model.rp_weight, model.hup_weight, model.far_adapted_weight,
            model.moe_weight, model.moe_temperature) == (0.1, 0.001, 0.0002, 0.0002, 0.5, 0.5, 1.0)
    assert model.calibration == (0.0, 5.0, 76) and hspmoe.CLASS_NAME == "ClipClap_model"
    # a component weight left None falls back to --semantic_distill_weight; the script's default mode
    kw = hspmoe.hspmoe_kwargs(hspmoe.flag_values(namespace(semantic_distill_loss=True, semantic_distill_weight=0.005)))
    assert (kw["dp"], kw["dp_weight"], kw["rp"]) == (True, 0.005, False)


def test_builder_errors():
    with pytest.raises(UserError, match="--word_embeddings both"):
        hspmoe.hspmoe(namespace(**{**RECIPE, "word_embeddings": "clip"}))
    with pytest.raises(UserError, match="--semantic_radial_mode"):
        hspmoe.hspmoe(namespace(**{**RECIPE, "semantic_radial_mode": "sphere"}))
    hspmoe.hspmoe(namespace(**{**RECIPE, "semantic_far_fusion": False, "word_embeddings": "clip"}))


# -- the training-free row (docs/hspmoe.md 6) ----------------------------------------------------------------

def test_the_frozen_row_by_hand():
    b = batch(b=5, c=3, seed=7)
    x = torch.cat((b.video.float(), b.audio), dim=1)
    xn, tn = unit_rows(x), unit_rows(b.class_text)
    expected = torch.tensor([[float(((xn[i] - tn[c]) ** 2).sum().sqrt()) for c in range(3)] for i in range(5)])
    assert torch.allclose(frozen_distances(b.audio, b.video, b.class_text), expected, atol=1e-6)
    assert torch.allclose(frozen_distances(b.audio, b.video, b.class_text, squared=True), expected ** 2, atol=1e-5)
    # unit-norm parts: the distance is about sqrt(2 - cos_video - cos_audio)
    cos_v = unit_rows(b.video.float()) @ unit_rows(b.class_text[:, :512]).t()
    cos_a = unit_rows(b.audio) @ unit_rows(b.class_text[:, 512:]).t()
    assert torch.allclose(expected, (2 - cos_v - cos_a).sqrt(), atol=1e-3)
    model = FrozenClipClap()
    assert not list(model.parameters()) and model.state_dict() == {} and model.calibration == (0.0, 5.0, 76)
    assert torch.equal(model.eval_distances(b.audio, b.video, b.class_text)["both"],
                       frozen_distances(b.audio, b.video, b.class_text))
    with pytest.raises(NotImplementedError):
        model.training_step(b)
    with pytest.raises(ValueError, match="width"):
        raw_distances(x, b.class_text[:, :512])
    # FAR with weight 0 and no rescale is this row exactly (docs/hspmoe.md 6)
    assert torch.equal(hspmoe.far_distances(torch.rand(5, 3), x, b.class_text, 0.0, False),
                       frozen_distances(b.audio, b.video, b.class_text))


def test_the_frozen_row_is_a_method_with_nothing_to_train(tiny_root, tmp_path, capsys):
    """Its run script's commands: both stages build no optimiser and run no step, whatever --epochs says,
    and write the run folder every method writes (one epoch: its validation); get_evaluation.py prints the
    usual line, equal to calibrated stacking on the frozen distances computed here (beta on val over 0..5,
    applied on test); --resume of the finished runs changes nothing, and a second run gives the same numbers."""
    from conftest import cli
    from src.data import dataset_from_args
    from src.evaluate import beta_grid, evaluate_distances
    from src.recipes import cell_commands
    from src.runs import RunFolder, load_checkpoint

    def stages(dump):
        """The three commands (stage 1, stage 2 at 5 epochs on the command line; the evaluation): the result."""
        stage_1, stage_2, evaluation = cell_commands("frozen_clipclap", "UCF", "clip", tiny_root.parent, dump_path=dump)
        for cmd in (stage_1, stage_2):
            cli("main")([*cmd[1:], "--epochs", "5", "--device", "cpu"])
        capsys.readouterr()
        cli("get_evaluation")([*evaluation[1:], "--device", "cpu"])
        assert re.search(r"Seen performance=\d+\.\d\d, .* ZSL performance=\d+\.\d\d", capsys.readouterr().out)
        return RunFolder(dump / "runs" / stage_1[stage_1.index("--exp_name") + 1]), \
            RunFolder(dump / "runs" / stage_2[stage_2.index("--exp_name") + 1])

    run_a, run_b = stages(tmp_path / "a")
    files = lambda run: sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*")  # noqa: E731
                               if p.is_file() and "tfevents" not in p.name)
    common = ["FrozenClipClap_score.pt", "args.json", "args.pkl", "checkpoints/resume_state.pt", "metrics.jsonl",
              "train.log"]
    assert files(run_a) == common         # no *_loss.pt: there is no loss
    assert files(run_b) == sorted(common + ["checkpoints/FrozenClipClap_score_ckpt_0.pt", "eval.log",
                                            "evaluation.json"])
    assert "training-free" in run_a.path.joinpath("train.log").read_text() and "--epochs 5 ignored" in \
        run_a.path.joinpath("train.log").read_text()
    (row,) = [json.loads(line) for line in run_a.metrics_path.read_text().splitlines()]
    assert (row["epoch"], row["train"], row["val_loss"], row["lr"]) == (1, {}, None, None)
    best = load_checkpoint(run_a.best("FrozenClipClap", "score"))
    assert (best["epoch"], best["model"], best["optimizer"]) == (1, {}, None)
    assert best["score"] == row["val"]["both"]["hm"]
    assert torch.load(run_a.resume_path, weights_only=False)["optimizer"] is None
    assert load_checkpoint(run_b.epoch_ckpt("FrozenClipClap", 0))["epoch"] == 1

    # the numbers: calibrated stacking on the frozen distances (beta on val, applied on test)
    result = json.loads((run_b.path / "evaluation.json").read_text())
    dataset = dataset_from_args(run_b.load_args())
    val, test = dataset.split("val"), dataset.split("test")
    grid = beta_grid(0.0, 5.0, 76)
    on_val = evaluate_distances(frozen_distances(val.audio, val.video, val.text), val.labels, val.seen_mask, grid=grid)
    on_test = evaluate_distances(frozen_distances(test.audio, test.video, test.text), test.labels, test.seen_mask,
                                 beta=on_val["beta"])
    assert row["val"]["both"]["hm"] == pytest.approx(on_val["hm"], abs=1e-7)
    assert (result["model"], result["epoch"], result["beta"]) == ("frozen_clipclap", 1, on_val["beta"])
    assert all(result[k] == pytest.approx(on_test[k], abs=1e-7) for k in ("seen", "unseen", "hm", "zsl"))

    # --resume of the finished runs (the script's commands again): nothing trained, nothing rewritten
    before = {p: p.read_bytes() for run in (run_a, run_b) for p in run.path.rglob("*.pt")}
    stages(tmp_path / "a")
    assert {p: p.read_bytes() for p in before} == before and len(run_a.metrics_path.read_text().splitlines()) == 1
    assert "resumed" in run_a.path.joinpath("train.log").read_text()
    # a second run: the same numbers
    again = json.loads((stages(tmp_path / "b")[1].path / "evaluation.json").read_text())
    assert {k: v for k, v in again.items() if k not in ("stage_A", "stage_B")} == \
        {k: v for k, v in result.items() if k not in ("stage_A", "stage_B")}


def test_the_methods_table_pins_the_readme_recipe():
    """The run scripts' flags of HSP-MoE are the README's full model, flag for flag, and parse to it."""
    from src.args import finalize_main_args, get_main_parser
    from src.recipes import cell_commands
    for dataset in ("UCF", "ActivityNet", "VGGSound"):
        args = finalize_main_args(get_main_parser().parse_args(cell_commands("hspmoe", dataset, "clip", "D")[0][1:]))
        assert args.model_name == "hspmoe"
        assert {k: getattr(args, k) for k in hspmoe.RECIPE} == hspmoe.RECIPE


def test_its_users_config_builds_hspmoe_and_clipclaps_builds_clipclap():
    """HSP-MoE's config/clipclap.yaml (ClipClap's keys plus its own, all off) chooses HSP-MoE with no model
    flag, its components off until the command line turns them on; ClipClap's own config stays ClipClap's."""
    from conftest import REFERENCE
    from src.args import finalize_main_args, get_main_parser, parse_with_config
    configs = REFERENCE / "original_configs"
    if not (configs / "hspmoe" / "clipclap.yaml").is_file():
        pytest.skip("../shared/reference is absent")

    def model_of(cfg, *extra):
        args, given = parse_with_config(get_main_parser, ["--cfg", str(cfg), "--root_dir", "x", "--dataset_name",
                                                          "UCF", *extra])
        return finalize_main_args(args, given)
    plain = model_of(configs / "hspmoe" / "clipclap.yaml")
    assert plain.model_name == "hspmoe" and not plain.semantic_hyperspherical and not plain.semantic_far_fusion
    recipe = model_of(configs / "hspmoe" / "clipclap.yaml", *" ".join(
        f"--{k} {v}" for k, v in hspmoe.RECIPE.items()).split())
    assert {k: getattr(recipe, k) for k in hspmoe.RECIPE} == hspmoe.RECIPE
    assert model_of(configs / "clipclap" / "clipclap.yaml").model_name == "clipclap"


def test_an_original_hspmoe_run_folder_evaluates_as_hspmoe(tiny_root, tmp_path):
    """HSP-MoE's args.pkl as its code writes it (every field and value type of the reference: ClipClap's
    fields, TCaF's new_model_sequence True, the config's 128/4096 input sizes, its semantic_* and av_fusion_*
    fields at the README recipe) and ClipClap's file names: get_evaluation.py with no model flag and no --cfg
    evaluates it as HSP-MoE, FAR and the AV-MoE included, to a direct evaluation's numbers."""
    from conftest import run_cli
    from original_runs import assert_direct_evaluation, parsed, reference_namespace, write_original_runs
    from src.families import FAMILIES, dataset_root
    from src.recipes import cell_commands
    root = dataset_root(tiny_root.parent, "UCF", FAMILIES["clip"])
    ours = parsed(cell_commands("hspmoe", "UCF", "clip", tiny_root.parent)[0][1:])
    ours.text_dim = 1536
    original = reference_namespace("hspmoe_full_stage_A")
    assert original.semantic_far_fusion and original.semantic_consensus_routing and original.new_model_sequence
    models = write_original_runs(tmp_path, "hspmoe", vars(original), root, "hspmoe", ours, "ClipClap_model", epoch=2)
    assert models["B"].far and models["B"].moe
    runs = sorted((tmp_path / "runs").iterdir())
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", runs[0], "--load_path_stage_B", runs[1], "--device", "cpu")
    got = assert_direct_evaluation(runs[1] / "evaluation.json", proc, ours, root, models)
    assert got["model"] == "hspmoe" and got["epoch"] == 2


def test_each_ablation_row_is_one_documented_command(tmp_path):
    """docs/hspmoe.md's command of each ablation row: the recipe's stage-1 command with its --main_args
    builds exactly the row's flag values (and the baseline row is ClipClap)."""
    import shlex
    from original_runs import parsed
    from src.recipes import cell_commands
    docs = (ROOT / "docs" / "hspmoe.md").read_text()
    commands = dict(re.findall(r"^\| ([^|]+?) \| `(python -m src\.reproduce [^`]+)` \|$", docs, re.M))
    assert set(commands) == {"Baseline (ClipClap)", *ABLATIONS}
    assert "--methods clipclap" in commands.pop("Baseline (ClipClap)")
    assert len({c.split("--out_dir ")[1].split()[0] for c in commands.values()}) == len(ABLATIONS)   # apart
    for row, command in commands.items():
        argv = shlex.split(command)
        extra = shlex.split(argv[argv.index("--main_args") + 1]) if "--main_args" in argv else []
        assert " ".join(extra) == hspmoe.ablation_flags(row)
        args = parsed(cell_commands("hspmoe", "UCF", "clip", tmp_path, extra=extra)[0][1:])
        assert hspmoe.flag_values(args) == ABLATIONS[row], row
