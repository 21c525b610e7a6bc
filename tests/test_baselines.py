"""The baselines (docs/models.md): DEVISE/ALE/SJE, APN, CJME, AVGZSLNet.

Losses on hand-computed cases, evaluation modes, --norm_inputs and the CJME broadcast switch. What
every registered model must answer (shapes, backward, optimiser steps, state_dict round trip) is in
tests/test_models_registry.py; their two stages and evaluation, in tests/test_end_to_end.py.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import random_pair_batch
from src.args import finalize_main_args, get_main_parser, resolve_model_name
from src.models.avgzslnet import l2_distance
from src.models.base import PairBatch
from src.models.bilinear import ale_loss, devise_loss, harmonic_numbers, sje_loss
from src.models.cjme import attention_target, attention_weighted_triplet, entropy
from src.models.registry import create_model

D_A, D_V, C, B = 12, 20, 5, 16
SMALL = ["--input_size_audio", str(D_A), "--input_size_video", str(D_V),
         "--embeddings_hidden_size", "32", "--decoder_hidden_size", "16"]
# The run-script flags of each baseline (the two-stage integration test).
BASELINES = {
    "ale": ["--ale"], "sje": ["--sje"], "devise": ["--devise"], "apn": ["--apn"],
    "cjme": ["--cjme", "--embedding_use_bn"],
    "avgzslnet": ["--embedding_use_bn", "--decoder_use_bn", "--normalize_decoder_outputs"],
}


def parse(*argv):
    return finalize_main_args(get_main_parser().parse_args(["--root_dir", "x", "--dataset_name", "UCF", *SMALL, *argv]))


def build(*argv, seed=0):
    args = parse(*argv)
    torch.manual_seed(seed)
    return create_model(resolve_model_name(args), args)


def make_batch(b=B, c=C, seed=0) -> PairBatch:
    return random_pair_batch(b, c, D_A, D_V, seed)


# ---------------------------------------------------------------- ranking losses (3 classes)

# Hand-computed (margin 0.1): cost_k = max(0, 0.1 + s_k - s_y) for k != y.
#   sample 0, y=0, s=[0.5, 0.45, 0.2]: costs [0, 0.05, 0]    sum 0.05, max 0.05, r=1
#   sample 1, y=1, s=[0.3, 0.1, 0.35]: costs [0.3, 0, 0.35]  sum 0.65, max 0.35, r=2
#   sample 2, y=2, s=[0.0, 0.0, 1.0]:  no violation          sum 0,    max 0,    r=0
SCORES = torch.tensor([[0.5, 0.45, 0.2], [0.3, 0.1, 0.35], [0.0, 0.0, 1.0]])
TARGET = torch.tensor([0, 1, 2])


def test_devise_loss_sums_every_violation():
    assert devise_loss(SCORES, TARGET).item() == pytest.approx((0.05 + 0.65) / 3, abs=1e-6)


def test_sje_loss_keeps_the_largest_violation():
    assert sje_loss(SCORES, TARGET).item() == pytest.approx((0.05 + 0.35) / 3, abs=1e-6)


def test_ale_loss_weighs_by_rank():
    # weights L(r)/r: r=1 -> 1, r=2 -> (1 + 1/2)/2 = 0.75, r=0 -> 0 (no cost anyway)
    assert ale_loss(SCORES, TARGET).item() == pytest.approx((1 * 0.05 + 0.75 * 0.65) / 3, abs=1e-6)


def test_ale_weight_is_harmonic_number_over_rank():
    L = harmonic_numbers(700)
    assert L[0] == 0 and L[1] == 1 and L[3].item() == pytest.approx(1 + 1 / 2 + 1 / 3)
    assert len(L) == 701
    # one sample, 5 classes, 3 violations with costs 0.1 + 0.2 - 0.2 = 0.1 each; class 4 none
    scores = torch.tensor([[0.2, 0.2, 0.2, 0.2, -1.0]])
    expected = (1 + 1 / 2 + 1 / 3) / 3 * (3 * 0.1)
    assert ale_loss(scores, torch.tensor([0])).item() == pytest.approx(expected, abs=1e-6)


def test_ranking_losses_are_zero_without_violations():
    scores = torch.tensor([[1.0, 0.0, 0.5]])
    for fn in (devise_loss, sje_loss, ale_loss):
        assert fn(scores, torch.tensor([0])).item() == 0.0


# ---------------------------------------------------------------- APN

def test_apn_loss_by_hand():
    model = build("--apn").eval()
    batch = make_batch()
    loss, parts = model.training_step(batch)
    x = torch.cat((batch.video, batch.audio), 1).double().numpy()
    W, w_y, y = batch.class_text.double().numpy(), batch.text.double().numpy(), batch.label.numpy()
    total = 0.0
    for M in (model.ALE_vector, model.prototype_vectors["layer4"]):
        attr = x @ M.detach().double().numpy()[:, :, 0, 0].T               # (B, 300)
        s = attr @ W.T
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)                                         # softmax: CE's input
        ce = -(p[np.arange(len(y)), y] - np.log(np.exp(p).sum(1)))           # CE of the softmax
        total += ce.mean() + ((attr - w_y) ** 2).mean()
    assert loss.item() == pytest.approx(total, rel=1e-5)
    assert set(parts) == {"ce_final", "mse_final", "ce_layer4", "mse_layer4"}


def test_apn_initialisation_and_creation_order():
    model = build("--apn", seed=3)
    for p in (model.ALE_vector, model.prototype_vectors["layer4"]):
        assert p.shape == (300, D_A + D_V, 1, 1) and 0 <= p.min() and p.max() <= 2e-4
    torch.manual_seed(3)
    first = 2e-4 * torch.rand(300, D_A + D_V, 1, 1)
    assert torch.equal(model.prototype_vectors["layer4"], first)   # created before ALE_vector


def test_apn_maps_are_the_original_conv2d_bit_for_bit():
    model = build("--apn", "--norm_inputs", seed=4)
    x = model.inputs(torch.randn(9, D_A), torch.randn(9, D_V))
    final, layer4 = model.attributes(x)
    x4 = x.reshape(9, D_A + D_V, 1, 1)
    assert torch.equal(final, torch.nn.functional.conv2d(x4, model.ALE_vector).view(9, 300))
    assert torch.equal(layer4, torch.nn.functional.conv2d(x4, model.prototype_vectors["layer4"]).view(9, 300))


# ---------------------------------------------------------------- CJME

def test_cjme_training_step_moves_batch_norm_statistics_as_the_original():
    """The original's step also embeds the negative's word vector, f_t(t'): the running
    statistics after one step equal those of the hand-run sequence of train-mode forwards."""
    import copy
    model = build("--cjme", "--embedding_use_bn", seed=2).train()
    hand = copy.deepcopy(model)
    batch = make_batch()
    model.training_step(batch)
    with torch.no_grad():
        hand.f_a(batch.audio), hand.f_v(batch.video), hand.f_t(batch.text)
        hand.f_a(batch.audio_neg), hand.f_v(batch.video_neg), hand.f_t(batch.text_neg)
        hand.attention(batch.audio, batch.video)
        hand.f_t(batch.class_text)
    stats = {k: v for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    for k, v in stats.items():
        assert torch.equal(v, hand.state_dict()[k]), k
    f_t_bn = next(m for m in model.triplet_net.embedding_net3.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert int(f_t_bn.num_batches_tracked) == 3                       # f_t(t), f_t(t'), f_t(W)



def test_entropy_and_attention_target():
    assert entropy(torch.zeros(1, 4)).item() == pytest.approx(math.log(4))
    assert entropy(torch.tensor([[100.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    h_a = torch.tensor([1.0, 1.0, 1.0, 1.2, 1.05])
    h_v = torch.tensor([1.2, 1.05, 0.95, 1.0, 1.0])
    # H_v - H_a > 0.1 -> 0 (trust audio); H_a - H_v > 0.1 -> 1 (trust video); else 0.5
    assert attention_target(h_a, h_v).tolist() == [0.0, 0.5, 0.5, 1.0, 0.5]


def test_cjme_attention_weighted_triplet_per_sample_and_broadcast():
    alpha = torch.tensor([[0.2], [0.9], [0.5]])
    l_a, l_v = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.5, 0.0, 3.0])
    per_sample = ((0.8 * 1.0 + 0.2 * 0.5) + (0.1 * 2.0 + 0.9 * 0.0) + (0.5 * 0.0 + 0.5 * 3.0)) / 3
    assert attention_weighted_triplet(alpha, l_a, l_v).item() == pytest.approx(per_sample)
    # [original defect] [B,1] x [B] -> [B,B]: mean(1-α)·mean(l_a) + mean(α)·mean(l_v)
    broadcast = (1 - 1.6 / 3) * 1.0 + (1.6 / 3) * (3.5 / 3)
    assert attention_weighted_triplet(alpha, l_a, l_v, broadcast=True).item() == pytest.approx(broadcast)
    assert broadcast != pytest.approx(per_sample)


def test_cjme_reproduce_original_switches_the_broadcast():
    batch = make_batch()
    fixed = build("--cjme", "--embedding_use_bn").eval()
    orig = build("--cjme", "--embedding_use_bn", "--reproduce_original").eval()
    assert not fixed.broadcast_attention_loss and orig.broadcast_attention_loss
    with torch.no_grad():
        _, p_fixed = fixed.training_step(batch)
        _, p_orig = orig.training_step(batch)
    assert p_fixed["triplet"].item() != pytest.approx(p_orig["triplet"].item())
    assert p_fixed["mse_av"].item() == pytest.approx(p_orig["mse_av"].item())


def test_cjme_loss_by_hand():
    model = build("--cjme", "--embedding_use_bn", "--margin", "0.7").eval()
    batch = make_batch()
    loss, parts = model.training_step(batch)
    with torch.no_grad():
        a_e, v_e, t = model.f_a(batch.audio), model.f_v(batch.video), model.f_t(batch.text)
        a_n, v_n = model.f_a(batch.audio_neg), model.f_v(batch.video_neg)
        alpha = model.attention(batch.audio, batch.video)[:, 0]
        T = model.f_t(batch.class_text)
        h_a, h_v = entropy(a_e @ T.t()), entropy(v_e @ T.t())
        target = torch.where(h_v - h_a > 0.1, 0.0, torch.where(h_a - h_v > 0.1, 1.0, 0.5))
        l_a = ((t - a_e + 1e-6).norm(dim=1) - (t - a_n + 1e-6).norm(dim=1) + 0.7).clamp(min=0)
        l_v = ((t - v_e + 1e-6).norm(dim=1) - (t - v_n + 1e-6).norm(dim=1) + 0.7).clamp(min=0)
    assert parts["triplet"].item() == pytest.approx(((1 - alpha) * l_a + alpha * l_v).mean().item(), rel=1e-5)
    assert parts["mse_av"].item() == pytest.approx(((a_e - v_e) ** 2).mean().item(), rel=1e-5)
    assert parts["attention"].item() == pytest.approx(((alpha - target) ** 2).mean().item(), rel=1e-5)
    assert loss.item() == pytest.approx(sum(p.item() for p in parts.values()), rel=1e-6)


def test_cjme_both_mode_follows_alpha():
    model = build("--cjme").eval()
    batch = make_batch()
    lin = model.attention_model[1]
    with torch.no_grad():
        for bias, pick in ((50.0, "video"), (-50.0, "audio")):
            lin.weight.zero_()
            lin.bias.fill_(bias)
            d = model.eval_distances(batch.audio, batch.video, batch.class_text)
            assert torch.equal(d["both"], d[pick])
        lin.weight.zero_()
        lin.weight[0, 0] = 100.0                     # α >= 0.5 exactly where audio[:, 0] >= 0
        lin.bias.zero_()
        bn = model.attention_model[0]                # eval BN: default stats, identity
        assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
        d = model.eval_distances(batch.audio, batch.video, batch.class_text)
        use_video = (batch.audio[:, :1] * 100.0 / math.sqrt(1 + 1e-5)).sigmoid() >= 0.5
        assert torch.equal(d["both"], torch.where(use_video, d["video"], d["audio"]))
        assert 0 < use_video.sum() < len(use_video)


# ---------------------------------------------------------------- AVGZSLNet

def test_l2_distance():
    x, y = torch.tensor([[3.0, 4.0], [1.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert l2_distance(x, y).tolist() == [5.0, 0.0]
    assert l2_distance(x, y, squared=True).tolist() == [25.0, 0.0]


@pytest.mark.parametrize("distance_fn", ["L2Loss", "SquaredL2Loss"])
def test_avgzslnet_loss_by_hand(distance_fn):
    model = build("--embedding_use_bn", "--decoder_use_bn", "--normalize_decoder_outputs",
                  "--distance_fn", distance_fn, "--margin", "0.5").eval()
    batch = make_batch()
    loss, parts = model.training_step(batch)
    w = batch.text
    with torch.no_grad():
        a, v, t = model.f_a(batch.audio), model.f_v(batch.video), model.f_t(w)
        a_n, v_n, t_n = model.f_a(batch.audio_neg), model.f_v(batch.video_neg), model.f_t(batch.text_neg)
        g = model.decoder_net
        g_t, g_a, g_v, g_a_n, g_v_n = g(t), g(a), g(v), g(a_n), g(v_n)
    assert torch.allclose(g_t.norm(dim=1), torch.ones(B))          # --normalize_decoder_outputs
    power = 2 if distance_fn == "SquaredL2Loss" else 1

    def d(x, y):
        return (((x - y) ** 2).sum(1).sqrt() ** power).mean()

    def trip(anc, pos, neg):    # TripletMarginLoss(margin=0.5): L2 with eps 1e-6, whatever distance_fn
        return ((anc - pos + 1e-6).norm(dim=1) - (anc - neg + 1e-6).norm(dim=1) + 0.5).clamp(min=0).mean()

    decoder = d(g_t, w) + d(g_a, w) + d(g_v, w) + trip(g_t, g_a, g_a_n) + trip(g_t, g_v, g_v_n)
    composite = trip(t, a, a_n) + trip(a, t, t_n) + trip(t, v, v_n) + trip(v, t, t_n)
    assert parts["decoder"].item() == pytest.approx(decoder.item(), rel=1e-5)
    assert parts["composite_triplet"].item() == pytest.approx(composite.item(), rel=1e-5)
    assert loss.item() == pytest.approx((decoder + composite).item(), rel=1e-5)


def test_avgzslnet_without_batch_norm_and_without_hidden_layer():
    model = build("--embeddings_hidden_size", "0")
    assert [type(m).__name__ for m in model.triplet_net.embedding_net1.fc] == ["Linear"]
    assert [type(m).__name__ for m in model.decoder_net.embedding_net.fc] == ["Linear", "ReLU", "Dropout", "Linear"]
    loss, _ = model.training_step(make_batch())
    assert torch.isfinite(loss)


# ---------------------------------------------------------------- evaluation modes
# (every registered model's shapes, steps and state_dict: tests/test_models_registry.py)

def eval_inputs(n=7, c=9):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, D_A, generator=g), torch.randn(n, D_V, generator=g), torch.randn(c, 300, generator=g)


def distances_of(*flags):
    """(model in eval mode, its inputs, plain and squared distances) of a model built from flags."""
    model = build(*flags).eval()
    a, v, t = eval_inputs()
    with torch.no_grad():
        return model, (a, v, t), model.eval_distances(a, v, t), model.eval_distances(a, v, t, squared=True)


@pytest.mark.parametrize("flags", [("--ale",), ("--sje",), ("--devise",), ("--devise", "--norm_inputs"), ("--apn",)])
def test_single_mode_models_report_one_distance(flags):
    model, (a, v, t), d, d2 = distances_of(*flags)
    assert model.modes == ("both",) and model.reported_mode == "both" and set(d) == set(d2) == {"both"}
    e, w = model.eval_embeddings(a, v, t)
    assert torch.allclose(d["both"], torch.cdist(e, w), atol=1e-5) and torch.allclose(d2["both"], d["both"] ** 2)


@pytest.mark.parametrize("flags", [("--cjme", "--embedding_use_bn"), BASELINES["avgzslnet"]])
def test_audio_video_models_report_three_modes(flags):
    model, _, d, d2 = distances_of(*flags)
    assert model.modes == ("audio", "video", "both") and model.reported_mode == "both"
    assert set(d) == set(d2) == {"audio", "video", "both"}
    assert torch.allclose(d2["audio"], d["audio"] ** 2) and torch.allclose(d2["video"], d["video"] ** 2)
    if type(model).__name__ == "AVGZSLNet":
        assert torch.allclose(d["both"], d["audio"] + d["video"])
        assert torch.allclose(d2["both"], d["audio"] ** 2 + d["video"] ** 2)


@pytest.mark.parametrize("flag", ["--devise", "--apn"])
def test_norm_inputs_normalises(flag):
    batch = make_batch()
    normed, raw = build(flag, "--norm_inputs").eval(), build(flag).eval()
    x = normed.inputs(batch.audio, batch.video)
    assert torch.allclose(x.norm(dim=1), torch.ones(B))
    assert torch.allclose(x, F.normalize(torch.cat((batch.video, batch.audio), 1), dim=1))  # video first
    with torch.no_grad():
        d = normed.eval_distances(batch.audio, batch.video, batch.class_text)["both"]
        d_scaled = normed.eval_distances(3 * batch.audio, 3 * batch.video, batch.class_text)["both"]
        r = raw.eval_distances(batch.audio, batch.video, batch.class_text)["both"]
        r_scaled = raw.eval_distances(3 * batch.audio, 3 * batch.video, batch.class_text)["both"]
    assert torch.allclose(d, d_scaled, atol=1e-5)
    assert not torch.allclose(r, r_scaled, atol=1e-5)


def test_devise_dropout_masks_inputs_and_class_matrix():
    model = build("--devise", "--dropout_baselines", "0.5").train()
    batch = make_batch()
    seen = []
    model.dropout.register_forward_hook(lambda m, i, o: seen.append((i[0].shape, (o == 0).float().mean().item())))
    model.training_step(batch)
    assert [s for s, _ in seen] == [(B, D_A + D_V), (C, 300)]
    assert all(0.2 < frac < 0.8 for _, frac in seen)
    # bilinear(x) · Wᵀ with dropout off (eval) equals the hand product
    model.eval()
    with torch.no_grad():
        x = torch.cat((batch.video, batch.audio), 1)
        scores = x @ model.bilinear.weight.t() @ batch.class_text.t()
        loss, _ = model.training_step(batch)
    assert loss.item() == pytest.approx(devise_loss(scores, batch.label).item(), rel=1e-5)


@pytest.mark.parametrize("name", ["ale", "apn", "cjme", "avgzslnet"])
def test_eval_embeddings_match_the_reported_distances(name):
    from src.args import finalize_main_args, get_main_parser
    from src.models import create_model
    args = finalize_main_args(get_main_parser().parse_args(
        ["--root_dir", "x", "--dataset_name", "UCF", "--embeddings_hidden_size", "32", "--embedding_use_bn",
         *([f"--{name}"] if name != "avgzslnet" else [])]))
    torch.manual_seed(0)
    m = create_model(name, args).eval()
    a, v, w = torch.randn(7, 512), torch.randn(7, 512), torch.randn(5, 300)
    e, t = m.eval_embeddings(a, v, w)
    assert e.shape[0] == 7 and t.shape[0] == 5 and e.shape[1] == t.shape[1]
    d = m.eval_distances(a, v, w)
    if name == "avgzslnet":
        ds = m.eval_distances(a, v, w, squared=True)
        assert torch.allclose(torch.cdist(e, t) ** 2, ds["both"], atol=1e-4)
    else:
        assert torch.allclose(torch.cdist(e, t), d["both"], atol=1e-5)
