"""ClipClap and the CLIP/CLAP family in the toolkit (docs/clipclap.md 3-8): the data folder, the model's
keys and losses, its calibration grid, stage 1 -> stage 2 -> evaluation on the synthetic CLIP/CLAP
benchmark (ClipClap and AVCA), original ClipClap run folders, the reproduction table."""
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT, count_mispaired, run_cli
from original_runs import LINE, assert_direct_evaluation, parsed, reference_namespace, write_original_runs
from src.families import FAMILIES, clip_class_name, dataset_root
from src.data import AVGZSLDataset
from src.errors import UserError
from src.models import get_entry, list_models
from src.models.clipclap import ClipClap_model, VectorBatch
from src.recipes import cell_commands

SPEC = ROOT.parent / "shared" / "spec" / "CLIPCLAP.md"
SMALL = ["--epochs", "4", "--n_batches", "20", "--lr", "0.001", "--device", "cpu"]


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory):
    from src.synthetic import generate
    return generate(tmp_path_factory.mktemp("clip"), "UCF", preset="tiny", seed=0, noise=0.2, spread=0.5,
                    families=("clip",))



# -- data --------------------------------------------------------------------------------------------

def test_the_clip_folder_is_its_own_family(clip_root, tiny_root):
    assert clip_root == dataset_root(clip_root.parent.parent, "UCF", FAMILIES["clip"])
    ds = AVGZSLDataset(clip_root, "UCF", "cls_features_non_averaged", "cls_split")
    assert ds.family is FAMILIES["clip"] and ds.vectors and not ds.temporal and ds.text_dim == 1536
    train = ds.split("train")
    assert train.audio.shape[1:] == (1024,) and train.video.shape[1:] == (512,) and train.text.shape[1] == 1536
    assert train.video.dtype == torch.float32                  # stored float16
    # class vectors: [CLIP 512 || WavCaps 1024], each unit-norm, under the UCF clip_class_name of the class
    clip, wavcaps = (np.load(clip_root / "features/cls_features_non_averaged/text" / f, allow_pickle=True).item()
                     for f in ("word_embeddings_ucf_normed.npy", "wavcaps_word_embeddings_ucf_normed.npy"))
    c = int(train.class_ids[0])
    name = clip_class_name(ds.class_names[c])
    assert torch.equal(ds.word_vectors[c], torch.from_numpy(np.concatenate([clip[name], wavcaps[name]])))
    # TCaF's folder of the same name (no WavCaps class vectors) stays temporal
    temporal = AVGZSLDataset(tiny_root, "UCF", "cls_features_non_averaged", "cls_split")
    assert temporal.family is FAMILIES["cls_temporal"] and temporal.temporal and temporal.text_dim == 300


def test_clip_class_names():
    assert clip_class_name("ApplyEyeMakeup") == "Apply Eye Makeup" and clip_class_name("YoYo") == "Yo Yo"
    assert clip_class_name("HandstandPushups") == "Hand Stand Pushups"


def test_original_pairing_sorts_each_file(clip_root):
    ds = AVGZSLDataset(clip_root, "UCF", "cls_features_non_averaged", "cls_split", pairing="original")
    text = clip_root / "features/cls_features_non_averaged/text"
    clip = np.load(text / "word_embeddings_ucf_normed.npy", allow_pickle=True).item()
    first = sorted(clip)[0]
    assert torch.equal(ds.word_vectors[0, :512], torch.from_numpy(clip[first]))
    assert count_mispaired(ds) >= 0


def test_a_video_with_several_rows_is_refused(clip_root, tmp_path):
    import shutil
    root = tmp_path / "UCF"
    shutil.copytree(clip_root, root)
    path = next((root / "features/cls_features_non_averaged/audio/stage_1_train").glob("*.pkl"))
    blob = pickle.loads(path.read_bytes())
    blob["features"][0] = np.stack([blob["features"][0]] * 2)
    path.write_bytes(pickle.dumps(blob))
    with pytest.raises(UserError, match="one 1-d vector"):
        AVGZSLDataset(root, "UCF", "cls_features_non_averaged", "cls_split").split("train")


# -- the model ----------------------------------------------------------------------------------------

def test_state_dict_is_the_published_one():
    model = ClipClap_model()
    state = model.state_dict()
    assert len(state) == 56
    assert sum(p.numel() for p in model.parameters()) == 2_237_824
    assert list(dict.fromkeys(k.split(".")[0] for k in state)) == ["O_enc", "W_enc", "O_proj", "D_o", "W_proj", "D_w"]
    if SPEC.is_file():        # every Linear shape the spec lists: `name.fc.i· [out,in],[out]`
        block = SPEC.read_text().split("## 8.")[1]
        shapes = re.findall(r"(\w+\.fc\.\d)· \[(\d+),(\d+)\]", block)
        assert len(shapes) == 8
        for name, out, inp in shapes:
            assert tuple(state[f"{name}.weight"].shape) == (int(out), int(inp)), name
            assert tuple(state[f"{name}.bias"].shape) == (int(out),)


def test_losses_by_hand():
    torch.manual_seed(0)
    model = ClipClap_model(decoder_dropout=0.0, additional_dropout=0.0).eval()
    for m in model.modules():                  # the encoders' fixed 0.1 dropout off too
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    b = VectorBatch(audio=torch.randn(6, 1024), video=torch.randn(6, 512).half(), text=torch.randn(6, 1536),
                    label=torch.tensor([0, 1, 2, 0, 1, 2]), class_text=torch.randn(3, 1536))
    b.text = b.class_text[b.label]
    parts = model.loss_parts(b)
    o = torch.cat((b.video.float(), b.audio), dim=1)              # CLIP first, then WavCaps
    theta_o = model.O_proj(model.O_enc(o))
    u = model.W_enc(b.text)
    theta_w = model.W_proj(u)
    theta_c = model.W_proj(model.W_enc(b.class_text))
    assert parts["rec"].item() == pytest.approx((F.mse_loss(u, model.D_o(theta_o)) + F.mse_loss(u, model.D_w(theta_w))).item())
    assert parts["reg"].item() == pytest.approx(F.mse_loss(theta_o, theta_w).item())
    logits = theta_o @ theta_c.t()
    ce = -(logits.log_softmax(1)[torch.arange(6), b.label]).mean()
    assert parts["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    # the learned target u = W_enc(w) gets the reconstruction's gradient [published behaviour]
    model.losses_on = {"rec": True, "reg": False, "ce": False}
    model.zero_grad()
    model.training_step(b)[0].backward()
    assert model.W_enc.fc[0].weight.grad.abs().sum() > 0 and model.D_o.fc[0].weight.grad.abs().sum() > 0


def test_the_variants_and_the_grid():
    m = ClipClap_model(modality="audio", word_embeddings="wavcaps")
    assert m.O_enc.fc[0].in_features == 1024 and m.W_enc.fc[0].in_features == 1024
    m = ClipClap_model(modality="video", word_embeddings="clip").eval()
    assert m.O_enc.fc[0].in_features == 512 and m.W_enc.fc[0].in_features == 512
    d = m.eval_distances(torch.randn(4, 1024), torch.randn(4, 512), torch.randn(3, 1536))["both"]
    assert d.shape == (4, 3)
    from src.evaluate import beta_grid
    grid = beta_grid(*ClipClap_model.calibration)
    assert len(grid) == 76 and grid[-1] == 5 and grid[1] == pytest.approx(1 / 15)


def test_the_recipe_holds_the_published_settings():
    for dataset, epochs, lr in (("UCF", 20, 7e-5), ("ActivityNet", 15, 1e-4), ("VGGSound", 15, 1e-4)):
        a = parsed(cell_commands("clipclap", dataset, "clip", "D")[0][1:])
        assert (a.model_name, a.epochs, a.lr, a.bs, a.n_batches, a.seed, a.lr_scheduler) == \
            ("clipclap", epochs, lr, 64, 300, 42, True)
        assert (a.decoder_hidden_size, a.decoder_dropout, a.additional_dropout) == (512, 0.1, 0.1)
        assert (a.rec_loss, a.reg_loss, a.cross_entropy_loss, a.modality, a.word_embeddings) == \
            (True, True, True, "both", "both")
        assert Path(a.root_dir) == Path("D/ClipClap") / dataset


def test_clipclap_needs_the_clip_family(tiny_root, tmp_path):
    base = cell_commands("clipclap", "UCF", "clip", tiny_root.parent)[0][1:]
    i = base.index("--root_dir")
    base[i + 1] = str(tiny_root)                    # TCaF's cls_features_non_averaged
    base = base[:base.index("--exp_name")] + SMALL + ["--dump_path", tmp_path, "--exp_name", "x"]
    proc = run_cli("main.py", *base, "--input_size_audio", "128", "--input_size_video", "4096", check=False)
    assert proc.returncode == 2 and "CLIP/CLAP" in proc.stderr and "Traceback" not in proc.stderr


# -- whole runs -----------------------------------------------------------------------------------------

def test_clipclap_run_all_beats_chance(clip_root, tmp_path):
    base = cell_commands("clipclap", "UCF", "clip", clip_root.parent.parent)[0][1:]
    base = base[:base.index("--exp_name")]
    proc = run_cli("main.py", *base, *SMALL, "--exp_name", "c", "--dump_path", tmp_path, "--run", "all")
    hm = float(re.search(LINE, proc.stdout).group(1))
    assert hm > 20, proc.stdout                 # chance on the tiny test split: about 6
    stage_2 = tmp_path / "runs" / "c_stage_2"
    assert list(stage_2.glob("checkpoints/ClipClap_model_score_ckpt_*.pt"))
    result = json.loads((stage_2 / "evaluation.json").read_text())
    assert result["model"] == "clipclap"
    assert round(result["beta"] * 15) == pytest.approx(result["beta"] * 15, abs=1e-4)   # on the 0..5 / 76 grid


def test_an_original_clipclap_run_folder_evaluates(clip_root, tmp_path):
    """ClipClap's own run folders: its Namespace (no --clipclap, TCaF's flag on, the config's 128/4096 input
    sizes, pathlib paths), `module.`-prefixed checkpoints; get_evaluation with its --cfg gives a direct
    evaluation's numbers with the original pairing and the 0..5 grid."""
    ours = parsed(cell_commands("clipclap", "UCF", "clip", clip_root.parent.parent)[0][1:])
    ours.text_dim = 1536
    # ClipClap's code has neither this project's fields nor those of the codebases grown from it (HSP-MoE's)
    others = {f for name in list_models() if name != "clipclap" for f in get_entry(name).namespace_fields}
    fields = {k: v for k, v in vars(ours).items() if k not in (
        "reproduce_original", "resume", "overwrite", "model_name", "cfg", "run", "dump_path", "clipclap", "text_dim",
        "feature_family", *others)}
    fields.update(input_size_audio=128, input_size_video=4096, new_model_sequence=True)
    models = write_original_runs(tmp_path, "clipclap", fields, clip_root, "clipclap", ours, "ClipClap_model", epoch=3)
    cfg = tmp_path / "clipclap.yaml"
    cfg.write_text("bs: 64\nn_batches: 300\nlr_scheduler: true\nuse_wavcaps_embeddings: true\nmodality: both\n")
    runs = sorted((tmp_path / "runs").iterdir())
    proc = run_cli("get_evaluation.py", "--cfg", cfg, "--load_path_stage_A", runs[0], "--load_path_stage_B", runs[1],
                   "--dataset_name", "UCF", "--root_dir", clip_root, "--device", "cpu")
    got = assert_direct_evaluation(runs[1] / "evaluation.json", proc, ours, clip_root, models)
    assert got["model"] == "clipclap" and got["epoch"] == 3


def test_an_original_clipclap_namespace_evaluates_without_a_model_flag(clip_root, tmp_path):
    """ClipClap's args.pkl exactly as its code writes it (every field and value type of the reference:
    TCaF's new_model_sequence True, the config's 128/4096 input sizes, pathlib paths): get_evaluation
    with no model flag and no --cfg evaluates it as ClipClap, to a direct evaluation's numbers."""
    ours = parsed(cell_commands("clipclap", "UCF", "clip", clip_root.parent.parent)[0][1:])
    ours.text_dim = 1536
    original = reference_namespace("clipclap_stage_A")
    assert original.new_model_sequence is True and (original.input_size_audio, original.input_size_video) == (128, 4096)
    models = write_original_runs(tmp_path, "clipclap", vars(original), clip_root, "clipclap", ours, "ClipClap_model",
                                 epoch=2)
    runs = sorted((tmp_path / "runs").iterdir())
    written = pickle.loads((runs[1] / "args.pkl").read_bytes())
    assert {k: type(v) for k, v in vars(written).items()} == {k: type(v) for k, v in vars(original).items()}
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", runs[0], "--load_path_stage_B", runs[1], "--device", "cpu")
    got = assert_direct_evaluation(runs[1] / "evaluation.json", proc, ours, clip_root, models)
    assert got["model"] == "clipclap" and got["epoch"] == 2
    wrong = run_cli("get_evaluation.py", "--load_path_stage_A", runs[0], "--load_path_stage_B", runs[1],
                    "--new_model_sequence", "True", "--device", "cpu", check=False)
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "tcaf" in wrong.stderr and "clipclap" in wrong.stderr


def test_the_reproduction_table_groups_three_families():
    from src.reproduce import make_tables
    results = {}
    for (method, family, hm) in (("avca", "main", 0.3), ("avca", "cls", 0.4), ("avca", "clip", 0.5),
                                 ("clipclap", "clip", 0.6)):
        for dataset in ("UCF", "VGGSound"):
            results[(method, dataset, family, 1)] = {"seen": hm, "unseen": hm, "hm": hm, "zsl": hm, "beta": 0.0,
                                                     "epoch": 1}
    tables = make_tables(results, ["avca", "clipclap"], ["UCF", "VGGSound"], ["main", "cls", "clip"])
    header = tables["results_gzsl.csv"].splitlines()[0].split(",")
    measured = [i for i, h in enumerate(header) if i and not h.endswith(" published")]   # not the published numbers
    assert [header[i] for i in measured] == ["UCF main", "VGGSound main", "UCF cls", "VGGSound cls", "UCF clip",
                                             "VGGSound clip"]
    rows = {r.split(",")[0]: [r.split(",")[i] for i in measured] for r in tables["results_gzsl.csv"].splitlines()[1:]}
    assert rows["AVCA"] == ["30.00", "30.00", "40.00", "40.00", "50.00", "50.00"]
    assert rows["ClipClap"] == ["-", "-", "-", "-", "60.00", "60.00"]
