"""TCaF (docs/tcaf.md): collation against hand-built batches, the network's shapes, mask and input
transforms, the state_dict of the six published configurations, the losses on hand-checked
cases, one epoch on a tiny temporal split (loss, BatchNorm statistics), the validation loss, and
evaluation against a direct transcription of docs/tcaf.md 7."""
import argparse
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from src.args import finalize_main_args, get_main_parser
from src.data import SplitData
from src.errors import UserError
from src.models import create_model, get_entry
from src.models.base import EpochInputs
from src.models.tcaf import (CLS_RATES, PUBLISHED_SWITCHES, SELAVI_RATES, TEMPORAL_BATCHES, Collation,
                             CrossModalAttention, Multimodal_Sequence_Transformer, TemporalBatch, as_sequences,
                             collate, cross_modal_mask, modality_rates, tcaf_losses, temporal_batch)
from src.sampler import PairSampler
from src.sequences import Sequences
from src.steps import Steps, train_epoch, validation_loss

KEYS_JSON = Path(__file__).resolve().parents[2] / "shared" / "reference" / "tcaf_checkpoint_keys.json"
D_A, D_V, C = 6, 10, 4

# docs/tcaf.md 9: family, D_a, D_v, enc hidden, embedding_dropout, decoder_dropout, additional_dropout, depth,
# heads, dim_head, transformer_dropout, transformer_embedding_dropout, lr, scheduler, seqlen mode
BEST = {
    "best_main_ucf": ("main", 512, 512, 256, 0.4, 0.2, 0.1, 5, 8, 64, 0.3, 0.2, 5e-5, False, "max"),
    "best_main_anet": ("main", 512, 512, 128, 0.2, 0.1, 0.1, 8, 3, 128, 0.3, 0.2, 7e-5, True, "fixed"),
    "best_main_vggsound": ("main", 512, 512, 128, 0.2, 0.2, 0.2, 8, 6, 128, 0.5, 0.2, 7e-5, False, "max"),
    "best_cls_ucf": ("cls", 128, 4096, 512, 0.3, 0.1, 0.1, 6, 8, 64, 0.3, 0.2, 7e-5, True, "max"),
    "best_cls_anet": ("cls", 128, 4096, 512, 0.3, 0.1, 0.1, 6, 8, 64, 0.4, 0.2, 7e-5, True, "fixed"),
    "best_cls_vggsound": ("cls", 128, 4096, 512, 0.2, 0.2, 0.1, 8, 8, 64, 0.5, 0.1, 6e-5, False, "max"),
}
# docs/tcaf.md 8: keys and parameters (counted once) of the original class.
COUNTS = {"best_main_ucf": (144, 4_521_764), "best_main_anet": (177, 5_161_908),
          "best_main_vggsound": (177, 8_848_308), "best_cls_ucf": (155, 7_269_972),
          "best_cls_anet": (155, 7_269_972), "best_cls_vggsound": (177, 8_655_028)}


def best_args(config: str) -> argparse.Namespace:
    """main.py's arguments of a published configuration (config/best/*.yaml over default.yaml)."""
    fam, d_a, d_v, h, e_drop, d_drop, a_drop, depth, heads, dim_head, t_drop, emb_drop, lr, sched, mode = BEST[config]
    args = finalize_main_args(get_main_parser().parse_args(
        ["--root_dir", "x", "--dataset_name", "UCF", "--new_model_sequence",
         "--feature_extraction_method", f"{fam}_features_non_averaged"]))
    vars(args).update(dict(
        feature_extraction_method=Path(f"{fam}_features_non_averaged"), input_size_audio=d_a, input_size_video=d_v,
        embeddings_hidden_size=h, embedding_dropout=e_drop, decoder_hidden_size=512, decoder_dropout=d_drop,
        additional_dropout=a_drop, transformer_depth=depth, transformer_heads=heads, transformer_dim_head=dim_head,
        transformer_mlp_dim=128, transformer_dropout=t_drop, transformer_embedding_dim=64,
        transformer_embedding_dropout=emb_drop, transformer_embedding_fourier_scale=10.0,
        batch_seqlen_train=mode, batch_seqlen_train_maxlen=60, batch_seqlen_train_trim="random",
        batch_seqlen_test=mode, batch_seqlen_test_maxlen=300, batch_seqlen_test_trim="center",
        rec_loss=True, reg_loss=True, cross_entropy_loss=True, eval_bs=64, lr=lr, lr_scheduler=sched,
        z_score_inputs=False, **PUBLISHED_SWITCHES))
    return args


def small(seed=0, **kw) -> Multimodal_Sequence_Transformer:
    torch.manual_seed(seed)
    cfg = dict(input_size_audio=D_A, input_size_video=D_V, embeddings_hidden_size=16, embedding_dropout=0.1,
               decoder_hidden_size=16, decoder_dropout=0.1, additional_dropout=0.1, depth=2, heads=2, dim_head=8,
               mlp_dim=16, transformer_dropout=0.1, embedding_token_dropout=0.1, eval_bs=4)
    return Multimodal_Sequence_Transformer(**{**cfg, **kw})


def sequences(lengths, width, base=0.0) -> Sequences:
    """Token k of sample i has every value base + 100 i + k (its identity, readable after a cut)."""
    return Sequences.from_list([base + 100 * i + torch.arange(t, dtype=torch.float32)[:, None].expand(t, width)
                                for i, t in enumerate(lengths)])


def pad_by_hand(seqs: Sequences, idx, length=None, starts=None):
    """The padded batch and mask of docs/tcaf.md 2 written with Python loops."""
    rows = []
    for b, i in enumerate(idx):
        x = seqs.values[seqs.offsets[i]: seqs.offsets[i] + seqs.lengths[i]]
        s = 0 if starts is None else starts[b]
        rows.append(x[s: s + length] if length is not None else x)
    L = length if length is not None else max(len(r) for r in rows)
    out = torch.zeros(len(rows), L, seqs.width)
    mask = torch.zeros(len(rows), L)
    for b, r in enumerate(rows):
        out[b, :len(r)] = r
        mask[b, :len(r)] = 1
    return out, mask


def random_split(lengths_a, lengths_v, labels, seed=0, name="train", unseen=()) -> SplitData:
    """A temporal SplitData: tokens = class centre + noise (audio in 0..255 as VGGish), unit word vectors."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    c = int(labels.max()) + 1
    centre_a, centre_v = torch.rand(c, D_A, generator=g) * 255, torch.randn(c, D_V, generator=g)
    audio = Sequences.from_list([(centre_a[y] + 20 * torch.rand(t, D_A, generator=g)).clamp(0, 255)
                                 for y, t in zip(labels, lengths_a)])
    video = Sequences.from_list([centre_v[y] + 0.3 * torch.randn(t, D_V, generator=g) for y, t in zip(labels, lengths_v)])
    text = F.normalize(torch.randn(c, 300, generator=g), dim=1)
    seen = torch.tensor([i not in unseen for i in range(c)])
    return SplitData(name=name, audio=audio, video=video, targets=labels * 3, labels=labels,
                     class_ids=torch.arange(c) * 3, seen_mask=seen, text=text, word_vectors=text)


# -- collation -------------------------------------------------------------------------------------

def test_modality_rates_of_the_feature_folders():
    from src.families import folder_family

    def rates(folder):          # the rates of the family a folder's name tells (src/families.py)
        return modality_rates(folder_family(folder).family)
    assert rates(Path("data/cls_features_non_averaged")) == CLS_RATES == (0.96, 0.64)
    assert rates("main_features_non_averaged") == SELAVI_RATES == (1.0, 1.0)
    assert rates("/cls_data/main_features_non_averaged") == SELAVI_RATES   # the name only


def test_max_mode_pads_each_modality_to_the_batch_longest():
    audio, video = sequences([3, 5, 2, 4], D_A), sequences([4, 1, 6, 2], D_V, base=0.5)
    idx = torch.tensor([2, 0, 1])
    t = collate(audio, video, idx, Collation("max", maxlen=2, rate_audio=0.96, rate_video=0.64))   # maxlen ignored
    a, a_mask = pad_by_hand(audio, [2, 0, 1])
    v, v_mask = pad_by_hand(video, [2, 0, 1])
    assert t.audio.shape == (3, 5, D_A) and t.video.shape == (3, 6, D_V)
    assert torch.equal(t.audio, a) and torch.equal(t.audio_mask, a_mask) and t.audio.dtype == torch.float32
    assert torch.equal(t.video, v) and torch.equal(t.video_mask, v_mask)
    assert torch.equal(t.audio_mask, torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1.]]))
    assert torch.equal(t.audio_time, (torch.arange(5, dtype=torch.float64) * 0.96).float().expand(3, 5))
    assert torch.equal(t.video_time[1], torch.tensor([0, 0.64, 1.28, 1.92, 2.56, 3.2], dtype=torch.float64).float())


def test_fixed_mode_centre_cuts_by_hand():
    """L = 4 video tokens; cls audio round(4 * 0.64 * 0.96) = round(2.4576) = 2 tokens."""
    col = Collation("fixed", maxlen=4, trim="center", rate_audio=0.96, rate_video=0.64)
    assert col.fixed_lengths == (2, 4)
    assert Collation("fixed", 60, rate_audio=0.96, rate_video=0.64).fixed_lengths == (37, 60)
    assert Collation("fixed", 300, rate_audio=0.96, rate_video=0.64).fixed_lengths == (184, 300)
    assert Collation("fixed", 300).fixed_lengths == (300, 300)
    # sample: (T_a, T_v) -> video start, audio start
    #   0: (7, 10): s = 6 // 2 = 3, audio min(7 - 2, round(3 * 0.64 / 0.96) = 2) = 2
    #   1: (5, 3):  video padded, s = 0 -> audio from 0 (cut to 2)
    #   2: (1, 5):  s = 1 // 2 = 0 -> audio from 0 (padded)
    #   3: (2, 9):  s = 5 // 2 = 2, audio not longer than 2: from 0
    #   4: (9, 11): s = 7 // 2 = 3 -> round(2.0) = 2; min(9 - 2 = 7, 2) = 2
    #   5: (3, 16): s = 12 // 2 = 6 -> round(4.0) = 4; min(3 - 2 = 1, 4) = 1
    audio, video = sequences([7, 5, 1, 2, 9, 3], D_A), sequences([10, 3, 5, 9, 11, 16], D_V)
    idx = list(range(6))
    t = collate(audio, video, torch.arange(6), col)
    v, v_mask = pad_by_hand(video, idx, 4, [3, 0, 0, 2, 3, 6])
    a, a_mask = pad_by_hand(audio, idx, 2, [2, 0, 0, 0, 2, 1])
    assert torch.equal(t.video, v) and torch.equal(t.video_mask, v_mask)
    assert torch.equal(t.audio, a) and torch.equal(t.audio_mask, a_mask)
    assert torch.equal(t.video_mask[1], torch.tensor([1, 1, 1, 0.])) and torch.equal(t.audio_mask[2], torch.tensor([1, 0.]))
    assert t.video[0, 0, 0] == 3 and t.audio[0, 0, 0] == 2 and t.audio[5, 0, 0] == 501
    # timesteps start at 0 after a cut [published behaviour]
    assert torch.equal(t.video_time, (torch.arange(4, dtype=torch.float64) * 0.64).float().expand(6, 4))
    assert torch.equal(t.audio_time, torch.tensor([0, 0.96]).expand(6, 2))


def test_fixed_mode_selavi_rates_cut_audio_with_the_video():
    col = Collation("fixed", maxlen=3, trim="center")
    audio, video = sequences([8, 8, 2], 2), sequences([8, 7, 2], 2)
    t = collate(audio, video, None, col)
    assert t.audio.shape == (3, 3, 2) and t.video.shape == (3, 3, 2)
    assert t.video[:, 0, 0].tolist() == [2, 102, 200] and t.audio[:, 0, 0].tolist() == [2, 102, 200]
    assert t.audio_time[0].tolist() == [0, 1, 2] and t.video_mask[2].tolist() == [1, 1, 0]


def test_fixed_mode_random_cuts_never_draw_the_last_window():
    """s ~ U{0 .. T_v - L - 1} (torch.randint(T_v - L)); the audio follows; a generator makes it reproducible."""
    col = Collation("fixed", maxlen=4, trim="random", rate_audio=0.96, rate_video=0.64)
    audio, video = sequences([20, 3], D_A), sequences([8, 4], D_V)       # sample 0: T_v - L = 4
    g = torch.Generator().manual_seed(0)
    starts, audio_starts = set(), set()
    for _ in range(200):
        t = collate(audio, video, torch.tensor([0, 1]), col, g)
        s = int(t.video[0, 0, 0])
        starts.add(s)
        audio_starts.add((s, int(t.audio[0, 0, 0])))
        assert t.video[1, :, 0].tolist() == [100, 101, 102, 103]         # exactly L: never cut
        assert t.audio[1, :, 0].tolist() == [100, 101]                   # longer audio of an uncut video: from 0
    assert starts == {0, 1, 2, 3}
    assert audio_starts == {(s, 0 if s == 0 else round(s * 0.64 / 0.96)) for s in range(4)}
    a = collate(audio, video, None, col, torch.Generator().manual_seed(5))
    b = collate(audio, video, None, col, torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_as_sequences_of_tensors():
    x = torch.randn(3, 5)
    s = as_sequences(x)
    assert s.lengths.tolist() == [1, 1, 1] and torch.equal(s.gather()[0], x[:, None])
    y = torch.randn(2, 4, 5)
    assert torch.equal(as_sequences(y).gather()[0], y)


# -- the network -----------------------------------------------------------------------------------

def tokens(model, lengths_a, lengths_v, seed=0, idx=None):
    split = random_split(lengths_a, lengths_v, [i % 2 for i in range(len(lengths_a))], seed)
    return collate(split.audio, split.video, idx, model.test_collation), split


def test_forward_and_get_embeddings_shapes():
    model = small()
    t, split = tokens(model, [3, 5, 2], [4, 2, 6])
    theta_o = model(*t)
    assert theta_o.shape == (3, 64) and (theta_o >= 0).all()            # ReLU last [published behaviour]
    theta_o, theta_w = model.get_embeddings(t.audio, t.audio_mask, t.video, t.video_mask, split.text)
    assert theta_o.shape == (3, 64) and theta_w.shape == (2, 64)
    assert model.get_embeddings(t.audio, t.audio_mask, t.video, t.video_mask)[1] is None


def test_seconds_and_positions_agree_at_rate_one_and_differ_for_cls():
    """forward uses the collator's seconds, get_embeddings integer positions (docs/tcaf.md 3.4)."""
    model = small().eval()
    t, _ = tokens(model, [3, 5], [4, 6])
    with torch.no_grad():
        # equal up to float rounding: the time embedding's matmul may be blocked differently
        assert torch.allclose(model(*t), model.get_embeddings(t.audio, t.audio_mask, t.video, t.video_mask)[0],
                              atol=1e-6)
        cls = collate(*[as_sequences(x) for x in (t.audio, t.video)], None,
                      Collation(rate_audio=0.96, rate_video=0.64))
        assert not torch.allclose(model(*cls), model.get_embeddings(cls.audio, cls.audio_mask, cls.video,
                                                                    cls.video_mask)[0])


def test_input_transforms():
    """a / 255 (every family) and each video channel L2-normalised over time; zero pad rows keep the norm."""
    model = small().eval()
    seen = {}
    model.A_enc.fc[0].register_forward_pre_hook(lambda m, inp: seen.__setitem__("a", inp[0]))
    model.V_enc.fc[0].register_forward_pre_hook(lambda m, inp: seen.__setitem__("v", inp[0]))
    t, _ = tokens(model, [3, 5], [4, 6])
    with torch.no_grad():
        model(*t)
    assert torch.allclose(seen["a"], (t.audio / 255).reshape(-1, D_A))
    v = t.video
    norm = v.pow(2).sum(dim=1, keepdim=True).sqrt().clamp(min=1e-12)    # (B, 1, D_v): over time
    assert torch.allclose(seen["v"], (v / norm).reshape(-1, D_V))
    # sample 0 alone (4 tokens, no padding) normalises its valid rows the same
    with torch.no_grad():
        model(t.audio[:1, :3], t.audio_mask[:1, :3], t.audio_time[:1, :3], v[:1, :4], t.video_mask[:1, :4],
              t.video_time[:1, :4])
    assert torch.allclose(seen["v"], (v[:1, :4] / norm[:1]).reshape(-1, D_V))


def test_the_cross_modal_mask():
    got = cross_modal_mask(torch.tensor([[True, True, False]]), torch.tensor([[True, False]]))[0]
    # order: cls, a0, a1, a2 (pad), v0, v1 (pad)
    want = torch.tensor([[1, 1, 1, 0, 1, 0],     # cls: every valid token, itself included
                         [1, 0, 0, 0, 1, 0],     # audio: cls + valid video
                         [1, 0, 0, 0, 1, 0],
                         [0, 0, 0, 0, 0, 0],     # a padded query: nothing
                         [1, 1, 1, 0, 0, 0],     # video: cls + valid audio
                         [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(got, want)


def test_padded_query_rows_stay_finite_and_masked_keys_weigh_nothing():
    torch.manual_seed(0)
    attn = CrossModalAttention(8, heads=2, dim_head=4, dropout=0.0).eval()
    x = torch.randn(1, 6, 8)
    mask = cross_modal_mask(torch.tensor([[True, True, False]]), torch.tensor([[True, False]]))
    out = attn(x, mask)
    assert torch.isfinite(out).all()                         # padded rows average every value, finitely
    x2 = x.clone()
    x2[0, [3, 5]] = 1e4                                      # the padded tokens change: valid rows do not
    out2 = attn(x2, mask)
    assert torch.allclose(out[0, [0, 1, 2, 4]], out2[0, [0, 1, 2, 4]], atol=1e-6)
    model = small().eval()
    t, _ = tokens(model, [1, 5], [6, 1])                     # long pads in both modalities
    with torch.no_grad():
        assert torch.isfinite(model(*t)).all()


# -- checkpoints -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference():
    if not KEYS_JSON.exists():
        pytest.skip(f"{KEYS_JSON} is absent (../shared not laid out)")
    return json.loads(KEYS_JSON.read_text())


def build_best(config: str) -> Multimodal_Sequence_Transformer:
    torch.manual_seed(0)
    return create_model("tcaf", best_args(config))


@pytest.mark.parametrize("config", sorted(BEST))
def test_state_dict_of_the_published_configurations(reference, config):
    model = build_best(config)
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == reference[config]["keys"]
    assert (len(model.state_dict()), sum(p.numel() for p in model.parameters())) == COUNTS[config]
    assert (reference[config]["n_keys"], reference[config]["n_params"]) == COUNTS[config]
    model.load_state_dict({k: torch.zeros(s) for k, s in reference[config]["keys"]}, strict=True)


@pytest.mark.parametrize("config", sorted(BEST))
def test_published_hyper_parameters_reach_the_modules(config):
    fam, d_a, d_v, h, e_drop, d_drop, a_drop, depth, heads, dim_head, t_drop, emb_drop, *_, mode = BEST[config]
    m = build_best(config)
    assert (m.A_enc.fc[0].in_features, m.V_enc.fc[0].in_features, m.A_enc.fc[0].out_features) == (d_a, d_v, h)
    assert (m.A_enc.fc[3].p, m.O_proj.fc[3].p, m.D_o.fc[7].p, m.W_proj.fc[3].p, m.D_w.fc[3].p) == \
        (e_drop, d_drop, d_drop, a_drop, a_drop)
    layer = m.Audio_visual_transformer.layers[0]
    assert len(m.Audio_visual_transformer.layers) == depth and layer.attn.heads == heads
    assert layer.attn.to_q.out_features == heads * dim_head and layer.ff.net[2].p == t_drop == layer.attn.to_out[1].p
    assert m.audiovisual_embeddings.dropout.p == emb_drop and m.position_encoder_block is m.audiovisual_embeddings
    rates = CLS_RATES if fam == "cls" else SELAVI_RATES
    assert m.train_collation == Collation(mode, 60, "random", *rates)
    assert m.test_collation == Collation(mode, 300, "center", *rates)
    emb = m.audiovisual_embeddings
    assert emb.fourier_randn.shape == (2, 32) and 5 < emb.fourier_randn.std() < 20     # 10 * N(0, 1)


def test_the_embedding_is_saved_under_both_names_and_loads_from_either():
    model, other = small(seed=0), small(seed=1)
    state = model.state_dict()
    both = [k for k in state if k.startswith(("position_encoder_block.", "audiovisual_embeddings."))]
    assert len(both) == 18
    for k in both:
        assert torch.equal(state[k], state[k.replace("position_encoder_block.", "audiovisual_embeddings.")
                                         if k.startswith("position") else k])
    for drop in ("position_encoder_block.", "audiovisual_embeddings."):
        one_name = {k: v for k, v in state.items() if not k.startswith(drop)}
        fresh = small(seed=2)
        assert set(fresh.complete_state_dict(one_name)) == set(state)
        fresh.load_state_dict(one_name, strict=True)
        assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())
    assert other.complete_state_dict(state) is state                 # a complete one is left as it is
    assert not torch.equal(other.cls_token, model.cls_token)


def test_optimizer_counts_the_shared_module_once():
    model = small()
    opt, sched = model.configure_optimizers(lr=7e-5, lr_scheduler=False)
    assert sched is None and isinstance(opt, torch.optim.Adam)
    d = opt.defaults
    assert (d["lr"], d["betas"], d["eps"], d["weight_decay"]) == (7e-5, (0.9, 0.999), 1e-8, 1e-5)
    params = [p for g in opt.param_groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == len(list(model.parameters()))
    assert all(p is not model.audiovisual_embeddings.fourier_randn for p in params)     # a buffer
    _, sched = model.configure_optimizers(lr=7e-5, lr_scheduler=True)
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) and (sched.mode, sched.patience) == ("max", 3)


# -- the losses ------------------------------------------------------------------------------------

def test_losses_on_a_hand_checked_case():
    theta_o, theta_w = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    w, rho_o, rho_w = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 3.0]])
    theta_c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    parts = tcaf_losses(theta_o, rho_o, theta_w, rho_w, w, theta_c, torch.tensor([0]))
    assert list(parts) == ["rec", "reg", "ce"]
    assert parts["rec"].item() == pytest.approx(0.5 + 2.0)                 # (1 + 0) / 2 + (0 + 4) / 2
    assert parts["reg"].item() == pytest.approx(0.5)                       # (1 + 0) / 2
    assert parts["ce"].item() == pytest.approx(math.log(1 + math.exp(-1)))  # scores [1, 0], class 0
    parts = tcaf_losses(theta_o, rho_o, theta_w, rho_w, w, theta_c, torch.tensor([1]))
    assert parts["ce"].item() == pytest.approx(math.log(1 + math.exp(1)))
    off = tcaf_losses(theta_o, rho_o, theta_w, rho_w, w, None, torch.tensor([0]), rec=False, ce=False)
    assert off["rec"].item() == 0 and off["ce"].item() == 0 and off["reg"].item() == pytest.approx(0.5)


def test_training_step_composes_the_modules_in_order():
    model = small()
    split = random_split([3, 5, 2, 4], [4, 2, 6, 3], [0, 1, 1, 2])
    batch = temporal_batch(split, torch.tensor([0, 1, 2, 3]), model.train_collation)
    torch.manual_seed(7)
    loss, parts = model.training_step(batch)
    torch.manual_seed(7)                     # the same dropout draws, module after module
    theta_o = model(*batch.tokens)
    rho_o = model.D_o(theta_o)
    theta_w = model.W_proj(batch.text)
    rho_w = model.D_w(theta_w)
    theta_c = model.W_proj(split.text)       # train mode: BN over the C class rows
    want = tcaf_losses(theta_o, rho_o, theta_w, rho_w, batch.text, theta_c, batch.label)
    assert all(torch.equal(parts[k], want[k]) for k in want)
    assert torch.equal(loss, want["rec"] + want["reg"] + want["ce"]) and loss.requires_grad
    assert torch.equal(batch.text, split.text[batch.label]) and torch.equal(batch.class_text, split.text)


def test_its_batches_take_averaged_features_as_one_token_sequences():
    from conftest import random_pair_split
    model = small()
    split = random_pair_split(8, 3, D_A, D_V, nonnegative=True)
    batch = TEMPORAL_BATCHES.train(model, split, torch.arange(8), torch.arange(8, 16))
    assert isinstance(batch, TemporalBatch) and batch.audio.shape == (8, 1, D_A) and bool(batch.video_mask.all())
    loss, parts = model.training_step(batch)
    assert torch.isfinite(loss) and set(parts) == {"rec", "reg", "ce"}
    loss.backward()
    assert model.cls_token.grad is not None


# -- the epoch, the validation loss ----------------------------------------------------------------

def bn_counts(model):
    return {name: [int(m.num_batches_tracked) for m in getattr(model, name).modules()
                   if isinstance(m, torch.nn.BatchNorm1d)] for name in ("A_enc", "V_enc", "O_proj", "W_proj", "D_o", "D_w")}


def epoch_inputs(model, opt, train, val, sampler, epoch=0, n_batches=6, bs=8):
    return EpochInputs(model=model, optimizer=opt, train=train, val=val, sampler=sampler, epoch=epoch, epochs=3,
                       n_batches=n_batches, bs=bs, z_score=False, retrain_all=False, reproduce_original=False,
                       val_metrics=lambda d: {}, steps=Steps(model), batches=TEMPORAL_BATCHES)


def tiny_splits():
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(24) % 3
    train = random_split(torch.randint(2, 7, (24,), generator=g).tolist(), torch.randint(2, 9, (24,), generator=g).tolist(),
                         labels, seed=0)
    val = random_split([4] * 6 + [3] * 3, [5] * 6 + [2] * 3, torch.arange(9) % 3, seed=0, name="val", unseen=(2,))
    return train, val


def test_one_epoch_lowers_the_loss_and_moves_the_batchnorm_statistics_as_published():
    train, val = tiny_splits()
    model = small()
    opt, _ = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
    sampler = PairSampler(train.labels, 3, seed=0)
    before = bn_counts(model)
    n = 6
    stats = [train_epoch(epoch_inputs(model, opt, train, val, sampler, epoch=e, n_batches=n)) for e in range(4)]
    assert set(stats[0]) == {"loss", "rec", "reg", "ce"} and all(isinstance(v, float) for v in stats[0].values())
    assert stats[0]["loss"] == pytest.approx(stats[0]["rec"] + stats[0]["reg"] + stats[0]["ce"], rel=1e-5)
    assert stats[-1]["loss"] < stats[0]["loss"]
    # per step: A_enc, V_enc, O_proj 2 (forward, extra pass); W_proj 3 (w, class matrix, extra pass); D_o, D_w 1
    per_step = {"A_enc": 2, "V_enc": 2, "O_proj": 2, "W_proj": 3, "D_o": 1, "D_w": 1}
    after = bn_counts(model)
    for name, k in per_step.items():
        assert [a - b for a, b in zip(after[name], before[name])] == [4 * n * k] * len(before[name]), name
    assert model.training


def test_the_extra_pass_uses_integer_positions_in_train_mode():
    """after_optimizer_step = get_embeddings on the same batch in train mode (output discarded)."""
    model = small(seqlen_train="max", rate_audio=0.96, rate_video=0.64)
    split = random_split([3, 5, 2], [4, 2, 6], [0, 1, 1])
    batch = temporal_batch(split, torch.tensor([0, 1, 2]), model.train_collation)
    calls = []
    model.audiovisual_embeddings.register_forward_pre_hook(lambda m, inp: calls.append((m.training, inp[4], inp[5])))
    model.after_optimizer_step(batch)
    assert len(calls) == 1 and calls[0] == (True, None, None)
    model.training_step(batch)
    assert torch.equal(calls[1][1], batch.audio_time) and calls[1][1][0, 1].item() == pytest.approx(0.96)


def test_a_non_finite_loss_stops_the_epoch():
    train, val = tiny_splits()
    model = small()
    opt, _ = model.configure_optimizers(lr=1e-3, lr_scheduler=False)
    with torch.no_grad():
        model.D_w.fc[0].weight.fill_(float("nan"))
    with pytest.raises(UserError, match="non-finite training loss at epoch 1"):
        train_epoch(epoch_inputs(model, opt, train, val, PairSampler(train.labels, 3, seed=0)))


def test_validation_loss_is_the_eval_mode_loss_of_every_val_sample_once():
    _, val = tiny_splits()
    model = small(eval_bs=4).train()
    got = validation_loss(model, val, TEMPORAL_BATCHES)
    assert model.training and validation_loss(model, val, TEMPORAL_BATCHES) == got
    model.eval()
    total = 0.0
    with torch.no_grad():
        for idx in (torch.arange(0, 4), torch.arange(4, 8), torch.arange(8, 9)):
            b = temporal_batch(val, idx, model.test_collation)
            total += float(model.training_step(b)[0]) * len(idx)
    assert got == pytest.approx(total / 9, rel=1e-6)


# -- evaluation (docs/tcaf.md 7) ------------------------------------------------------------------------

def transcribed_distances(model, split, bs, fixed_len=None, rates=(1.0, 1.0)):
    """docs/tcaf.md 7 written out: θ_o of batches of `bs` padded by hand (fixed: the centre cut), get_embeddings
    in eval mode with integer positions; θ_w = W_proj(text) in eval mode; plain L2 cdist."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(split), bs):
            idx = list(range(i, min(i + bs, len(split))))
            if fixed_len is None:
                a, a_mask = pad_by_hand(split.audio, idx)
                v, v_mask = pad_by_hand(split.video, idx)
            else:
                len_a = round(fixed_len * rates[1] * rates[0])
                s_v, s_a = [], []
                for j in idx:
                    t_v, t_a = int(split.video.lengths[j]), int(split.audio.lengths[j])
                    s = (t_v - fixed_len) // 2 if t_v > fixed_len else 0
                    s_v.append(s)
                    s_a.append(min(t_a - len_a, round(s * rates[1] / rates[0])) if s > 0 and t_a > len_a else 0)
                a, a_mask = pad_by_hand(split.audio, idx, len_a, s_a)
                v, v_mask = pad_by_hand(split.video, idx, fixed_len, s_v)
            out.append(model.get_embeddings(a, a_mask, v, v_mask)[0])
        return torch.cdist(torch.cat(out), model.W_proj(split.text))


@pytest.mark.parametrize("mode", ["max", "fixed"])
def test_eval_distances_follow_the_transcription(mode):
    g = torch.Generator().manual_seed(1)
    n = 11
    split = random_split(torch.randint(1, 12, (n,), generator=g).tolist(), torch.randint(1, 12, (n,), generator=g).tolist(),
                         torch.arange(n) % 3, seed=4, name="test", unseen=(1,))
    model = small(seqlen_test=mode, seqlen_test_maxlen=5, rate_audio=0.96, rate_video=0.64, eval_bs=4)
    model.train()
    model.training_step(temporal_batch(split, torch.arange(n), model.train_collation))   # move BN statistics
    model.eval()
    d = model.eval_distances(split.audio, split.video, split.text)
    assert set(d) == {"both"} and d["both"].shape == (n, 3)
    want = transcribed_distances(model, split, 4, None if mode == "max" else 5, (0.96, 0.64))
    assert torch.allclose(d["both"], want, atol=1e-6)
    assert torch.allclose(model.eval_distances(split.audio, split.video, split.text, squared=True)["both"], want ** 2,
                          atol=1e-5)
    samples, classes = model.eval_embeddings(split.audio, split.video, split.text)
    assert samples.shape == (n, 64) and classes.shape == (3, 64)
    # evaluate_model's chunks (slices of the Sequences) give the same rows
    parts = [model.eval_distances(split.audio[i:i + 4], split.video[i:i + 4], split.text)["both"] for i in (0, 4, 8)]
    assert torch.equal(torch.cat(parts), d["both"])


def test_evaluation_is_padding_invariant():
    model = small()
    split = random_split([3, 9, 2], [4, 12, 3], [0, 1, 0])
    model.training_step(temporal_batch(split, torch.arange(3), model.train_collation))
    model.eval()
    with torch.no_grad():
        together = model.sample_embeddings(split.audio, split.video)                 # padded to 9 / 12 tokens
        alone = torch.cat([model.sample_embeddings(split.audio[i:i + 1], split.video[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)
    model.train()                  # [published behaviour] in training the zero pad rows enter the BN statistics
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    t = collate(split.audio, split.video, torch.tensor([0, 2]), model.train_collation)
    longer = t._replace(audio=F.pad(t.audio, (0, 0, 0, 7)), audio_mask=F.pad(t.audio_mask, (0, 7)),
                        audio_time=torch.arange(10.0).expand(2, 10), video=F.pad(t.video, (0, 0, 0, 7)),
                        video_mask=F.pad(t.video_mask, (0, 7)), video_time=torch.arange(11.0).expand(2, 11))
    assert not torch.allclose(model(*t), model(*longer), atol=1e-3)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(*t), model(*longer), atol=1e-5)


# -- the registry entry ----------------------------------------------------------------------------

def test_registry_entry():
    e = get_entry("tcaf")
    assert (e.flag, e.class_name, e.batches, e.epoch_fn, e.val_loss_fn) == (
        "new_model_sequence", "Multimodal_Sequence_Transformer", TEMPORAL_BATCHES, None, None)
    assert type(build_best("best_cls_ucf")).__name__ == e.class_name


def test_builder_refuses_unpublished_switches_and_takes_none_as_published():
    args = best_args("best_main_ucf")
    args.use_self_attention, args.transformer_embedding_time_embed_type = True, "fixed"
    with pytest.raises(UserError, match="--use_self_attention True, --transformer_embedding_time_embed_type fixed"):
        create_model("tcaf", args)
    args = best_args("best_main_ucf")
    args.use_self_attention = args.transformer_use_embedding_net = args.rec_loss = None
    model = create_model("tcaf", args)
    assert model.losses_on == {"rec": True, "reg": True, "ce": True}
    args.rec_loss = args.reg_loss = args.cross_entropy_loss = False
    with pytest.raises(UserError, match="at least one of"):
        create_model("tcaf", args)
    args = best_args("best_main_ucf")
    args.z_score_inputs = True
    with pytest.raises(UserError, match="z_score_inputs"):
        create_model("tcaf", args)


def test_temporal_batch_dataclass_fields():
    split = random_split([2, 3], [3, 1], [0, 1])
    b = temporal_batch(split, torch.tensor([1, 0]), Collation())
    assert isinstance(b, TemporalBatch) and b.label.tolist() == [1, 0]
    assert b.audio.shape == (2, 3, D_A) and b.video.shape == (2, 3, D_V) and b.class_text.shape == (2, 300)
