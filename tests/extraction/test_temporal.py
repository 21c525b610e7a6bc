"""TCaF's temporal features from raw videos (docs/tcaf.md 1), random weights: SeLaVi's per-window
pickle under both window rules (the averaged output unchanged), C3D/VGGish's per-clip pickle,
and both split into the `*_non_averaged` layout and read back by the data layer."""
import csv
import pickle

import numpy as np
import pytest
import torch

from cls_feature_extraction import extract as cls_cli
from cls_feature_extraction.family import ClsFamily
from selavi_feature_extraction import get_clusters
from selavi_feature_extraction.family import SelaviFamily
from selavi_feature_extraction.preprocess import temporal_window_starts, window_starts
from splitting_scripts.split_features import main as split_main, split_features
from src.families import STAGES
from src.data import AVGZSLDataset
from src.errors import UserError

from .media import make_video
from .test_split import CLASSES, LISTS, make_w2v

CLS_FLAGS = ["--random_init", "--fps", "0", "--batch_size", "2", "--no_progress", "--device", "cpu",
             "--workers", "0"]
SELAVI_FLAGS = ["--random_init", "--dataset", "ucf", "--batch_size", "2", "--no_progress",
                "--device", "cpu", "--workers", "0"]


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def failed(out, name):
    return [line.split("\t")[0] for line in (out / f"{name}.failures.tsv").read_text().splitlines()[1:]]


# ------------------------------------------------------------------------- window rules
def test_temporal_window_rules():
    # default: the averaged feature's own consecutive one-second windows
    assert temporal_window_starts(300, 30) == window_starts(300, 30) == list(range(0, 300, 30))
    assert temporal_window_starts(59, 30) == [0]
    # [published quirk], docs/tcaf.md 1: K = int(F / r), start_i = int(max(F - r, 0) * 100 i / (1000 (K // 10 + 1)))
    # 10 s at 30 fps: K = 10, delta = 270, 1000 * 2: 13.5 i -> every 0.45 s, the first 5 s covered
    assert temporal_window_starts(300, 30, True) == [0, 13, 27, 40, 54, 67, 81, 94, 108, 121]
    # 2.2 s at 25 fps: K = 2, delta = 30, 1000 * 1: 3 i
    assert temporal_window_starts(55, 25, True) == [0, 3]
    # 1.5 s: one window at 0, where the averaged feature's published rule (K - 1) has none
    assert temporal_window_starts(45, 30, True) == [0] and window_starts(45, 30, True) == []
    # 60 s at 25 fps: K = 60, delta = 1475, 1000 * 7: 21.07 i
    got = temporal_window_starts(1500, 25, True)
    assert len(got) == 60 and got[:6] == [0, 21, 42, 63, 84, 105] and got[-1] == 1243  # 8702500 / 7000
    # 10 s at 29.97 fps: K = 10, delta = 300 - 30000/1001 = 270.03: 13.5015 i
    assert temporal_window_starts(300, 30000 / 1001, True) == [0, 13, 27, 40, 54, 67, 81, 94, 108, 121]
    # 5 fps, 2.4 s: K = 2, delta = 7: 0.7 i -> the same start twice
    assert temporal_window_starts(12, 5, True) == [0, 0]


def test_units_are_the_averaged_windows_then_the_others():
    pub = SelaviFamily("ucf", match_published=True, random_init=True)
    averaged = [27 * i for i in range(9)]                         # the averaged rule, K - 1 = 9
    starts, avg_rows, win_rows = pub.unit_starts(300, 30)
    assert starts == averaged + [13, 40, 67, 94, 121] and avg_rows == list(range(9))
    assert [starts[j] for j in win_rows] == [0, 13, 27, 40, 54, 67, 81, 94, 108, 121]
    assert pub.unit_starts(12, 5) == ([0], [0], [0, 0])           # each start run once
    assert pub.unit_starts(45, 30) == ([0], [], [0])              # no averaged window: a failure
    default = SelaviFamily("ucf", random_init=True)
    assert default.unit_starts(300, 30) == (list(range(0, 300, 30)), list(range(10)), list(range(10)))
    off = SelaviFamily("ucf", match_published=True, random_init=True, per_window=False)
    assert off.unit_starts(300, 30) == (averaged, list(range(9)), [])   # exactly as without the option


# ------------------------------------------------------------------------- SeLaVi end to end
@pytest.fixture(scope="module")
def selavi_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("selavi_videos")
    make_video(root / "Archery/v_Archery_g01_c01.avi", seconds=2.2, fps=25, rate=44100)   # 55 frames
    make_video(root / "BalanceBeam/v_BalanceBeam_g01_c01.avi", seconds=1.5, fps=25, rate=44100)
    make_video(root / "Biking/v_Biking_g01_c01.avi", seconds=1.2, fps=25, rate=44100)
    return root


@pytest.fixture(scope="module")
def selavi_runs(selavi_videos, tmp_path_factory):
    """{run: output folder} of four runs: default and --match_published, each with and without
    the per-window pickle (the default one without it on the first video only: batches of
    2 windows, so its windows are batched as in the run with it)."""
    first = selavi_videos / "first.csv"
    first.write_text("video,class\nArchery/v_Archery_g01_c01.avi,Archery\n")
    out = {}
    for name, extra in (("default", ["--keep_parts", "--save_every", "1"]),
                        ("default_off", ["--no_per_window", "--video_list", str(first)]),
                        ("published", ["--match_published"]),
                        ("published_off", ["--match_published", "--no_per_window"])):
        out[name] = tmp_path_factory.mktemp(name)
        get_clusters.main(["--root_dir", str(selavi_videos), "--output_dir", str(out[name]), *SELAVI_FLAGS,
                           *extra])
    return out


NAMES = ["v_Archery_g01_c01", "v_BalanceBeam_g01_c01", "v_Biking_g01_c01"]


def test_selavi_per_window_default(selavi_runs, selavi_videos):
    out = selavi_runs["default"]
    avg = load(out / "main_features_ucf.pkl")
    win = load(out / "main_features_ucf_per_window.pkl")
    assert set(win) == {"video", "labels", "audio", "filenames"}
    assert win["filenames"] == avg["filenames"] == NAMES and win["labels"].tolist() == [0, 1, 2]
    assert [len(v) for v in win["video"]] == [len(a) for a in win["audio"]] == [2, 1, 1]  # 1 s windows
    for i, (v, a) in enumerate(zip(win["video"], win["audio"])):
        assert v.dtype == a.dtype == np.float32 and v.shape[1] == a.shape[1] == 512
        # the per-window features are the averaged feature's windows
        assert np.array_equal(v.mean(axis=0), avg["video"][i].numpy())
        assert np.array_equal(a.mean(axis=0), avg["audio"][i].numpy())
    assert not np.allclose(win["video"][0][0], win["video"][0][1])
    # the averaged output is the one written without the per-window pickle
    off = selavi_runs["default_off"]
    assert not (off / "main_features_ucf_per_window.pkl").exists()
    without = load(off / "main_features_ucf.pkl")
    assert without["filenames"] == avg["filenames"][:1] and torch.equal(without["labels"], avg["labels"][:1])
    assert torch.equal(without["video"], avg["video"][:1]) and torch.equal(without["audio"], avg["audio"][:1])
    # resumable: the kept shards merge again into the same pickles, and record the option
    meta = (out / "main_features_ucf.parts/rank-0-of-1/meta.json").read_text()
    assert '"per_window": true' in meta
    get_clusters.main(["--root_dir", str(selavi_videos), "--output_dir", str(out), *SELAVI_FLAGS,
                       "--merge_only"])
    again = load(out / "main_features_ucf_per_window.pkl")
    assert all(np.array_equal(x, y) for x, y in zip(again["video"] + again["audio"], win["video"] + win["audio"]))


def test_selavi_per_window_published(selavi_runs):
    out = selavi_runs["published"]
    avg = load(out / "main_features_ucf.pkl")
    win = load(out / "main_features_ucf_per_window.pkl")
    # the averaged rule gives no window under 2 s: those videos fail for both outputs
    assert win["filenames"] == avg["filenames"] == ["v_Archery_g01_c01"]
    assert failed(out, "main_features_ucf") == ["BalanceBeam/v_BalanceBeam_g01_c01.avi",
                                                "Biking/v_Biking_g01_c01.avi"]
    # 55 frames at 25 fps: TCaF's windows start at frames 0 and 3, the averaged one at 0 only
    v, a = win["video"][0], win["audio"][0]
    assert v.shape == a.shape == (2, 512) and v.dtype == np.float32
    assert np.allclose(v[0], avg["video"][0].numpy(), rtol=1e-5, atol=1e-6)
    assert np.allclose(a[0], avg["audio"][0].numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(v[0], v[1])
    default = load(selavi_runs["default"] / "main_features_ucf_per_window.pkl")
    assert np.allclose(v[0], default["video"][0][0], rtol=1e-5, atol=1e-6)   # both start at frame 0
    without = load(selavi_runs["published_off"] / "main_features_ucf.pkl")
    assert without["filenames"] == avg["filenames"]
    assert torch.allclose(without["video"], avg["video"], rtol=1e-5, atol=1e-6)
    assert torch.allclose(without["audio"], avg["audio"], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------- C3D / VGGish per clip
@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls_videos")
    make_video(root / "Archery/v_Archery_g01_c01.avi", seconds=2, fps=16)     # 2 clips, 2 examples
    make_video(root / "BalanceBeam/v_BalanceBeam_g01_c01.avi", seconds=1, fps=16)
    make_video(root / "Biking/v_Biking_g01_c01.avi", seconds=1, fps=16, tone_hz=880)
    out = tmp_path_factory.mktemp("cls_out")
    cls_cli.main(["--dataset", "ucf", "--root_dir", str(root), "--output_dir", str(out), *CLS_FLAGS])
    return root, out


def test_cls_per_clip_pickle(cls_run):
    root, out = cls_run
    rows = load(out / "cls_features_ucf_per_clip.pkl")
    assert [(r[1], r[3]) for r in rows] == [(i, n + ".avi") for i, n in enumerate(NAMES)]
    clips, _, examples, _ = rows[0]
    assert clips.dtype == np.float32 and clips.shape == (2, 4096)          # ceil(32 / 16) clips
    assert examples.dtype == np.uint8 and examples.shape == (2, 128)        # floor(2 s / 0.96 s)
    assert [r[0].shape[0] for r in rows[1:]] == [r[2].shape[0] for r in rows[1:]] == [1, 1]
    # the per-clip fc7 vectors and the PCA-quantised examples, computed here on the same units
    family = ClsFamily("ucf", fps=None, random_init=True, seed=0)
    models = family.build_models(torch.device("cpu"))
    units = family.prepare(root / "Archery/v_Archery_g01_c01.avi")
    with torch.inference_mode():
        run = lambda s: models[s]({k: torch.from_numpy(v) for k, v in units[s].items()}).numpy()  # noqa: E731
        want_clips, want_examples = run("video"), family._pca(run("audio"))
    np.testing.assert_allclose(clips, want_clips, rtol=1e-4, atol=1e-5)
    assert (clips >= 0).all() and not np.allclose(clips[0], clips[1])
    assert np.abs(examples.astype(int) - want_examples.astype(int)).max() <= 1   # quantisation edges
    averaged = load(out / "cls_features_ucf.pkl")
    for r, a in zip(rows, averaged):
        assert np.allclose(r[0].mean(0), a[0]) and np.allclose(r[2].mean(0), a[2])


# ------------------------------------------------------------------------- splitting
def make_class_split(root, videos):
    """class-split/ for both families: every split lists LISTS' classes; each class's csv rows
    are its `videos` (the same in every split)."""
    cs = root / "class-split"
    (cs / "main_split").mkdir(parents=True, exist_ok=True)
    (cs / "cls_split").mkdir(exist_ok=True)
    (cs / "all_class.txt").write_text("\n".join(CLASSES) + "\n")
    (cs / "ucf_w2v_class_names.csv").write_text(
        "original,manual\n" + "".join(f"{o},{m}\n" for o, m in CLASSES.items()))
    for split_dir in ("main_split", "cls_split"):
        for split, classes in LISTS.items():
            (cs / split_dir / f"{split}.txt").write_text("\n".join(classes) + "\n")
            with open(cs / split_dir / f"{split}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["filename", "label", "label_code"])
                w.writerows((n, c, list(CLASSES).index(c)) for c in classes for n in videos[c])
    return cs


def sequence(seqs, i):
    return seqs.values[seqs.offsets[i]:seqs.offsets[i] + seqs.lengths[i]].numpy()


def check_read_back(root, folder, split_dir, extracted):
    """The data layer reads the temporal layout; every sequence equals the extracted one."""
    ds = AVGZSLDataset(root, "UCF", folder, split_dir, cache=False)
    for split, n in (("train", 1), ("val", 2), ("test", 3)):
        data = ds.split(split)
        assert len(data.urls) == n
        for i, url in enumerate(data.urls):
            video, audio = extracted[url]
            assert np.array_equal(sequence(data.video, i), video.astype(np.float32))
            assert np.array_equal(sequence(data.audio, i), audio.astype(np.float32))


def test_split_cls_per_clip_into_the_temporal_layout(cls_run, tmp_path):
    _, out = cls_run
    rows = load(out / "cls_features_ucf_per_clip.pkl")
    root = tmp_path / "UCF"
    make_class_split(root, {c: [n] for c, n in zip(CLASSES, NAMES)})
    w2v = make_w2v(tmp_path / "w2v.npy")
    report = split_main(["--features", str(out / "cls_features_ucf_per_clip.pkl"), "--root_dir", str(root),
                         "--w2v", str(w2v), "--strict"], dataset="ucf")
    assert report.problems == 0 and report.written["stage_2_test_seen"] == (2, 2)
    base = root / "features/cls_features_non_averaged"
    assert not (root / "features/cls_features").exists()
    assert (base / "text/word_embeddings_ucf_normed.npy").read_bytes() == w2v.read_bytes()
    assert "stage_2_test_unseen: 1 classes, 1 rows" in (base / "split_report.txt").read_text()
    for split in STAGES:
        for m in ("audio", "video"):
            assert sorted(p.name for p in (base / m / split).iterdir()) == [f"{c}.pkl" for c in LISTS[split]]
    blob = load(base / "audio/stage_1_train/Archery.pkl")
    assert set(blob) == {"features", "video_names", "fps"}
    assert blob["video_names"] == [b"v_Archery_g01_c01"] and blob["fps"] == [25]
    assert blob["features"][0].dtype == np.uint8 and np.array_equal(blob["features"][0], rows[0][2])
    video = load(base / "video/stage_1_train/Archery.pkl")
    assert video["video_names"] == blob["video_names"] and video["features"][0].dtype == np.float32
    assert np.array_equal(video["features"][0], rows[0][0])
    check_read_back(root, "cls_features_non_averaged", "cls_split",
                    {r[3][:-len(".avi")]: (r[0], r[2]) for r in rows})

    # --temporal given the averaged pickle reads its per-clip sibling: the same files
    other = tmp_path / "UCF2"
    make_class_split(other, {c: [n] for c, n in zip(CLASSES, NAMES)})
    split_features(out / "cls_features_ucf.pkl", other / "class-split", other, "ucf", temporal=True)
    again = load(other / "features/cls_features_non_averaged/video/stage_2_test_unseen/Biking.pkl")
    assert np.array_equal(again["features"][0], rows[2][0])


def test_split_selavi_per_window_into_the_temporal_layout(selavi_runs, tmp_path):
    win = load(selavi_runs["default"] / "main_features_ucf_per_window.pkl")
    root = tmp_path / "UCF"
    make_class_split(root, {c: [n] for c, n in zip(CLASSES, NAMES)})
    split_main(["--features", str(selavi_runs["default"] / "main_features_ucf.pkl"), "--temporal",
                "--root_dir", str(root), "--w2v", str(make_w2v(tmp_path / "w2v.npy")), "--strict"],
               dataset="ucf")
    blob = load(root / "features/main_features_non_averaged/video/stage_2_test_seen/Archery.pkl")
    assert blob["video_names"] == [b"v_Archery_g01_c01"] and blob["fps"] == [25]
    assert blob["features"][0].shape == (2, 512) and blob["features"][0].dtype == np.float32
    check_read_back(root, "main_features_non_averaged", "main_split",
                    {n: (v, a) for n, v, a in zip(win["filenames"], win["video"], win["audio"])})


def test_temporal_split_errors(selavi_runs, tmp_path):
    root = tmp_path / "UCF"
    cs = make_class_split(root, {c: [n] for c, n in zip(CLASSES, NAMES)})
    with pytest.raises(UserError, match="_per_window.pkl nor .*_per_clip.pkl"):
        split_features(selavi_runs["default_off"] / "main_features_ucf.pkl", cs, root, "ucf", temporal=True)
    win = load(selavi_runs["default"] / "main_features_ucf_per_window.pkl")
    win["audio"][0] = win["audio"][0][:1]                  # one audio window short
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump(win, f)
    with pytest.raises(UserError, match="different numbers of audio and video windows"):
        split_features(tmp_path / "bad.pkl", cs, root, "ucf")
