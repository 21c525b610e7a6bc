"""Splitting a CLIP/CLAP pickle into ClipClap's layout (docs/clipclap.md 1.4): one vector per video in
`cls_features_non_averaged/{audio,video}/{split}/{Class}.pkl`, names aligned with the features
after a skipped video (empty image feature), the class embeddings copied into text/, the
original's shards read as one, and the result read back by the data layer."""
import pickle

import numpy as np
import pytest
import torch

from clip_feature_extraction.text_embeddings import save_embeddings
from splitting_scripts.split_features import main as split_main
from src.families import STAGES
from src.data import AVGZSLDataset
from src.errors import UserError

from .test_split import CLASSES, LISTS
from .test_temporal import make_class_split

VIDEOS = {"Archery": ["v_Archery_g01_c01", "v_Archery_g02_c01"], "BalanceBeam": ["v_BalanceBeam_g01_c01"],
          "Biking": ["v_Biking_g01_c01", "v_Biking_g02_c01"]}
EMPTY = "v_Archery_g01_c01"      # ActivityNet's published n // 2 = 0 case: an empty image feature
CLIP_NAMES = {"Archery": "Archery", "BalanceBeam": "Balance Beam", "Biking": "Biking"}


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def clip_rows():
    """Rows as clip_feature_extraction writes them (shuffled order), one with an empty image."""
    rng = np.random.default_rng(0)
    rows = []
    for c, names in VIDEOS.items():
        for n in names:
            image = rng.normal(size=512).astype(np.float16) if n != EMPTY else np.array([])
            rows.append([image, list(CLASSES).index(c), rng.normal(size=1024).astype(np.float32), n + ".mp4"])
    return [rows[i] for i in (3, 0, 4, 1, 2)]


def write(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return path


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ClipClap/UCF"
    cs = make_class_split(root, VIDEOS)
    (cs / "ucf_clip_class_names.csv").write_text(
        "original,manual,clip_class_name\n" + "".join(f"{o},{m},{CLIP_NAMES[o]}\n" for o, m in CLASSES.items()))
    text = tmp_path / "text"
    rng = np.random.default_rng(1)
    for stem, width in (("word_embeddings", 512), ("wavcaps_word_embeddings", 1024)):
        save_embeddings({n: (v / np.linalg.norm(v)).astype(np.float32)
                         for n, v in ((n, rng.normal(size=width)) for n in CLIP_NAMES.values())},
                        text / f"{stem}_ucf_normed.npy")
    return root, text


def test_split_clip_pickle(dataset, tmp_path):
    root, text = dataset
    rows = clip_rows()
    pkl = write(tmp_path / "clip_features_ucf.pkl", rows)
    report = split_main(["--features", str(pkl), "--root_dir", str(root), "--family", "clip",
                         "--clip_text", str(text)], dataset="ucf")
    assert report.skipped == [EMPTY] and not report.missing_rows and not report.duplicates
    assert not report.notes and report.written["stage_2_test_seen"] == (2, 2)
    base = root / "features/cls_features_non_averaged"
    assert sorted(p.name for p in (base / "text").iterdir()) == ["wavcaps_word_embeddings_ucf_normed.npy",
                                                                  "word_embeddings_ucf_normed.npy"]
    assert "empty image feature (skipped): v_Archery_g01_c01" in (base / "split_report.txt").read_text()
    by_name = {r[3][:-4]: r for r in rows}
    for split in STAGES:
        for m in ("audio", "video"):
            assert sorted(p.name for p in (base / m / split).iterdir()) == [f"{c}.pkl" for c in LISTS[split]]
        for c in LISTS[split]:
            video, audio = load(base / "video" / split / f"{c}.pkl"), load(base / "audio" / split / f"{c}.pkl")
            assert set(video) == {"features", "video_names", "fps"}
            want = [n for n in sorted(VIDEOS[c], key=lambda n: [r[3] for r in rows].index(n + ".mp4")) if n != EMPTY]
            # aligned: one name per feature, the skipped video in neither
            assert video["video_names"] == audio["video_names"] == [n.encode() for n in want]
            assert len(video["features"]) == len(audio["features"]) == len(want) and video["fps"] == [25] * len(want)
            for n, v, a in zip(want, video["features"], audio["features"]):
                assert v.dtype == np.float16 and v.shape == (512,) and np.array_equal(v, by_name[n][0])
                assert a.dtype == np.float32 and a.shape == (1024,) and np.array_equal(a, by_name[n][2])

    # the data layer reads it as CLIP/CLAP vectors, [N, D] rows
    ds = AVGZSLDataset(root, "UCF", "cls_features_non_averaged", "cls_split", cache=False)
    assert ds.vectors and ds.word_vectors.shape == (3, 1536)
    data = ds.split("test")
    assert data.video.shape == (4, 512) and data.audio.shape == (4, 1024)
    for url, v, a in zip(data.urls, data.video, data.audio):
        assert torch.equal(v, torch.from_numpy(by_name[url][0].astype(np.float32)))
        assert torch.equal(a, torch.from_numpy(by_name[url][2]))


def test_shards_read_as_one(dataset, tmp_path):
    root, text = dataset
    rows = clip_rows()
    whole = write(tmp_path / "all.pkl", rows)
    shards = [write(tmp_path / f"clip_features_ucf_{i}.pkl", rows[i::2]) for i in range(2)]
    split_main(["--features", str(whole), "--root_dir", str(root), "--clip_text", str(text)], dataset="ucf")
    base = root / "features/cls_features_non_averaged"
    first = {p.relative_to(base): p.read_bytes() for p in base.rglob("*.pkl")}
    report = split_main(["--features", *map(str, shards), "--root_dir", str(root), "--clip_text", str(text)],
                        dataset="ucf")
    assert report.skipped == [EMPTY]
    again = {p.relative_to(base): load(p) for p in base.rglob("*.pkl")}
    assert set(again) == set(first)
    for key, blob in again.items():   # the shards' order differs: the same videos, in shard order
        before = pickle.loads(first[key])
        assert sorted(blob["video_names"]) == sorted(before["video_names"])


def test_clip_pickle_errors(dataset, tmp_path):
    root, text = dataset
    pkl = write(tmp_path / "clip.pkl", clip_rows())
    cls = write(tmp_path / "cls.pkl", [[np.zeros(4096, np.float32), 0, np.zeros(128), "v_Archery_g02_c01.avi"]])
    with pytest.raises(UserError, match="--family clip: .*cls.pkl is not a CLIP/CLAP pickle"):
        split_main(["--features", str(cls), "--root_dir", str(root), "--family", "clip"], dataset="ucf")
    with pytest.raises(UserError, match="--w2v: CLIP/CLAP"):
        split_main(["--features", str(pkl), "--root_dir", str(root), "--w2v", str(tmp_path / "w.npy")],
                   dataset="ucf")
    with pytest.raises(UserError, match="no sequence"):
        split_main(["--features", str(pkl), "--root_dir", str(root), "--temporal"], dataset="ucf")
    with pytest.raises(UserError, match="wavcaps_word_embeddings_ucf_normed.npy not found"):
        split_main(["--features", str(pkl), "--root_dir", str(root), "--clip_text", str(tmp_path)], dataset="ucf")
    # without --clip_text: written, with a note that the training code would read it as TCaF's
    report = split_main(["--features", str(pkl), "--root_dir", str(root)], dataset="ucf")
    assert report.written and "give --clip_text" in report.notes[0]
