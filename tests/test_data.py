"""The data layer: layout, splits, case rules, word-vector pairing, cache, bad input."""
import csv
import shutil

import h5py
import numpy as np
import pytest
import torch

from conftest import count_mispaired, real_data_or_skip
from src.data import DATASETS, AVGZSLDataset, read_class_list
from src.errors import UserError
from src.synthetic import generate

# (train, val seen, val unseen, test seen, test unseen) classes, main and cls (shared/data/README.md)
REAL_CLASSES = {
    "UCF": ((30, 30, 12, 42, 9), (30, 30, 12, 42, 6)),
    "ActivityNet": ((99, 99, 51, 150, 50), (99, 99, 51, 150, 48)),
    "VGGSound": ((138, 138, 69, 207, 69), (138, 138, 69, 207, 64)),
}
MISPAIRED = {"UCF": 79, "ActivityNet": 8, "VGGSound": 205}


@pytest.fixture(scope="module")
def real_roots(tmp_path_factory):
    data = real_data_or_skip()
    out = tmp_path_factory.mktemp("real")
    return {ds: generate(out, ds, from_real=data, max_per_class=2, seed=1) for ds in DATASETS}


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("family", [0, 1])
def test_real_splits_have_the_published_classes(real_roots, dataset, family):
    method, split = [("main_features", "main_split"), ("cls_features", "cls_split")][family]
    ds = AVGZSLDataset(real_roots[dataset], dataset, method, split)
    n_train, n_vs, n_vu, n_ts, n_tu = REAL_CLASSES[dataset][family]
    train, val, tv, test = (ds.split(s) for s in ("train", "val", "train_val", "test"))
    assert len(train.class_ids) == n_train and bool(train.seen_mask.all())
    assert int(val.seen_mask.sum()) == n_vs and int((~val.seen_mask).sum()) == n_vu
    assert len(tv.class_ids) == n_train + n_vu and bool(tv.seen_mask.all())
    assert int(test.seen_mask.sum()) == n_ts and int((~test.seen_mask).sum()) == n_tu
    # every sample's class belongs to its split; the text matrix follows the class order
    for s in (train, val, tv, test):
        assert bool(torch.isin(s.targets, s.class_ids).all())
        assert torch.equal(s.class_ids[s.labels], s.targets)
        assert torch.equal(s.text, ds.word_vectors[s.class_ids])
        assert torch.equal(s.class_ids, torch.sort(s.class_ids).values)


def test_class_index_is_case_sensitive_sort(real_roots):
    ds = AVGZSLDataset(real_roots["UCF"], "UCF")
    names = ds.class_names
    assert names == sorted(names)
    assert names.index("HammerThrow") < names.index("Hammering")     # 'T' < 'i' in code points
    # UCF's split lists say HandStandPushups, all_class.txt HandstandPushups: matched anyway
    listed = (ds.class_split_dir / "stage_1_train.txt").read_text() + \
        "".join((ds.class_split_dir / f).read_text() for f in ("stage_2_test_unseen.txt", "stage_1_val_unseen.txt"))
    if "HandStandPushups" in listed:
        assert "HandstandPushups" in names
    for stage in ("stage_1_train", "stage_1_val_unseen", "stage_2_test_unseen"):     # every listed name found
        path = ds.class_split_dir / f"{stage}.txt"
        assert all(0 <= ds.class_index(n, path) < len(names) for n in read_class_list(path))


def test_vggsound_names_match_exactly(tmp_path):
    root = generate(tmp_path, "VGGSound", preset="tiny", families=("main",))
    ds = AVGZSLDataset(root, "VGGSound")
    name = ds.class_names[0]
    assert ds.class_index(name, "x") == 0
    with pytest.raises(UserError, match="not in"):
        ds.class_index(name.upper(), "x")


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_word_vector_pairing_both_modes(real_roots, dataset):
    correct = AVGZSLDataset(real_roots[dataset], dataset, pairing="correct")
    original = AVGZSLDataset(real_roots[dataset], dataset, pairing="original")
    w2v = np.load(correct.word_vector_paths[0], allow_pickle=True).item()
    with open(correct.split_dir / DATASETS[dataset].mapping_csv) as f:
        mapping = {r["original"].lower() if DATASETS[dataset].case_insensitive else r["original"]: r["manual"]
                   for r in csv.DictReader(f)}
    for c, name in enumerate(correct.class_names):
        manual = mapping[correct.key(name)]
        assert torch.equal(correct.word_vectors[c], torch.from_numpy(w2v[manual]))
    sorted_keys = sorted(w2v)
    for c in range(len(original.class_names)):
        assert torch.equal(original.word_vectors[c], torch.from_numpy(w2v[sorted_keys[c]]))
    assert count_mispaired(correct) == MISPAIRED[dataset]


def test_ucf_original_pairing_shift(real_roots):
    """docs/protocol.md: UCF class ids 20-97 take the next class's vector, WallPushups CleanAndJerk's."""
    correct = AVGZSLDataset(real_roots["UCF"], "UCF", pairing="correct")
    original = AVGZSLDataset(real_roots["UCF"], "UCF", pairing="original")
    for c in range(20, 98):
        assert torch.equal(original.word_vectors[c], correct.word_vectors[c + 1])
    wall = correct.class_names.index("WallPushups")
    clean = correct.class_names.index("CleanAndJerk")
    assert torch.equal(original.word_vectors[wall], correct.word_vectors[clean])


# -- cache -----------------------------------------------------------------------------------

@pytest.fixture()
def root(tmp_path):
    return generate(tmp_path, "UCF", preset="tiny", families=("main",), seed=3)


def cache_file(root, folder="stage_1_train"):
    return root / "_features_processed" / "main_features" / f"{folder}.pt"


def test_cache_is_written_reused_and_rebuilt(root):
    a = AVGZSLDataset(root, "UCF").split("train")
    path = cache_file(root)
    assert path.is_file()
    assert not list(path.parent.glob(".*.tmp"))                 # no temp file left behind
    mtime = path.stat().st_mtime_ns
    b = AVGZSLDataset(root, "UCF").split("train")
    assert path.stat().st_mtime_ns == mtime and torch.equal(a.audio, b.audio)
    # a source file changes: the cache is rebuilt and the new values are read
    h5 = sorted((root / "features/main_features/audio/stage_1_train").glob("*.h5"))[0]
    with h5py.File(h5, "r+") as f:
        f["data"][0, 0] = 1234.5
    c = AVGZSLDataset(root, "UCF").split("train")
    assert bool((c.audio == 1234.5).any()) and not bool((a.audio == 1234.5).any())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_cache_is_rebuilt(root, damage):
    a = AVGZSLDataset(root, "UCF").split("train")
    path = cache_file(root)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a cache" * 10, "empty": b""}[damage])
    b = AVGZSLDataset(root, "UCF").split("train")
    assert torch.equal(a.audio, b.audio) and torch.equal(a.targets, b.targets)
    assert path.read_bytes() == data or len(path.read_bytes()) > len(data) // 2


def test_class_split_underscore_spelling(root):
    (root / "class-split").rename(root / "class_split")
    assert len(AVGZSLDataset(root, "UCF").split("train")) > 0


# -- bad input -------------------------------------------------------------------------------

def h5_path(root, modality="audio", folder="stage_1_train", k=0):
    return sorted((root / "features/main_features" / modality / folder).glob("*.h5"))[k]


def break_missing_root(root):
    shutil.rmtree(root)


def break_missing_split(root):
    shutil.rmtree(root / "class-split/main_split")


def break_missing_features(root):
    shutil.rmtree(root / "features/main_features")


def break_missing_h5(root):
    for m in ("audio", "video"):
        h5_path(root, m).unlink()


def break_no_data(root):
    with h5py.File(h5_path(root), "r+") as f:
        del f["data"]


def break_no_urls(root):
    with h5py.File(h5_path(root), "r+") as f:
        del f["video_urls"]


def break_names_differ(root):
    with h5py.File(h5_path(root, "video"), "r+") as f:
        names = f["video_urls"][()]
        names[0] = b"another_video"
        f["video_urls"][...] = names


def break_nan(root):
    with h5py.File(h5_path(root), "r+") as f:
        f["data"][1, 2] = np.nan


def break_inf(root):
    with h5py.File(h5_path(root, "video"), "r+") as f:
        f["data"][0, 0] = np.inf


def break_class_not_in_all(root):
    p = root / "class-split/all_class.txt"
    lines = p.read_text().splitlines()
    train = (root / "class-split/main_split/stage_1_train.txt").read_text().split()
    p.write_text("\n".join(l for l in lines if l.lower() != train[1].lower()) + "\n")


def break_class_not_in_mapping(root):
    p = root / "class-split/ucf_w2v_class_names.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:1] + lines[2:]) + "\n")


def break_class_not_in_w2v(root):
    p = root / "features/main_features/text/word_embeddings_ucf_normed.npy"
    d = np.load(p, allow_pickle=True).item()
    d.pop(sorted(d)[0])
    np.save(p, d, allow_pickle=True)


def break_empty_split(root):
    (root / "class-split/main_split/stage_1_val_unseen.txt").write_text("")
    (root / "class-split/main_split/stage_1_val_seen.txt").write_text("")


def break_wrong_width(root):
    pass  # the flags ask for 128-d audio below


BAD_INPUTS = {
    "missing root": (break_missing_root, "does not exist"),
    "missing split folder": (break_missing_split, "missing split folder"),
    "missing feature folder": (break_missing_features, "missing feature folder"),
    "class without .h5": (break_missing_h5, "has no"),
    "h5 without data": (break_no_data, "no dataset 'data'"),
    "h5 without video_urls": (break_no_urls, "no dataset 'video_urls'"),
    "audio and video names differ": (break_names_differ, "list different videos"),
    "NaN": (break_nan, "NaN or Inf"),
    "Inf": (break_inf, "NaN or Inf"),
    "class not in all_class.txt": (break_class_not_in_all, "all_class.txt"),
    "class not in mapping csv": (break_class_not_in_mapping, "missing from the mapping"),
    "class without word vector": (break_class_not_in_w2v, "has no vector"),
    "empty split": (break_empty_split, "stage_1_val_seen.txt lists no class"),
    "feature width": (break_wrong_width, "--input_size_audio is 128"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_clear_error(root, case):
    damage, message = BAD_INPUTS[case]
    damage(root)
    audio = 128 if case == "feature width" else 512
    with pytest.raises(UserError, match=message) as err:
        ds = AVGZSLDataset(root, "UCF", input_size_audio=audio, input_size_video=512)
        for s in ("train", "val", "test"):
            ds.split(s)
    assert str(root) in str(err.value) or case in ("class without word vector",) or "root" not in case


def test_stray_rows_of_unlisted_classes_are_dropped(root):
    """A feature folder may hold classes its .txt leaves out (UCF cls test unseen): dropped."""
    ds = AVGZSLDataset(root, "UCF")
    test = ds.split("test")
    p = root / "class-split/main_split/stage_2_test_unseen.txt"
    names = p.read_text().split()
    p.write_text("\n".join(names[1:]) + "\n")
    test2 = AVGZSLDataset(root, "UCF").split("test")
    dropped = ds.class_index(names[0], "x")
    assert len(test2) < len(test) and dropped not in test2.targets.tolist()
    assert dropped not in test2.class_ids.tolist()


def test_atomic_writes_keep_the_usual_permissions(tmp_path):
    import os
    from src.io_utils import atomic_write_text
    atomic_write_text("x", tmp_path / "f.txt")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
