"""End to end on videos made here, random weights: output formats, failures file, resume after
an interruption, a two-process torchrun (gloo, CPU) equal to the single-process run."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from cls_feature_extraction import extract as cls_cli
from cls_feature_extraction.family import ClsFamily
from selavi_feature_extraction import get_clusters
from src.errors import UserError
from src.extraction.cli import entry

from .conftest import REPO
from .interrupt import interrupt_on_second_video, resume_and_record
from .media import make_corrupt, make_video

# --fps 0 keeps the 16 frames of a 1 s 16 fps video: one C3D clip (2-3 s on a CPU core)
CLS_FLAGS = ["--random_init", "--fps", "0", "--batch_size", "2", "--no_progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_video(root / "Archery/v_Archery_g01_c01.avi", seconds=1, fps=16)
    make_video(root / "Archery/v_Archery_g02_c01.mp4", seconds=1, fps=16, rate=44100, channels=2)
    make_video(root / "Biking/v_Biking_g01_c01.mkv", seconds=1, fps=16, rate=22050)
    make_corrupt(root / "Biking/v_Biking_g02_c01.mp4")
    make_video(root / "Biking/v_Biking_g03_c01.avi", seconds=1, fps=16, audio=False)
    make_video(root / "Biking/v_Biking_g04_c01.avi", seconds=0.5, fps=16)
    return root


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def failures(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "video\treason"
    return dict(line.split("\t") for line in lines[1:])


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    cls_cli.main(["--dataset", "ucf", "--root_dir", str(videos), "--output_dir", str(out),
                  "--workers", "1", *CLS_FLAGS])
    return out


def test_cls_outputs_and_failures(reference):
    rows = load(reference / "cls_features_ucf.pkl")
    assert [(r[1], r[3]) for r in rows] == [(0, "v_Archery_g01_c01.avi"), (0, "v_Archery_g02_c01.mp4"),
                                            (1, "v_Biking_g01_c01.mkv")]
    for video, _, audio, _ in rows:
        assert video.shape == (4096,) and video.dtype == np.float32 and (video >= 0).all()
        assert audio.shape == (128,) and 0 <= audio.min() and audio.max() <= 255
    clips = load(reference / "cls_features_ucf_per_clip.pkl")
    for (v, c, a, n), (vm, cm, am, nm) in zip(clips, rows):
        assert v.shape == (1, 4096) and a.dtype == np.uint8 and a.shape == (1, 128)
        assert np.allclose(v.mean(0), vm) and np.allclose(a.mean(0), am) and (c, n) == (cm, nm)
    fails = failures(reference / "cls_features_ucf.failures.tsv")
    assert list(fails) == ["Biking/v_Biking_g02_c01.mp4", "Biking/v_Biking_g03_c01.avi",
                           "Biking/v_Biking_g04_c01.avi"]
    assert fails["Biking/v_Biking_g02_c01.mp4"].startswith("cannot open")
    assert fails["Biking/v_Biking_g03_c01.avi"] == "no audio track"
    assert "shorter than one VGGish example" in fails["Biking/v_Biking_g04_c01.avi"]
    assert not (reference / "cls_features_ucf.parts").exists()


def assert_same(out_a, out_b, name="cls_features_ucf"):
    a, b = load(out_a / f"{name}_per_clip.pkl"), load(out_b / f"{name}_per_clip.pkl")
    assert [(r[1], r[3]) for r in a] == [(r[1], r[3]) for r in b]
    for ra, rb in zip(a, b):
        np.testing.assert_allclose(ra[0], rb[0], rtol=1e-4, atol=1e-5)
        assert np.abs(ra[2].astype(int) - rb[2].astype(int)).max() <= 1   # quantisation edges
    assert (out_a / f"{name}.failures.tsv").read_text() == (out_b / f"{name}.failures.tsv").read_text()


def test_resume_after_interruption(videos, reference, tmp_path, monkeypatch):
    args = ["--dataset", "ucf", "--root_dir", str(videos), "--output_dir", str(tmp_path),
            "--workers", "0", "--save_every", "1", *CLS_FLAGS]
    interrupt_on_second_video(monkeypatch, ClsFamily, cls_cli.main, args)
    chunks = list((tmp_path / "cls_features_ucf.parts").rglob("chunk-*.pkl"))
    assert chunks and not (tmp_path / "cls_features_ucf.pkl").exists()

    prepared = resume_and_record(monkeypatch, ClsFamily, cls_cli.main, args)
    assert "v_Archery_g01_c01.avi" not in prepared and len(prepared) == 5   # the first was kept
    assert_same(reference, tmp_path)
    with pytest.raises(UserError, match="--overwrite"):
        cls_cli.main(args)


def test_torchrun_two_processes_equal_single(videos, reference, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "cls_feature_extraction/get_features_ucf.py", "--root_dir", str(videos),
           "--output_dir", str(tmp_path), "--workers", "0", *CLS_FLAGS]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_same(reference, tmp_path)
    assert not (tmp_path / "cls_features_ucf.parts").exists()


def test_missing_weights_is_one_clear_error(videos, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        entry("get_features_ucf.py", lambda argv: cls_cli.main(argv, dataset="ucf"),
              ["--root_dir", str(videos), "--output_dir", str(tmp_path), "--workers", "0",
               "--c3d_weights", str(tmp_path / "c3d.pickle")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "c3d.pickle" in err and "--c3d_weights" in err and "Traceback" not in err


def test_selavi_cli(tmp_path):
    root = tmp_path / "videos"
    make_video(root / "Archery/v_Archery_g01_c01.avi", seconds=1.2, fps=25, rate=44100)
    make_video(root / "Biking/v_Biking_g01_c01.mp4", seconds=0.8, fps=25, rate=44100)
    make_video(root / "Biking/v_Biking_g02_c01.avi", seconds=1.2, fps=25, audio=False)
    args = ["--root_dir", str(root), "--random_init", "--mode", "train", "--pretrained", "False",
            "--aud_sample_rate", "44100", "--use_mlp", "False", "--dataset", "ucf", "--headcount", "2",
            "--exp_desc", "test", "--output_dir", str(tmp_path / "out"), "--batch_size", "2",
            "--workers", "1", "--no_progress", "--device", "cpu"]
    get_clusters.main(args)
    out = load(tmp_path / "out/main_features_ucf_test.pkl")
    assert set(out) == {"video", "labels", "audio", "filenames"}
    assert out["video"].shape == (1, 512) and out["audio"].shape == (1, 512)
    assert out["video"].dtype == torch.float32 and out["labels"].tolist() == [0]
    assert out["filenames"] == ["v_Archery_g01_c01"]
    fails = failures(tmp_path / "out/main_features_ucf_test.failures.tsv")
    assert fails["Biking/v_Biking_g01_c01.mp4"].startswith("video stream under 1.1 s")
    assert fails["Biking/v_Biking_g02_c01.avi"] == "no audio track"
    # [published quirk]: a video under 2 s has no window
    get_clusters.main(args[:-9] + ["--match_published", "--output_dir", str(tmp_path / "pub"),
                                   "--workers", "0", "--no_progress", "--device", "cpu"])
    fails = failures(tmp_path / "pub/main_features_ucf_test.failures.tsv")
    assert fails["Archery/v_Archery_g01_c01.avi"].startswith("no window")


@pytest.mark.parametrize("script", [
    "cls_feature_extraction/get_features_ucf.py", "cls_feature_extraction/get_features_activitynet.py",
    "cls_feature_extraction/get_features_vggsound.py", "cls_feature_extraction/extract.py",
    "selavi_feature_extraction/get_clusters.py", "splitting_scripts/ucf_split_features.py",
    "splitting_scripts/activitynet_split_features.py", "splitting_scripts/vggsound_split_features.py",
    "splitting_scripts/split_features.py", "w2v_features/make_word_vectors.py"])
def test_entry_points_help(script, monkeypatch, capsys):
    import runpy
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / script), run_name="__main__")
    assert exit_.value.code == 0 and "usage:" in capsys.readouterr().out
