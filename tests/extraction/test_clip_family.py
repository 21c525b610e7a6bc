"""CLIP / WavCaps features from raw videos (docs/clipclap.md 1), on videos made here and random
weights: the frame rules (default and --match_published per dataset: index, BGR, UCF's
inversion), the audio (librosa-like loading at 32 kHz, the centre 10 s), and the CLI end to
end with a failure, an interruption and its resume. The networks are built once for the
module (`models`): every run here uses the same random weights."""
import csv
import logging
import pickle
import runpy
import sys

import av
import numpy as np
import pytest
import torch

from clip_feature_extraction import clip_vit, extract as clip_cli
from clip_feature_extraction.family import (BLACK_FRAME, ZERO_IMAGE, ClipFamily, frame_choice, load_wave)
from src.errors import UserError
from src.extraction.decode import AudioSpec, Failure, decode
from src.extraction.cli import entry

from .conftest import REPO
from .interrupt import interrupt_on_second_video, resume_and_record
from .media import make_corrupt, make_video

FLAGS = ["--random_init", "--batch_size", "2", "--no_progress", "--device", "cpu", "--workers", "0"]


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def all_frames(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def clip_input(rgb):
    return np.asarray(clip_vit.preprocess_frame(np.ascontiguousarray(rgb)), np.float32)


# ------------------------------------------------------------------------- the frame rule
@pytest.mark.parametrize("n, count, dataset, published, want", [
    (9, 9, "ucf", False, 4), (9, 9, "activitynet", False, 4), (1, 1, "vggsound", False, 0),
    (10, 0, "vggsound", False, 5),
    # UCF: frameCount // 2 of a zero-filled frameCount buffer; an unknown count is n
    (9, 9, "ucf", True, 4), (12, 9, "ucf", True, 4), (5, 12, "ucf", True, BLACK_FRAME),
    (6, 12, "ucf", True, BLACK_FRAME), (7, 12, "ucf", True, 6), (9, 0, "ucf", True, 4),
    # ActivityNet / VGGSound: the (n' // 2)-th frame from 1, n' = min(n, frameCount)
    (9, 9, "activitynet", True, 3), (10, 10, "vggsound", True, 4), (9, 4, "activitynet", True, 1),
    (3, 0, "vggsound", True, 0), (2, 2, "activitynet", True, 0), (1, 1, "vggsound", True, ZERO_IMAGE),
    (5, 1, "vggsound", True, ZERO_IMAGE),
])
def test_frame_choice(n, count, dataset, published, want):
    assert frame_choice(n, count, dataset, published) == want


def test_activitynet_without_a_frame_is_a_failure():
    with pytest.raises(Failure, match="n // 2 = 0"):
        frame_choice(1, 1, "activitynet", True)
    assert frame_choice(1, 1, "activitynet", False) == 0


def test_candidates_hold_the_chosen_frame():
    for dataset in ("ucf", "activitynet", "vggsound"):
        for published in (False, True):
            family = ClipFamily(dataset, match_published=published, random_init=True)
            for count in (1, 2, 9, 250):
                kept = family.candidates(count)
                assert len(kept) <= 40
                for n in range(max(1, count - 32), count + 33):
                    try:
                        i = family.choose(n, count)
                    except Failure:
                        continue
                    assert i < 0 or i in kept, (dataset, published, count, n)
            assert family.candidates(0) is None


# ------------------------------------------------------------------------- prepare
@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip_prepare")
    return {  # 9 frames each (the .mkv container has no frame count: the last-half path)
        ".avi": make_video(root / "a.avi", seconds=0.9, fps=10),
        ".mp4": make_video(root / "b.mp4", seconds=0.9, fps=10, rate=44100, channels=2),
        ".mkv": make_video(root / "c.mkv", seconds=0.9, fps=10, rate=22050),
        "one": make_video(root / "d.avi", seconds=0.1, fps=10),
        "long": make_video(root / "e.avi", seconds=12, fps=1, rate=16000, tone_hz=3.0),
    }


@pytest.mark.parametrize("dataset, published, ext, index, bgr, invert", [
    ("ucf", False, ".avi", 4, False, False),
    ("ucf", True, ".avi", 4, True, True),                 # frameCount // 2, BGR, inverted
    ("activitynet", False, ".mp4", 4, False, False),
    ("activitynet", True, ".mp4", 3, True, False),        # the 4th frame from 1, BGR
    ("vggsound", False, ".mkv", 4, False, False),
    ("vggsound", True, ".mkv", 3, True, False),
])
def test_prepare_frame(clips, dataset, published, ext, index, bgr, invert):
    frames = all_frames(clips[ext])
    assert len(frames) == 9 and not np.array_equal(frames[index], frames[index - 1])
    units = ClipFamily(dataset, match_published=published, random_init=True).prepare(clips[ext])
    image = units["video"]["image"]
    assert image.shape == (1, 3, 224, 224) and image.dtype == np.float32
    want = frames[index]
    if invert:
        want = ((256 - want.astype(int)) % 256).astype(np.uint8)
    if bgr:
        want = want[:, :, ::-1]
    assert np.array_equal(image[0], clip_input(want))
    if bgr or invert:   # the quirks change the input
        assert not np.array_equal(image[0], clip_input(frames[index]))


def test_prepare_special_frames(clips, monkeypatch, caplog):
    one = clips["one"]
    assert len(all_frames(one)) == 1
    # VGGSound, n // 2 = 0: an all-zero normalised image; ActivityNet: a failure
    image = ClipFamily("vggsound", match_published=True, random_init=True).prepare(one)["video"]["image"]
    assert image.shape == (1, 3, 224, 224) and not image.any()
    with pytest.raises(Failure, match="n // 2 = 0"):
        ClipFamily("activitynet", match_published=True, random_init=True).prepare(one)
    # UCF's unread buffer slot: a black frame (inversion keeps 0)
    family = ClipFamily("ucf", match_published=True, random_init=True)
    monkeypatch.setattr(ClipFamily, "choose", lambda self, n, count: BLACK_FRAME)
    image = family.prepare(clips[".avi"])["video"]["image"][0]
    assert np.array_equal(image, clip_input(np.zeros((48, 64, 3), np.uint8)))
    monkeypatch.undo()
    # a container count off by more than the slack: the frame is decoded again
    monkeypatch.setattr(ClipFamily, "candidates", lambda self, count: {0})
    with caplog.at_level(logging.WARNING):
        image = ClipFamily("ucf", random_init=True).prepare(clips[".avi"])["video"]["image"][0]
    assert np.array_equal(image, clip_input(all_frames(clips[".avi"])[4])) and "decoding again" in caplog.text


def test_load_wave_like_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    pcm = (rng.normal(size=(44100 + 17, 2)) * 5000).astype(np.int16)
    wave = load_wave(pcm, 44100)
    mono = librosa.to_mono((pcm.astype(np.float32) / 32768).T)
    want = librosa.resample(mono, orig_sr=44100, target_sr=32000, res_type="kaiser_best")
    assert wave.dtype == np.float32 and wave.shape == (32013,) == want.shape      # ceil(44117 * 32 / 44.1)
    np.testing.assert_allclose(wave, want, atol=1e-7)
    same = load_wave(pcm[:, :1], 32000)
    assert np.array_equal(same, pcm[:, 0] / np.float32(32768))


def test_prepare_audio_window(clips):
    family = ClipFamily("ucf", random_init=True)
    for key, seconds in ((".avi", 0.9), ("long", 12)):
        pcm = decode(clips[key], audio=AudioSpec())
        full = load_wave(pcm.audio, pcm.audio_rate)                    # 32 kHz, float32
        assert len(full) == pytest.approx(seconds * 32000, abs=2048)   # the encoder's last frame
        wave = family.prepare(clips[key])["audio"]["wave"]
        assert wave.shape == (1, 320000) and wave.dtype == np.float32
        if len(full) < 320000:      # right-padded with zeros
            assert np.array_equal(wave[0, :len(full)], full) and not wave[0, len(full):].any()
        else:                       # the centre 10 s
            start = len(full) // 2 - 160000
            assert start > 0 and np.array_equal(wave[0], full[start:start + 320000])


# ------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def models():
    """The random networks, built once: every ClipFamily of this module reuses them."""
    build, cache = ClipFamily.build_models, {}

    def cached(self, device):
        key = (self.seed, self.random_init, str(device))
        if key not in cache:
            cache[key] = build(self, device)
        return cache[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ClipFamily, "build_models", cached)
        yield cached


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip_videos")
    make_video(root / "Archery/v_Archery_g01_c01.avi", seconds=0.9, fps=10)
    make_video(root / "Archery/v_Archery_g02_c01.mp4", seconds=0.9, fps=10, rate=44100, channels=2)
    make_video(root / "Biking/v_Biking_g01_c01.mkv", seconds=0.9, fps=10, rate=22050, tone_hz=880)
    make_corrupt(root / "Biking/v_Biking_g02_c01.mp4")
    make_video(root / "Biking/v_Biking_g03_c01.avi", seconds=0.9, fps=10, audio=False)
    return root


NAMES = [(0, "v_Archery_g01_c01.avi"), (0, "v_Archery_g02_c01.mp4"), (1, "v_Biking_g01_c01.mkv")]


def test_cli_end_to_end_with_resume(videos, models, tmp_path, monkeypatch):
    args = ["--dataset", "activitynet", "--root_dir", str(videos), "--output_dir", str(tmp_path),
            "--save_every", "1", *FLAGS]
    interrupt_on_second_video(monkeypatch, ClipFamily, clip_cli.main, args)
    assert list((tmp_path / "clip_features_activitynet.parts").rglob("chunk-*.pkl"))
    assert not (tmp_path / "clip_features_activitynet.pkl").exists()

    prepared = resume_and_record(monkeypatch, ClipFamily, clip_cli.main, args)
    assert "v_Archery_g01_c01.avi" not in prepared and len(prepared) == 4      # the first was kept

    rows = load(tmp_path / "clip_features_activitynet.pkl")
    assert [(r[1], r[3]) for r in rows] == NAMES
    family = ClipFamily("activitynet", random_init=True)
    nets = family.build_models(torch.device("cpu"))
    for image, _, audio, name in rows:
        assert image.dtype == np.float16 and image.shape == (512,)
        assert audio.dtype == np.float32 and audio.shape == (1024,)
        assert np.linalg.norm(image.astype(np.float32)) == pytest.approx(1, abs=2e-3)
        assert np.linalg.norm(audio) == pytest.approx(1, abs=1e-5)
    assert not np.allclose(rows[0][2], rows[2][2])
    # the stereo 44.1 kHz video's row is the networks' output on its units, computed here
    units = family.prepare(videos / "Archery/v_Archery_g02_c01.mp4")
    with torch.inference_mode():
        want_image = nets["video"]({"image": torch.from_numpy(units["video"]["image"])}).numpy()[0]
        want_audio = nets["audio"]({"wave": torch.from_numpy(units["audio"]["wave"])}).numpy()[0]
    np.testing.assert_allclose(rows[1][0].astype(np.float32), want_image, atol=1e-3)
    np.testing.assert_allclose(rows[1][2], want_audio, rtol=1e-4, atol=1e-5)
    lines = (tmp_path / "clip_features_activitynet.failures.tsv").read_text().splitlines()
    fails = dict(line.split("\t") for line in lines[1:])
    assert list(fails) == ["Biking/v_Biking_g02_c01.mp4", "Biking/v_Biking_g03_c01.avi"]
    assert fails["Biking/v_Biking_g02_c01.mp4"].startswith("cannot open")
    assert fails["Biking/v_Biking_g03_c01.avi"] == "no audio track"
    assert not (tmp_path / "clip_features_activitynet.parts").exists()
    with pytest.raises(UserError, match="--overwrite"):
        clip_cli.main(args)


def test_settings_are_recorded(videos, models, tmp_path):
    """A run with other settings refuses to resume another's parts; the default and the
    published rules give different image features (BGR) and the same audio."""
    out = {}
    for name, extra in (("default", []), ("published", ["--match_published"])):
        out[name] = tmp_path / name
        clip_cli.main(["--root_dir", str(videos), "--output_dir", str(out[name]), "--keep_parts",
                       "--video_list", str(_first(videos, tmp_path)), *FLAGS, *extra], dataset="vggsound")
    a, b = load(out["default"] / "clip_features_vggsound.pkl"), load(out["published"] / "clip_features_vggsound.pkl")
    assert not np.allclose(a[0][0], b[0][0]) and np.allclose(a[0][2], b[0][2], atol=1e-6)
    meta = (out["published"] / "clip_features_vggsound.parts/rank-0-of-1/meta.json").read_text()
    assert '"channels": "BGR"' in meta and '"match_published": true' in meta
    (out["published"] / "clip_features_vggsound.pkl").unlink()
    with pytest.raises(UserError, match="other settings"):
        clip_cli.main(["--root_dir", str(videos), "--output_dir", str(out["published"]), "--video_list",
                       str(_first(videos, tmp_path)), *FLAGS], dataset="vggsound")


def _first(videos, tmp_path):
    path = tmp_path / "first.csv"
    path.write_text("video,class\nArchery/v_Archery_g01_c01.avi,Archery\n")
    return path


def test_vggsound_csv_lists_the_videos(tmp_path):
    root = tmp_path / "vggsound"
    for name in ("--abc_x_000030.mp4", "zz9_000100.mp4"):
        (root / "sub").mkdir(parents=True, exist_ok=True)
        (root / "sub" / name).write_bytes(b"")
    table = tmp_path / "vggsound.csv"
    table.write_text("--abc_x,30,dog barking,train\nzz9,100,playing cello,test\nother,5,rain,test\n")
    out = clip_cli.vggsound_video_list(root, table, tmp_path / "list.csv")
    with open(out, newline="") as f:
        assert list(csv.reader(f)) == [["video", "class"], ["sub/--abc_x_000030.mp4", "dog barking"],
                                       ["sub/zz9_000100.mp4", "playing cello"]]
    (root / "stray_000001.mp4").write_bytes(b"")
    with pytest.raises(UserError, match="stray_000001.mp4"):
        clip_cli.vggsound_video_list(root, table, tmp_path / "list.csv")


def test_missing_weights_is_one_clear_error(videos, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        entry("get_clip_features_ucf.py", lambda argv: clip_cli.main(argv, dataset="ucf"),
              ["--root_dir", str(videos), "--output_dir", str(tmp_path), "--workers", "0",
               "--clip_weights", str(tmp_path / "ViT-B-32.pt")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "ViT-B-32.pt" in err and "--clip_weights" in err and "Traceback" not in err


@pytest.mark.parametrize("script", [
    "clip_feature_extraction/extract.py", "clip_feature_extraction/get_clip_features_ucf.py",
    "clip_feature_extraction/get_clip_features_activitynet.py",
    "clip_feature_extraction/get_clip_features_vggsound.py", "clip_feature_extraction/get_clip_embeddings.py"])
def test_entry_points_help(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / script), run_name="__main__")
    assert exit_.value.code == 0 and "usage:" in capsys.readouterr().out
