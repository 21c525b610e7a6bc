"""Every error a user can cause is one line, before anything is written: flag values, OS errors at
the command-line boundary, mismatched or damaged run folders, and the other entry points."""
import argparse
import errno
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from conftest import ROOT, main_args, run_cli
from src.args import finalize_main_args, get_main_parser
from src.errors import UserError, exit_on_user_error


def one_line_error(proc, *names):
    """Exit 2, one `prog: error: ...` line naming every one of `names`, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if ": error: " in l]
    assert len(lines) == 1, proc.stderr
    for n in names:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize("flag,value", [("--lr", "0"), ("--lr", "-0.001"), ("--margin", "-1"),
                                        ("--embedding_dropout", "1"), ("--dropout_baselines", "-0.1"),
                                        ("--seed", "-1"), ("--seed", str(2 ** 32)), ("--device", "gpu"),
                                        ("--input_size_audio", "0"), ("--embeddings_hidden_size", "-5"),
                                        ("--bs", "x"), ("--momentum", "1.5"), ("--syn_num", "0")])
def test_bad_flag_values_are_refused_when_parsed(flag, value, tmp_path):
    proc = run_cli("main.py", "--root_dir", tmp_path, "--dump_path", tmp_path, "--exp_name", "x", flag, value,
                   check=False)
    one_line_error(proc, flag, value)
    assert not (tmp_path / "runs").exists()


def test_good_edge_values_are_accepted():
    args = finalize_main_args(get_main_parser().parse_args(
        ["--root_dir", "x", "--dataset_name", "UCF", "--embedding_dropout", "0", "--embeddings_hidden_size", "0",
         "--seed", str(2 ** 32 - 1), "--device", "cuda:1", "--momentum", "1"]))
    assert (args.embedding_dropout, args.embeddings_hidden_size, args.seed, args.device) == (0.0, 0, 2 ** 32 - 1,
                                                                                              "cuda:1")


def test_dump_path_that_is_a_file(tiny_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = run_cli("main.py", *main_args(tiny_root, blocker, "x"), check=False)
    one_line_error(proc, blocker)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_dump_path(tiny_root, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = run_cli("main.py", *main_args(tiny_root, ro, "x"), check=False)
    finally:
        ro.chmod(0o755)
    one_line_error(proc, ro)


def test_the_boundary_converts_os_errors_and_keeps_bugs():
    for err in (OSError(errno.ENOSPC, "No space left on device", "/runs/x/AVCA_score.pt"),
                PermissionError(errno.EACCES, "Permission denied", "/data"),
                UserError("bad input")):
        with pytest.raises(SystemExit) as stop:
            with exit_on_user_error("prog"):
                raise err
        assert stop.value.code == 2
    with pytest.raises(RuntimeError):            # a bug: its traceback stays
        with exit_on_user_error("prog"):
            raise RuntimeError("a bug")
    with pytest.raises(OSError):                 # an OS error that is not about the user's paths
        with exit_on_user_error("prog"):
            raise OSError(errno.EBADF, "Bad file descriptor")


def test_full_disk_message_names_the_file(capsys):
    with pytest.raises(SystemExit):
        with exit_on_user_error("main.py"):
            raise OSError(errno.ENOSPC, "No space left on device", "runs/x/AVCA_score.pt")
    err = capsys.readouterr().err
    assert err.strip() == "main.py: error: no space left on the device (the disk is full): runs/x/AVCA_score.pt"


# -- get_evaluation.py: the two stages must belong together; damaged run folders ------------------

def write_run(path: Path, argv) -> argparse.Namespace:
    args = finalize_main_args(get_main_parser().parse_args(argv))
    path.mkdir(parents=True)
    with open(path / "args.pkl", "wb") as f:
        pickle.dump(args, f)
    return args


@pytest.mark.parametrize("change,named", [
    (["--feature_extraction_method", "cls_features", "--input_size_audio", "128", "--input_size_video", "4096"],
     "--feature_extraction_method cls_features"),
    (["--dataset_name", "ActivityNet"], "--dataset_name ActivityNet"),
    (["--zero_shot_split", "cls_split"], "--zero_shot_split cls_split"),
    (["--cjme"], "model cjme"),
    (["--reproduce_original"], "--reproduce_original True"),
])
def test_stage_a_of_another_setting_is_refused(change, named, tiny_root, tmp_path):
    base = ["--root_dir", str(tiny_root), "--dataset_name", "UCF"]
    write_run(tmp_path / "a", base + (change if "--cjme" in change else ["--AVCA", *change]))
    write_run(tmp_path / "b", base + ["--AVCA", "--retrain_all"])
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", tmp_path / "a", "--load_path_stage_B", tmp_path / "b",
                   "--device", "cpu", check=False)
    line = one_line_error(proc, named, tmp_path / "a" / "args.pkl", tmp_path / "b" / "args.pkl")
    assert "stage-A and stage-B" in line


def test_damaged_args_pkl_and_checkpoint_are_named(tiny_root, tmp_path):
    from src.models import create_model
    base = ["--root_dir", str(tiny_root), "--dataset_name", "UCF", "--ale"]
    args = write_run(tmp_path / "a", base)
    write_run(tmp_path / "b", base + ["--retrain_all"])
    torch.save({"model": create_model("ale", args).state_dict(), "metric": "score"}, tmp_path / "a" / "DeviseModel_score.pt")
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", tmp_path / "a", "--load_path_stage_B", tmp_path / "b",
                   "--device", "cpu", check=False)
    one_line_error(proc, tmp_path / "a" / "DeviseModel_score.pt", "'epoch'")
    damaged = argparse.Namespace(**{**{k: v for k, v in vars(args).items() if k != "input_size_video"},
                                    "retrain_all": True})
    with open(tmp_path / "b" / "args.pkl", "wb") as f:
        pickle.dump(damaged, f)
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", tmp_path / "a", "--load_path_stage_B", tmp_path / "b",
                   "--device", "cpu", check=False)
    one_line_error(proc, tmp_path / "b" / "args.pkl", "input_size_video")
    (tmp_path / "b" / "args.pkl").write_bytes(b"\x80\x04garbage")
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", tmp_path / "a", "--load_path_stage_B", tmp_path / "b",
                   check=False)
    one_line_error(proc, tmp_path / "b" / "args.pkl")


# -- the other entry points ----------------------------------------------------------------------

def test_splitting_a_truncated_features_pickle(tiny_root, tmp_path):
    pkl = tmp_path / "main_features_ucf.pkl"
    pkl.write_bytes(pickle.dumps({"video": [[0.0] * 4], "audio": [[0.0] * 4], "filenames": ["a"]})[:20])
    root = tmp_path / "UCF"
    shutil.copytree(tiny_root / "class-split", root / "class-split")
    proc = run_cli(ROOT / "splitting_scripts" / "ucf_split_features.py", "--features", pkl, "--root_dir", root,
                   check=False)
    one_line_error(proc, pkl)


def test_synthetic_out_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("")
    proc = run_cli("-m", "src.synthetic", "--preset", "tiny", "--out_dir", blocker, check=False)
    one_line_error(proc, blocker)


def test_reproduce_and_recipes_flag_errors(tmp_path):
    proc = run_cli("-m", "src.reproduce", "--slurm_additional", "{oops", "--out_dir", tmp_path, "--dry_run", check=False)
    one_line_error(proc, "--slurm_additional")
    proc = run_cli("-m", "src.recipes", "UCF", "nomethod", check=False)
    one_line_error(proc, "nomethod")


def test_extraction_bad_flag_is_one_line(tmp_path):
    proc = run_cli(ROOT / "cls_feature_extraction" / "extract.py", "--dataset", "mars", "--root_dir", tmp_path,
                   "--output_dir", tmp_path, check=False)
    one_line_error(proc, "mars")


@pytest.mark.parametrize("name", ["../../escape", "/abs/run"])
def test_exp_name_that_leaves_runs(name, tmp_path):
    proc = run_cli("main.py", "--root_dir", tmp_path, "--dataset_name", "UCF", "--dump_path", tmp_path, "--exp_name",
                   name, check=False)
    one_line_error(proc, "--exp_name", name)
