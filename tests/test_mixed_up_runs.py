"""Command, run folders and data that do not belong together (TCaF's, ClipClap's): each is refused
in one line that says what the folder holds, what was asked, and what to change; none evaluates
silently."""
import pickle
import re
import shutil

import pytest

from conftest import run_cli
from original_runs import LINE
from src.recipes import cell_commands

TCAF_SMALL = ["--embeddings_hidden_size", "32", "--transformer_depth", "1", "--transformer_heads", "2",
              "--transformer_dim_head", "16", "--decoder_hidden_size", "32", "--epochs", "1", "--n_batches", "2",
              "--bs", "16", "--device", "cpu"]
CLIPCLAP_SMALL = ["--epochs", "1", "--n_batches", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny UCF with TCaF's cls sequences and, under ClipClap/, the CLIP/CLAP vectors; both trained."""
    from src.synthetic import generate
    out = tmp_path_factory.mktemp("mixed")
    generate(out, "UCF", preset="tiny", seed=0, noise=0.2, spread=0.5, families=("cls_temporal", "clip"))
    runs = out / "trained"
    for method, family, small in (("tcaf", "cls_temporal", TCAF_SMALL), ("clipclap", "clip", CLIPCLAP_SMALL)):
        cmd = cell_commands(method, "UCF", family, out)[0]
        cmd = cmd[:cmd.index("--exp_name")]
        run_cli(*cmd, *small, "--exp_name", method, "--dump_path", runs, "--run", "all")
    return out


def stages(data, method):
    return ["--load_path_stage_A", data / "trained" / "runs" / f"{method}_stage_1",
            "--load_path_stage_B", data / "trained" / "runs" / f"{method}_stage_2"]


def one_line_error(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_both_trained_runs_evaluate(data):
    for method in ("tcaf", "clipclap"):
        assert re.search(LINE, run_cli("get_evaluation.py", *stages(data, method), "--device", "cpu").stdout)


def test_the_runs_record_their_feature_family(data, tmp_path):
    """The family is decided once, when the arguments are finalised, and saved in args.pkl; a run saved
    before it was recorded gets it where its args.pkl is read, from its folder and dataset folder."""
    runs = data / "trained" / "runs"
    for method, family in (("tcaf", "cls_temporal"), ("clipclap", "clip")):
        for stage in (1, 2):
            assert pickle.loads((runs / f"{method}_stage_{stage}" / "args.pkl").read_bytes()).feature_family == family
    older = []
    for stage in (1, 2):
        older.append(shutil.copytree(runs / f"clipclap_stage_{stage}", tmp_path / f"clipclap_stage_{stage}"))
        args = pickle.loads((older[-1] / "args.pkl").read_bytes())
        del args.feature_family
        (older[-1] / "args.pkl").write_bytes(pickle.dumps(args))
    line = re.search(LINE, run_cli("get_evaluation.py", *stages(data, "clipclap"), "--device", "cpu").stdout).group(0)
    assert line in run_cli("get_evaluation.py", "--load_path_stage_A", older[0], "--load_path_stage_B", older[1],
                           "--device", "cpu").stdout


def test_a_stage_1_of_another_dataset_is_refused(data, tmp_path):
    """The runs' own datasets are compared before the command line's --dataset_name goes in."""
    stage_1 = tmp_path / "other_stage_1"
    shutil.copytree(data / "trained" / "runs" / "clipclap_stage_1", stage_1)
    args = pickle.loads((stage_1 / "args.pkl").read_bytes())
    args.dataset_name = "ActivityNet"
    (stage_1 / "args.pkl").write_bytes(pickle.dumps(args))
    for extra in ([], ["--dataset_name", "UCF"], ["--dataset_name", "ActivityNet"]):
        err = one_line_error(run_cli("get_evaluation.py", "--load_path_stage_A", stage_1, "--load_path_stage_B",
                                     data / "trained" / "runs" / "clipclap_stage_2", *extra, "--device", "cpu",
                                     check=False))
        assert "--dataset_name ActivityNet in" in err and "but UCF in" in err, err


def test_the_command_lines_dataset_must_be_the_runs(data):
    err = one_line_error(run_cli("get_evaluation.py", *stages(data, "clipclap"), "--dataset_name", "VGGSound",
                                 "--device", "cpu", check=False))
    assert err.endswith("--dataset_name VGGSound, but the runs were trained on UCF ("
                        + str(data / "trained" / "runs" / "clipclap_stage_2" / "args.pkl")
                        + "): drop --dataset_name, or pass the run folders of a VGGSound training")


@pytest.mark.parametrize("method,flag,other", [("tcaf", "--clipclap", "clipclap"),
                                               ("clipclap", "--new_model_sequence", "tcaf")])
def test_the_other_models_flag_names_both(data, method, flag, other):
    err = one_line_error(run_cli("get_evaluation.py", *stages(data, method), flag, "--device", "cpu", check=False))
    assert f"names {other} (" in err and f"holds a {method} (" in err and "drop the flag" in err


def test_a_tcaf_run_on_clipclaps_data_is_named(data):
    """TCaF's and ClipClap's data share the folder name cls_features_non_averaged: a TCaF run pointed at
    the CLIP/CLAP data says so instead of building a model of the other family's widths."""
    err = one_line_error(run_cli("get_evaluation.py", *stages(data, "tcaf"), "--root_dir", data / "ClipClap" / "UCF",
                                 "--device", "cpu", check=False))
    assert "is a tcaf run, which needs token sequences" in err and "WavCaps/CLIP vectors" in err
    assert f"--root_dir {data / 'ClipClap' / 'UCF'} holds" in err
    err = one_line_error(run_cli("get_evaluation.py", *stages(data, "clipclap"), "--root_dir", data / "UCF",
                                 "--device", "cpu", check=False))
    assert "is a clipclap run, which needs the CLIP/CLAP vectors" in err and "VGGish/C3D token sequences" in err


@pytest.mark.parametrize("method,family,root", [("tcaf", "cls_temporal", "ClipClap/UCF"), ("clipclap", "clip", "UCF")])
def test_training_on_the_other_familys_data_is_named(data, tmp_path, method, family, root):
    cmd = cell_commands(method, "UCF", family, data)[0]
    i = cmd.index("--root_dir")
    cmd[i + 1] = str(data / root)
    err = one_line_error(run_cli(*cmd[:cmd.index("--exp_name")], *(TCAF_SMALL if method == "tcaf" else CLIPCLAP_SMALL),
                                 "--exp_name", "x", "--dump_path", tmp_path, check=False))
    holds = "WavCaps/CLIP vectors, one per video" if method == "tcaf" else "VGGish/C3D token sequences"
    assert f"{method} trains on" in err and f"holds {holds}" in err, err
    assert not (tmp_path / "runs").exists()
