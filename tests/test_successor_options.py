"""The original options of TCaF's and ClipClap's code (issue 17: no flag is accepted and ignored):
ClipClap's `--modality audio|video` class-vector parts, `--embeddings_batch_norm False`, and
`--optimizer adam-sam` (SAM around Adam, src/models/sam.py) for both, refused for every other model."""
import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import main_args, run_cli, warnings_of
from original_runs import parsed
from src.errors import UserError
from src.models import create_model, get_entry, list_models
from src.models.base import EpochInputs, GZSLModel, adam, adam_or_sam, plateau
from src.models.blocks import EmbeddingNet
from src.models.clipclap import ClipClap_model, VectorBatch, class_vector_part
from src.models.sam import DEFAULT_RHO, SAM
from src.recipes import cell_commands
from src.steps import Steps, run_steps, sam_step

TEXT_DIM, CLIP = 1536, 512
COLUMNS = {"all": list(range(TEXT_DIM)), "clip": list(range(CLIP)), "wavcaps": list(range(CLIP, TEXT_DIM))}


# -- ClipClap's class-vector part by modality ---------------------------------------------------------

class Inputs:
    """The inputs a module's forward got, one tensor per call (a forward pre-hook)."""

    def __init__(self, module: nn.Module):
        self.seen = []
        module.register_forward_pre_hook(lambda m, args: self.seen.append(args[0].detach().clone()))


@pytest.mark.parametrize("modality, word_embeddings, part, o_width", [
    ("both", "both", "all", 1536), ("both", "clip", "clip", 1536), ("both", "wavcaps", "wavcaps", 1536),
    ("audio", "both", "wavcaps", 1024), ("audio", "wavcaps", "wavcaps", 1024), ("audio", "clip", "wavcaps", 1024),
    ("video", "both", "clip", 512), ("video", "clip", "clip", 512), ("video", "wavcaps", "clip", 512)])
def test_w_enc_reads_the_originals_class_vector_part(modality, word_embeddings, part, o_width):
    cols = COLUMNS[part]
    assert list(range(TEXT_DIM))[class_vector_part(modality, word_embeddings)] == cols
    torch.manual_seed(0)
    model = ClipClap_model(modality=modality, word_embeddings=word_embeddings)
    assert model.W_enc.fc[0].in_features == len(cols) and model.O_enc.fc[0].in_features == o_width
    w_in, o_in = Inputs(model.W_enc), Inputs(model.O_enc)
    class_text = torch.arange(TEXT_DIM, dtype=torch.float32) + 1e4 * torch.arange(3.0)[:, None]   # (3, 1536)
    label = torch.tensor([0, 2, 1, 2])
    audio, video = torch.randn(4, 1024), torch.randn(4, 512)
    # training: the samples' class vectors, then the cross-entropy's class matrix
    model.train().loss_parts(VectorBatch(audio, video, class_text[label], label, class_text))
    assert [t.tolist() for t in w_in.seen] == [class_text[label][:, cols].tolist(), class_text[:, cols].tolist()]
    o = {"both": torch.cat((video, audio), 1), "audio": audio, "video": video}[modality]
    assert o_in.seen[0].shape == (4, o_width) and torch.equal(o_in.seen[0], o)
    # evaluation: the class embeddings
    w_in.seen.clear()
    model.eval().eval_distances(audio, video, class_text)
    assert [t.tolist() for t in w_in.seen] == [class_text[:, cols].tolist()]


@pytest.fixture
def warnings_of_avgzsl():
    with warnings_of() as messages:
        yield messages


def clipclap_args(data_dir, *extra):
    base = cell_commands("clipclap", "UCF", "clip", data_dir)[0][1:]
    return parsed(base[:base.index("--exp_name")] + ["--device", "cpu", *map(str, extra)])


def test_a_contradicting_word_embeddings_is_ignored_with_one_warning(warnings_of_avgzsl, tmp_path):
    args = clipclap_args(tmp_path, "--modality", "audio", "--word_embeddings", "clip")
    args.text_dim = TEXT_DIM
    model = create_model("clipclap", args)
    assert model.W_enc.fc[0].in_features == 1024 and model.text_slice == slice(CLIP, None)
    assert len(warnings_of_avgzsl) == 1
    assert "--modality audio" in warnings_of_avgzsl[0] and "--word_embeddings clip is ignored" in warnings_of_avgzsl[0]
    for agreeing in (("audio", "wavcaps"), ("video", "clip"), ("video", "both"), ("both", "clip")):
        ClipClap_model(modality=agreeing[0], word_embeddings=agreeing[1])
    assert len(warnings_of_avgzsl) == 1


# -- --embeddings_batch_norm False ------------------------------------------------------------------------

HIDDEN_FORM_WITHOUT_FIRST_BN = ["fc.0.weight", "fc.0.bias", "fc.3.weight", "fc.3.bias", "fc.4.weight", "fc.4.bias",
                                "fc.4.running_mean", "fc.4.running_var", "fc.4.num_batches_tracked"]


def test_embedding_net_default_keys_and_use_bn():
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert list(EmbeddingNet(4, 3, 0.1, hidden=5).state_dict()) == \
        ["fc.0.weight", "fc.0.bias", *(f"fc.1.{k}" for k in bn), "fc.4.weight", "fc.4.bias", *(f"fc.5.{k}" for k in bn)]
    assert list(EmbeddingNet(4, 3, 0.1, hidden=5, use_bn=False).state_dict()) == HIDDEN_FORM_WITHOUT_FIRST_BN
    no_hidden = ["fc.0.weight", "fc.0.bias", *(f"fc.1.{k}" for k in bn)]
    assert list(EmbeddingNet(4, 3, 0.1).state_dict()) == list(EmbeddingNet(4, 3, 0.1, use_bn=False).state_dict()) \
        == no_hidden
    net = EmbeddingNet(4, 3, 0.0, hidden=5, use_bn=False).train()
    x = torch.randn(6, 4, requires_grad=True)
    net(x).sum().backward()                          # the in-place ReLU on Linear's output is allowed
    assert [type(m).__name__ for m in net.fc] == ["Linear", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU",
                                                  "Dropout"]


def test_clipclap_without_embeddings_batch_norm_has_the_originals_keys(tmp_path):
    published = ClipClap_model().state_dict()
    args = clipclap_args(tmp_path, "--embeddings_batch_norm", "False")
    args.text_dim = TEXT_DIM
    model = create_model("clipclap", args)
    state = model.state_dict()
    for net in ("O_proj", "D_o"):
        assert [k for k in state if k.startswith(net + ".")] == [f"{net}.{k}" for k in HIDDEN_FORM_WITHOUT_FIRST_BN]
    for net in ("O_enc", "W_enc", "W_proj", "D_w"):
        assert [k for k in state if k.startswith(net + ".")] == [k for k in published if k.startswith(net + ".")]
    assert len(state) == 56 - 2 * 5
    assert sum(p.numel() for p in model.parameters()) == 2_237_824 - 2 * 2 * 512       # two BN(512): weight, bias
    # a checkpoint with those keys loads into the model the same flags build, not into the published one
    torch.save({"model": state}, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=False)["model"]
    other = create_model("clipclap", args)
    other.load_state_dict(loaded)
    assert all(torch.equal(other.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(RuntimeError, match="O_proj.fc.1.weight"):
        ClipClap_model().load_state_dict(loaded)


def test_tcaf_still_refuses_embeddings_batch_norm_false_and_takes_adam_sam():
    from test_tcaf import best_args
    args = best_args("best_main_ucf")
    args.embeddings_batch_norm = False
    with pytest.raises(UserError, match="--embeddings_batch_norm False"):
        create_model("tcaf", args)
    args = best_args("best_main_ucf")
    args.optimizer = "adam-sam"
    opt, sched = create_model("tcaf", args).configure_optimizers(lr=1e-3, lr_scheduler=True)
    assert isinstance(opt, SAM) and sched.optimizer is opt.base_optimizer
    assert opt.param_groups[0]["rho"] == DEFAULT_RHO == 0.05 and opt.param_groups[0]["weight_decay"] == 1e-5


# -- SAM ----------------------------------------------------------------------------------------------------

class Tiny(GZSLModel):
    """Linear, [BN], Tanh, Linear on a batch (x [B, 4], y [B, 1]); records its weights at every
    training_step; after each optimiser step one train-mode pass (as TCaF's and ClipClap's)."""

    def __init__(self, bn: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 5), *([nn.BatchNorm1d(5)] if bn else []), nn.Tanh(), nn.Linear(5, 1))
        self.weights_seen = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch):
        self.weights_seen.append({n: p.detach().clone() for n, p in self.named_parameters()})
        loss = F.mse_loss(self.net(batch[0]), batch[1])
        return loss, {"mse": loss.detach()}

    @torch.no_grad()
    def after_optimizer_step(self, batch):
        self.net(batch[0])


def steps(model, opt, batches):
    inp = EpochInputs(model=model, optimizer=opt, train=None, val=None, sampler=None, epoch=0, epochs=1,
                      n_batches=len(batches), bs=len(batches[0][0]), z_score=False, retrain_all=False,
                      reproduce_original=False, val_metrics=None, steps=Steps(model))
    return run_steps(inp, lambda step: batches[step])


def batches_of(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 4, generator=g), torch.randn(8, 1, generator=g)) for _ in range(n)]


def reference_sam_adam(model, batches, lr, rho=DEFAULT_RHO, wd=1e-5, betas=(0.9, 0.999), eps=1e-8):
    """The algorithm by hand: g at w; e = rho g / ||g||; g' at w + e; Adam (coupled weight decay) from
    w with g'. Returns the weights after each step and each step's perturbed weights."""
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    m = {n: torch.zeros_like(p) for n, p in w.items()}
    v = {n: torch.zeros_like(p) for n, p in w.items()}
    after, perturbed = [], []

    def grad_at(weights, x, y):
        params = {n: p.clone().requires_grad_(True) for n, p in weights.items()}
        loss = F.mse_loss(torch.func.functional_call(model, params, (x,)), y)
        return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))

    for t, (x, y) in enumerate(batches, start=1):
        g = grad_at(w, x, y)
        norm = torch.sqrt(sum((gi.norm() ** 2 for gi in g.values()), torch.zeros(())))
        w_adv = {n: w[n] + rho * g[n] / (norm + 1e-12) for n in w}
        perturbed.append(w_adv)
        g2 = grad_at(w_adv, x, y)
        for n in w:
            d = g2[n] + wd * w[n]
            m[n] = betas[0] * m[n] + (1 - betas[0]) * d
            v[n] = betas[1] * v[n] + (1 - betas[1]) * d * d
            denom = (v[n] / (1 - betas[1] ** t)).sqrt() + eps
            w[n] = w[n] - lr / (1 - betas[0] ** t) * m[n] / denom
        after.append({n: p.clone() for n, p in w.items()})
    return after, perturbed


def test_sam_steps_equal_the_algorithm_by_hand():
    torch.manual_seed(0)
    model, batches, lr = Tiny(), batches_of(3), 0.01
    plain = copy.deepcopy(model)
    want, perturbed = reference_sam_adam(copy.deepcopy(model), batches, lr)
    opt = adam_or_sam("adam-sam", model.parameters(), lr=lr, weight_decay=1e-5)
    assert isinstance(opt, SAM) and isinstance(opt.base_optimizer, torch.optim.Adam)
    stats = steps(model, opt, batches)
    got = dict(model.named_parameters())
    for n, p in want[-1].items():
        torch.testing.assert_close(got[n].detach(), p, rtol=0, atol=2e-6)
    # two passes a step: the second at w + rho g / ||g||
    assert len(model.weights_seen) == 6
    for step, w_adv in enumerate(perturbed):
        for n, p in w_adv.items():
            torch.testing.assert_close(model.weights_seen[2 * step + 1][n], p, rtol=0, atol=1e-6)
    # the logged loss is the first pass's (at the step's own weights)
    first = [F.mse_loss(torch.func.functional_call(model, model.weights_seen[2 * s], (x,)), y)
             for s, (x, y) in enumerate(batches)]
    assert stats["loss"] == pytest.approx(float(sum(first)) / 3, rel=1e-6)
    # and plain Adam lands elsewhere (the test sees the difference)
    steps(plain, adam(plain.parameters(), lr=lr, weight_decay=1e-5), batches)
    assert max((dict(plain.named_parameters())[n] - p).abs().max() for n, p in want[-1].items()) > 1e-4


def test_second_step_returns_to_the_weights_and_adaptive_scales_by_them():
    torch.manual_seed(0)
    for adaptive in (False, True):
        model = Tiny()
        w = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt = SAM(model.parameters(), adam, adaptive=adaptive, lr=0.0)
        x, y = batches_of(1)[0]
        model.training_step((x, y))[0].backward()
        g = {n: p.grad.clone() for n, p in model.named_parameters()}
        scaled = {n: (w[n].abs() if adaptive else 1.0) * g[n] for n in w}
        norm = torch.sqrt(sum(s.norm() ** 2 for s in scaled.values()))
        opt.first_step(zero_grad=True)
        for n, p in model.named_parameters():
            e = (w[n] ** 2 if adaptive else 1.0) * g[n] * DEFAULT_RHO / norm
            torch.testing.assert_close(p.detach(), w[n] + e, rtol=0, atol=1e-7)
            assert p.grad is None
        model.training_step((x, y))[0].backward()
        opt.second_step(zero_grad=True)                   # lr 0: only the way back
        for n, p in model.named_parameters():
            torch.testing.assert_close(p.detach(), w[n], rtol=0, atol=1e-7)


def test_the_second_pass_and_the_extra_pass_leave_the_running_statistics():
    torch.manual_seed(0)
    model, batches = Tiny(bn=True).train(), batches_of(2)
    bn = model.net[1]
    one_pass = copy.deepcopy(model)
    with torch.no_grad():
        one_pass.net(batches[0][0])                       # the first pass's update only
    opt = adam_or_sam("adam-sam", model.parameters(), lr=0.01)
    sam_step(model, opt, model.training_step, batches[0])
    assert torch.equal(bn.running_mean, one_pass.net[1].running_mean)
    assert torch.equal(bn.running_var, one_pass.net[1].running_var)
    assert bn.momentum == 0 and bn.backup_momentum == 0.1        # until the next step [published behaviour]
    with torch.no_grad():
        one_pass.load_state_dict(model.state_dict())
        one_pass.net(batches[1][0])
    sam_step(model, opt, model.training_step, batches[1])           # momentum back for its first pass
    torch.testing.assert_close(bn.running_mean, one_pass.net[1].running_mean, rtol=0, atol=0)
    # run_steps leaves the momenta as they were
    steps(model, opt, batches)
    assert bn.momentum == 0.1
    # plain Adam: the extra pass moves the statistics too (the checks above would see it)
    plain = Tiny(bn=True).train()
    once = copy.deepcopy(plain)
    with torch.no_grad():
        once.net(batches[0][0])
    steps(plain, adam(plain.parameters(), lr=0.0), batches[:1])
    assert not torch.equal(plain.net[1].running_mean, once.net[1].running_mean)


def test_sam_state_dict_round_trips_and_the_scheduler_is_on_adam():
    torch.manual_seed(0)
    model, batches = Tiny(), batches_of(4)
    opt = adam_or_sam("adam-sam", model.parameters(), lr=0.01, weight_decay=1e-5)
    steps(model, opt, batches[:2])
    state = copy.deepcopy(opt.state_dict())
    assert state["param_groups"] == opt.base_optimizer.state_dict()["param_groups"]
    assert {"exp_avg", "exp_avg_sq", "step"} <= set(state["state"][0]) and state["param_groups"][0]["rho"] == 0.05
    twin = copy.deepcopy(model)
    twin_opt = adam_or_sam("adam-sam", twin.parameters(), lr=0.5, weight_decay=1e-5)
    sched = plateau(twin_opt)
    twin_opt.load_state_dict(state)
    assert twin_opt.param_groups is twin_opt.base_optimizer.param_groups and twin_opt.param_groups[0]["lr"] == 0.01
    steps(model, opt, batches[2:])
    steps(twin, twin_opt, batches[2:])
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    for _ in range(5):                                  # patience 3: the lr drops, seen through SAM's groups
        sched.step(0.0)
    assert sched.optimizer is twin_opt.base_optimizer and twin_opt.param_groups[0]["lr"] == pytest.approx(0.001)


# -- whole runs ---------------------------------------------------------------------------------------------

TINY = ["--epochs", "1", "--n_batches", "2", "--device", "cpu"]


def test_clipclap_run_all_with_adam_sam_and_without_embeddings_batch_norm(tiny_root, tmp_path):
    from src.compose import run
    args = clipclap_args(tiny_root.parent, *TINY, "--optimizer", "adam-sam", "--embeddings_batch_norm", "False",
                         "--dump_path", tmp_path, "--exp_name", "s", "--run", "all")
    run(args)
    stage_2 = tmp_path / "runs" / "s_stage_2"
    result = json.loads((stage_2 / "evaluation.json").read_text())      # the checkpoints loaded for evaluation
    assert result["model"] == "clipclap" and 0 <= result["hm"] <= 100
    ckpt = torch.load(next(stage_2.glob("checkpoints/ClipClap_model_score_ckpt_*.pt")), weights_only=False)
    o_proj = [k for k in ckpt["model"] if k.startswith("O_proj.")]
    assert o_proj == [f"O_proj.{k}" for k in HIDDEN_FORM_WITHOUT_FIRST_BN]
    assert ckpt["optimizer"]["param_groups"][0]["rho"] == 0.05 and ckpt["optimizer"]["state"]


def test_clipclap_adam_sam_resume_equals_an_uninterrupted_run(tiny_root, tmp_path):
    from src.compose import train
    from test_train import metrics, same_state
    base = ["--n_batches", "3", "--optimizer", "adam-sam", "--dump_path", tmp_path]
    train(clipclap_args(tiny_root.parent, *base, "--epochs", "2", "--exp_name", "whole"))
    train(clipclap_args(tiny_root.parent, *base, "--epochs", "1", "--exp_name", "cut"))
    train(clipclap_args(tiny_root.parent, *base, "--epochs", "2", "--exp_name", "cut", "--resume"))
    whole, cut = tmp_path / "runs" / "whole", tmp_path / "runs" / "cut"
    assert metrics(whole) == metrics(cut) and len(metrics(cut)) == 2
    resume_states = [whole / "checkpoints" / "resume_state.pt", cut / "checkpoints" / "resume_state.pt"]
    assert same_state(*resume_states)
    a, b = (torch.load(p, weights_only=False)["optimizer"]["state"] for p in resume_states)
    assert a.keys() == b.keys() and all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i])


def test_tcaf_trains_with_adam_sam(tiny_root, tmp_path):
    from src.compose import train
    from test_train import metrics
    base = cell_commands("tcaf", "UCF", "cls_temporal", tiny_root.parent)[0][1:]
    small = ["--embeddings_hidden_size", "32", "--transformer_depth", "1", "--transformer_heads", "2",
             "--transformer_dim_head", "16", "--decoder_hidden_size", "32", "--bs", "16", *TINY]
    train(parsed(base[:base.index("--exp_name")] + small + ["--optimizer", "adam-sam", "--dump_path", str(tmp_path),
                                                            "--exp_name", "t"]))
    rows = metrics(tmp_path / "runs" / "t")
    assert len(rows) == 1 and rows[0]["train"]["loss"] > 0 and rows[0]["val_loss"] > 0
    state = torch.load(tmp_path / "runs" / "t" / "checkpoints" / "resume_state.pt", weights_only=False)
    assert state["optimizer"]["param_groups"][0]["rho"] == 0.05


# -- refusals -------------------------------------------------------------------------------------------------

def test_only_the_successors_take_adam_sam():
    """TCaF's code has SAM, and so do ClipClap's and HSP-MoE's, which grew from it."""
    takers = [name for name in list_models() if "adam-sam" in get_entry(name).optimizers]
    assert takers == ["clipclap", "hspmoe", "tcaf"]
    for name in list_models():
        get_entry(name).check_optimizer("adam")
        get_entry(name).check_optimizer(None)
        if name not in takers:
            with pytest.raises(UserError, match=r"--optimizer adam-sam is not available for .*--new_model_sequence"):
                get_entry(name).check_optimizer("adam-sam")
    for name in takers:
        get_entry(name).check_optimizer("adam-sam")
        with pytest.raises(UserError, match="--compile, --amp or --cuda_graph"):
            get_entry(name).check_optimizer("adam-sam", fast=True)


@pytest.mark.parametrize("flag", ["--AVCA", "--ale"])
def test_adam_sam_on_an_averaged_model_is_one_line(flag, tiny_root, tmp_path):
    proc = run_cli("main.py", *main_args(tiny_root, tmp_path, "x", flag, "--optimizer", "adam-sam"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("main.py: ")]
    assert len(lines) == 1, proc.stderr
    assert "--optimizer adam-sam" in lines[0] and "tcaf (--new_model_sequence)" in lines[0] \
        and "clipclap (--clipclap)" in lines[0], lines[0]
    assert not (tmp_path / "runs" / "x" / "args.pkl").exists()
