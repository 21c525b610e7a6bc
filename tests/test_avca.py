"""AVCA (docs/models.md): shapes, loss parts, published behaviour."""
import pytest
import torch

from src.args import finalize_main_args, get_main_parser
from src.models import create_model
from src.models.base import PairBatch


def build(*extra, audio=512, video=512):
    args = finalize_main_args(get_main_parser().parse_args(
        ["--root_dir", "x", "--dataset_name", "UCF", "--AVCA", "--input_size_audio", str(audio),
         "--input_size_video", str(video), "--embeddings_hidden_size", "32", "--decoder_hidden_size", "16",
         "--embedding_dropout", "0.2", "--decoder_dropout", "0.3", "--additional_dropout", "0.5", *extra]))
    torch.manual_seed(0)
    return create_model("avca", args), args


def batch(b=6, audio=512, video=512, c=4):
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return PairBatch(r(b, audio), r(b, video), r(b, 300), torch.randint(0, c, (b,), generator=g),
                     r(b, audio), r(b, video), r(b, 300), torch.randint(0, c, (b,), generator=g),
                     r(c, 300), torch.arange(c))


@pytest.mark.parametrize("audio,video", [(512, 512), (128, 4096)])
def test_shapes(audio, video):
    m, _ = build(audio=audio, video=video)
    m.eval()
    x = batch(audio=audio, video=video)
    ta, tv, tw = m.get_embeddings(x.audio, x.video, x.class_text)
    assert ta.shape == (6, 64) and tv.shape == (6, 64) and tw.shape == (4, 64)
    d = m.eval_distances(x.audio, x.video, x.class_text)
    assert m.modes == ("both",) and set(d) == {"both"} and d["both"].shape == (6, 4)   # θv against θw
    assert torch.allclose(d["both"], torch.cdist(tv, tw))
    assert torch.allclose(m.eval_distances(x.audio, x.video, x.class_text, squared=True)["both"], d["both"] ** 2)
    tokens = m.cross_attention(torch.randn(6, 2, 300))
    assert tokens.shape == (6, 2, 300)


@pytest.mark.parametrize("flags,parts", [((), {"l_rec", "l_ct", "l_w"}),
                                         (("--additional_triplets_loss",), {"l_rec", "l_ct", "l_w", "l_t"}),
                                         (("--reg_loss", "--additional_triplets_loss"),
                                          {"l_rec", "l_ct", "l_w", "l_t", "l_r"})])
def test_loss_parts(flags, parts):
    m, _ = build(*flags)
    loss, got = m.training_step(batch())
    assert set(got) == parts
    assert torch.allclose(loss, sum(got.values()))


def test_pos_emb_is_not_optimised_and_bn_stats_move_after_step():
    m, args = build("--lr", "0.01")
    assert not args.lr_scheduler
    opt, sched = m.configure_optimizers(lr=args.lr, lr_scheduler=args.lr_scheduler)
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)   # AVCA's runs without --lr_scheduler
    assert sched.mode == "max" and sched.patience == 3 and opt.param_groups[0]["lr"] == 0.01
    assert all(p is not m.pos_emb1D for g in opt.param_groups for p in g["params"])
    assert opt.param_groups[0]["weight_decay"] == 1e-5
    pos = m.pos_emb1D.detach().clone()
    x = batch()
    loss, _ = m.training_step(x)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.equal(m.pos_emb1D, pos)
    before = m.V_proj.fc[5].running_mean.clone()
    m.after_optimizer_step(x)
    assert not torch.equal(before, m.V_proj.fc[5].running_mean)


def test_second_batchnorm_uses_momentum():
    m, _ = build("--momentum", "0.99")
    assert m.A_enc.fc[1].momentum == 0.1 and m.A_enc.fc[5].momentum == 0.99
    assert m.W_proj.fc[1].momentum == 0.1
    assert m.cross_attention.layers[0][0].fn.scale == pytest.approx(0.1)
