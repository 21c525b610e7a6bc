"""Splitting an extraction pickle into the benchmark layout, and loading it with the
project's dataset class."""
import csv
import pickle

import h5py
import numpy as np
import pytest
import torch

from splitting_scripts.split_features import main as split_main, split_features
from src.families import STAGES
from src.errors import UserError

CLASSES = {"Archery": "Archery", "BalanceBeam": "Balance Beam", "Biking": "Biking"}
LISTS = {"stage_1_train": ["Archery"], "stage_1_val_seen": ["Archery"],
         "stage_1_val_unseen": ["BalanceBeam"], "stage_2_train": ["Archery", "BalanceBeam"],
         "stage_2_test_seen": ["Archery", "BalanceBeam"], "stage_2_test_unseen": ["Biking"]}


def names(c, n, start=0):
    return [f"v_{c}_g{g:02d}_c01" for g in range(start, start + n)]


def make_class_split(root, split_dir):
    """A tiny class-split/: 2 videos per class and split, each split with its own videos."""
    cs = root / "class-split"
    (cs / split_dir).mkdir(parents=True)
    (cs / "all_class.txt").write_text("\n".join(CLASSES) + "\n")
    (cs / "ucf_w2v_class_names.csv").write_text(
        "original,manual\n" + "".join(f"{o},{m}\n" for o, m in CLASSES.items()))
    rows = {}
    for i, (split, classes) in enumerate(LISTS.items()):
        (cs / split_dir / f"{split}.txt").write_text("\n".join(classes) + "\n")
        rows[split] = [(n, c) for c in classes for n in names(c, 2, start=10 * i)]
        with open(cs / split_dir / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["filename", "label", "label_code"])
            w.writerows((n, c, list(CLASSES).index(c)) for n, c in rows[split])
    return cs, rows


def make_w2v(path):
    rng = np.random.default_rng(0)
    vecs = {m: (v / np.linalg.norm(v)).astype(np.float32)
            for m, v in ((m, rng.normal(size=300)) for m in CLASSES.values())}
    np.save(path, vecs, allow_pickle=True)
    return path


def selavi_pickle(path, all_rows, drop, duplicate):
    """A SeLaVi-format pickle: every csv row except `drop`, `duplicate` twice, reversed order."""
    listed = [n for rows in all_rows.values() for n, _ in rows if n != drop][::-1] + [duplicate]
    rng = np.random.default_rng(1)
    obj = {"video": torch.from_numpy(rng.normal(size=(len(listed), 512)).astype(np.float32)),
           "audio": torch.from_numpy(rng.normal(size=(len(listed), 512)).astype(np.float32)),
           "labels": torch.zeros(len(listed), dtype=torch.long), "filenames": listed}
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return obj


def read(path):
    with h5py.File(path, "r") as f:
        return f["data"][()], f["video_urls"][()], f["video_urls"].dtype


def test_split_selavi_pickle(tmp_path):
    root = tmp_path / "UCF"
    cs, rows = make_class_split(root, "main_split")
    drop, dup = rows["stage_1_train"][1][0], rows["stage_2_test_seen"][0][0]
    obj = selavi_pickle(tmp_path / "main.pkl", rows, drop, dup)
    w2v = make_w2v(tmp_path / "w2v.npy")
    report = split_main(["--features", str(tmp_path / "main.pkl"), "--root_dir", str(root),
                         "--w2v", str(w2v)], dataset="ucf")
    assert report.missing_rows == [("stage_1_train", "Archery", drop)] and report.duplicates == [dup]
    out = root / "features/main_features"
    data, urls, dtype = read(out / "video/stage_1_val_unseen/BalanceBeam.h5")
    assert dtype == np.dtype("S80") and data.dtype == np.float32 and data.shape == (2, 512)
    want = sorted(n for n, _ in rows["stage_1_val_unseen"])[::-1]   # the pickle's (reversed) order
    assert [u.decode() for u in urls] == want
    i = obj["filenames"].index(want[0])
    assert np.array_equal(data[0], obj["video"][i].numpy())
    a_data, a_urls, _ = read(out / "audio/stage_1_val_unseen/BalanceBeam.h5")
    assert np.array_equal(a_urls, urls) and np.array_equal(a_data[0], obj["audio"][i].numpy())
    assert read(out / "video/stage_1_train/Archery.h5")[0].shape == (1, 512)   # the missing row
    assert sorted(p.name for p in (out / "video/stage_2_train").iterdir()) == ["Archery.h5", "BalanceBeam.h5"]
    assert (out / "text/word_embeddings_ucf_normed.npy").read_bytes() == w2v.read_bytes()
    text = (out / "split_report.txt").read_text()
    assert f"csv row not in the pickle: stage_1_train Archery {drop}" in text and dup in text


def test_split_cls_pickle_and_the_dataset_class(tmp_path):
    root = tmp_path / "UCF"
    _, rows = make_class_split(root, "cls_split")
    listed = sorted({(n, c) for r in rows.values() for n, c in r})
    rng = np.random.default_rng(2)
    pkl = [[rng.random(4096).astype(np.float32), list(CLASSES).index(c), rng.random(128) * 255,
            n + ".avi"] for n, c in listed]
    with open(tmp_path / "cls.pkl", "wb") as f:
        pickle.dump(pkl, f)
    split_main(["--features", str(tmp_path / "cls.pkl"), "--root_dir", str(root), "--w2v",
                str(make_w2v(tmp_path / "w2v.npy")), "--strict"], dataset="ucf")
    data, urls, _ = read(root / "features/cls_features/audio/stage_2_test_unseen/Biking.h5")
    assert data.shape == (2, 128) and urls[0].decode() == names("Biking", 1, start=50)[0]

    from src.data import AVGZSLDataset
    ds = AVGZSLDataset(root, "UCF", "cls_features", "cls_split", cache=False)
    train, test = ds.split("train"), ds.split("test")
    assert train.audio.shape == (2, 128) and train.video.shape == (2, 4096)
    assert test.audio.shape == (6, 128) and len(test.class_ids) == 3
    row = pkl[[r[3] for r in pkl].index(train.urls[0] + ".avi")]
    assert np.allclose(train.video[0].numpy(), row[0]) and np.allclose(train.audio[0].numpy(), row[2])


def test_split_reports_missing_csv_and_rejects_bad_pickles(tmp_path):
    root = tmp_path / "VGG"
    cs, rows = make_class_split(root, "main_split")
    (cs / "main_split/stage_1_train.csv").unlink()
    selavi_pickle(tmp_path / "m.pkl", rows, drop=None, duplicate=rows["stage_2_train"][0][0])
    report = split_features(tmp_path / "m.pkl", cs, root, "vggsound")
    assert report.missing_csv == ["stage_1_train"] and "stage_1_train" not in report.written
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump({"x": 1}, f)
    with pytest.raises(UserError, match="neither a SeLaVi pickle"):
        split_features(tmp_path / "bad.pkl", cs, root, "vggsound")


@pytest.mark.parametrize("dataset,folder", [("ucf", "UCF"), ("activity", "ActivityNet"),
                                            ("vggsound", "VGGSound")])
def test_split_with_the_official_csvs(shared_splits, tmp_path, dataset, folder):
    """Every row of the official cls_split test csvs found; the .txt decides the classes."""
    cs = shared_splits / folder / "class-split"
    txt = [c for c in (cs / "cls_split/stage_2_test_unseen.txt").read_text().splitlines() if c]
    with open(cs / "cls_split/stage_2_test_unseen.csv", newline="") as f:
        rows = [(r["filename"], r["label"]) for r in csv.DictReader(f)]
    pkl = [[np.zeros(8, np.float32), 0, np.ones(4), n + ".mp4"] for n, _ in rows]
    with open(tmp_path / "cls.pkl", "wb") as f:
        pickle.dump(pkl, f)
    report = split_features(tmp_path / "cls.pkl", cs, tmp_path, dataset)
    assert report.written["stage_2_test_unseen"] == (len(txt), sum(1 for _, c in rows if c in txt))
    assert not [r for r in report.missing_rows if r[0] == "stage_2_test_unseen"]
    files = sorted(p.stem for p in (tmp_path / "features/cls_features/video/stage_2_test_unseen").iterdir())
    assert files == sorted(txt)
    assert set(report.written) == set(STAGES) - set(report.missing_csv)
