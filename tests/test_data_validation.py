"""Input validation: each damaged benchmark stops with one line naming the file and the fix.

Every test damages a copy of the tiny synthetic benchmark (`tiny_root`) and checks the
message through the data API; the first cases are also run through main.py as a user runs
it (exit status 2, no traceback, the file named, no run folder created).
"""
import csv
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import main_args, run_cli, warnings_of
from src.data import AVGZSLDataset, read_class_list
from src.errors import UserError

FEATURES = "features/main_features"
SPLIT_DIR = "class-split/main_split"
MAPPING = "class-split/ucf_w2v_class_names.csv"
NPY = f"{FEATURES}/text/word_embeddings_ucf_normed.npy"


@pytest.fixture()
def root(tiny_root, tmp_path) -> Path:
    """A fresh copy of the tiny benchmark (main features only, no cache) to damage."""
    return Path(shutil.copytree(tiny_root, tmp_path / "UCF",
                                ignore=shutil.ignore_patterns("_features_processed", "cls_features")))


def listed(root, stage):
    return read_class_list(root / SPLIT_DIR / f"{stage}.txt")


def h5_of(root, stage, name, modality="audio") -> Path:
    """The .h5 of class `name` (matched case-insensitively, as for UCF) in one stage folder."""
    folder = root / FEATURES / modality / stage
    return next(p for p in folder.glob("*.h5") if p.stem.lower() == name.lower())


def read(path):
    with h5py.File(path, "r") as f:
        return f["data"][()], f["video_urls"][()]


def rewrite(path, data, names):
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("video_urls", data=np.asarray(names, dtype="S80"))


def error_of(root, *splits, **kwargs) -> str:
    """The message of the UserError raised while building the dataset and loading `splits`."""
    with pytest.raises(UserError) as err:
        ds = AVGZSLDataset(root, "UCF", input_size_audio=512, input_size_video=512, **kwargs)
        for s in splits:
            ds.split(s)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def check_cli(root, tmp_path, *names):
    """main.py on the damaged `root`: status 2, one error line naming `names`, no run folder."""
    dump = tmp_path / "dump"
    proc = run_cli("main.py", *main_args(root, dump, "damaged", epochs=1, n_batches=2), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "main.py: error: " in proc.stderr
    for name in names:
        assert name in proc.stderr, (name, proc.stderr)
    assert not (dump / "runs" / "damaged").exists()


def test_the_undamaged_copy_loads_without_warnings(root):
    with warnings_of("src.features_cache") as messages:
        ds = AVGZSLDataset(root, "UCF", input_size_audio=512, input_size_video=512)
        for s in ("train", "val", "train_val", "test"):
            assert len(ds.split(s)) > 0
    assert messages == []
    # train_val's seen lists are stage_1_train and stage_1_val_unseen: that is no overlap
    assert bool(ds.split("train_val").seen_mask.all())


# -- 1. an empty class list --------------------------------------------------------------------

@pytest.mark.parametrize("stage, split", [("stage_1_train", "train"), ("stage_1_val_seen", "val"),
                                          ("stage_1_val_unseen", "val"), ("stage_1_val_seen", "train_val"),
                                          ("stage_2_test_seen", "test"), ("stage_2_test_unseen", "test")])
def test_empty_class_list(root, stage, split):
    (root / SPLIT_DIR / f"{stage}.txt").write_text("\n")
    message = error_of(root, split)
    assert f"{stage}.txt lists no class" in message and repr(split) in message


def test_empty_class_list_cli(root, tmp_path):
    (root / SPLIT_DIR / "stage_1_val_unseen.txt").write_text("")
    check_cli(root, tmp_path, "stage_1_val_unseen.txt", "lists no class")


# -- 2. a class of the split without a sample ------------------------------------------------

def empty_class(root, stage, k=0) -> str:
    name = listed(root, stage)[k]
    for modality in ("audio", "video"):
        path = h5_of(root, stage, name, modality)
        rewrite(path, np.zeros((0, 512), np.float32), [])
    return h5_of(root, stage, name).name


@pytest.mark.parametrize("stage, split", [("stage_1_train", "train"), ("stage_1_val_unseen", "val"),
                                          ("stage_2_test_unseen", "test")])
def test_class_without_sample(root, stage, split):
    file_name = empty_class(root, stage, k=1)
    message = error_of(root, split)
    assert f"class {Path(file_name).stem!r} of split {split!r} has no sample" in message
    assert str(root / FEATURES / "audio" / stage / file_name) in message
    assert f"video/{stage}/{file_name}" in message and f"{stage}.txt" in message


def test_class_empty_in_one_folder_only_still_has_samples(root):
    """train_val reads a stage-1 class from stage_1_train and stage_1_val_seen: one is enough."""
    name = listed(root, "stage_1_train")[1]
    empty_class(root, "stage_1_train", k=1)
    ds = AVGZSLDataset(root, "UCF")
    tv = ds.split("train_val")
    assert ds.class_index(name, "x") in tv.targets.tolist()


def test_class_without_sample_cli(root, tmp_path):
    file_name = empty_class(root, "stage_1_train", k=2)
    check_cli(root, tmp_path, file_name, "no sample")


# -- 3. a class mapped twice in the mapping csv -----------------------------------------------

def add_mapping_row(root, original, manual):
    with open(root / MAPPING, "a", newline="") as f:
        csv.writer(f).writerow([original, manual])


def first_mapping(root):
    with open(root / MAPPING, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[0]["original"], rows[0]["manual"], rows[1]["manual"]


def test_class_mapped_twice(root):
    original, manual, other = first_mapping(root)
    add_mapping_row(root, original.lower(), other)        # UCF names match case-insensitively
    message = error_of(root)
    assert str(root / MAPPING) in message
    assert repr(original) in message and repr(manual) in message and repr(other) in message


def test_identical_mapping_row_repeated_is_accepted(root):
    original, manual, _ = first_mapping(root)
    add_mapping_row(root, original, manual)
    assert len(AVGZSLDataset(root, "UCF").split("train")) > 0


def test_class_mapped_twice_cli(root, tmp_path):
    original, _, other = first_mapping(root)
    add_mapping_row(root, original, other)
    check_cli(root, tmp_path, "ucf_w2v_class_names.csv", original, other)


# -- 4. a class both seen and unseen ----------------------------------------------------------

@pytest.mark.parametrize("seen, unseen, split", [("stage_1_val_seen", "stage_1_val_unseen", "val"),
                                                 ("stage_2_test_seen", "stage_2_test_unseen", "test")])
def test_class_both_seen_and_unseen(root, seen, unseen, split):
    name = listed(root, unseen)[0]
    with open(root / SPLIT_DIR / f"{seen}.txt", "a") as f:
        f.write(f"{name}\n")
    message = error_of(root, split)
    assert repr(name) in message
    assert str(root / SPLIT_DIR / f"{seen}.txt") in message and str(root / SPLIT_DIR / f"{unseen}.txt") in message


def test_class_both_seen_and_unseen_cli(root, tmp_path):
    name = listed(root, "stage_1_val_unseen")[0]
    with open(root / SPLIT_DIR / "stage_1_val_seen.txt", "a") as f:
        f.write(f"{name}\n")
    check_cli(root, tmp_path, "stage_1_val_seen.txt", "stage_1_val_unseen.txt", name)


# -- 5. a video twice within a class ----------------------------------------------------------

def duplicate_video(root, stage="stage_1_train", k=0):
    name = listed(root, stage)[k]
    for modality in ("audio", "video"):
        path = h5_of(root, stage, name, modality)
        data, urls = read(path)
        rewrite(path, np.concatenate([data, data[:1], data[:1]]), list(urls) + [urls[0], urls[0]])
    return h5_of(root, stage, name), urls[0].decode()


def test_repeated_video_name(root):
    path, video = duplicate_video(root)
    message = error_of(root, "train")
    assert str(path) in message and repr(video) in message and "3 times" in message
    assert "1 video name(s) more than once" in message


def test_repeated_video_name_cli(root, tmp_path):
    path, video = duplicate_video(root)
    check_cli(root, tmp_path, path.name, video)


# -- 6. integer and non-numeric features -------------------------------------------------------

def test_integer_features_are_read_with_a_warning(root):
    name = listed(root, "stage_1_train")[0]
    path = h5_of(root, "stage_1_train", name)
    data, urls = read(path)
    rewrite(path, np.round(data * 10).astype(np.int16), urls)
    for _ in range(2):                                      # built, then from the cache
        with warnings_of("src.features_cache") as messages:
            ds = AVGZSLDataset(root, "UCF")
            train, train_val = ds.split("train"), ds.split("train_val")   # both read stage_1_train
        about = [m for m in messages if str(path) in m]
        assert len(about) == 1, messages
        assert "int16" in about[0] and "read as float32" in about[0]
        assert train.audio.dtype == torch.float32
        c = ds.class_index(name, "x")
        assert torch.equal(train.audio[train.targets == c], torch.from_numpy(np.round(data * 10)))
        assert len(train_val) > len(train)


def write_strings(path, n):
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.full((n, 512), b"0.5", dtype="S8"))


def write_objects(path, n):
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=[["0.5"] * 512] * n, dtype=h5py.string_dtype())


def write_group(path, n):
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_group("data").create_dataset("features", data=np.zeros((n, 512), np.float32))


@pytest.mark.parametrize("write, what", [(write_strings, "string values"), (write_objects, "string values"),
                                         (write_group, "HDF5 group")])
def test_non_numeric_features(root, write, what):
    path = h5_of(root, "stage_1_train", listed(root, "stage_1_train")[0])
    _, urls = read(path)
    write(path, len(urls))
    with h5py.File(path, "a") as f:
        f.create_dataset("video_urls", data=urls)
    message = error_of(root, "train")
    assert str(path) in message and what in message


# -- 7. word vectors of the wrong width ---------------------------------------------------------

def test_word_vectors_not_300d(root):
    w2v = np.load(root / NPY, allow_pickle=True).item()
    np.save(root / NPY, {k: v[:100] for k, v in w2v.items()}, allow_pickle=True)
    message = error_of(root)
    assert str(root / NPY) in message and "100-d" in message and "300-d" in message


@pytest.mark.parametrize("pairing", ["correct", "original"])
def test_word_vectors_of_different_widths(root, pairing):
    w2v = np.load(root / NPY, allow_pickle=True).item()
    odd = sorted(w2v)[3]
    w2v[odd] = w2v[odd][:200]
    np.save(root / NPY, w2v, allow_pickle=True)
    message = error_of(root, pairing=pairing)
    assert str(root / NPY) in message and "different widths" in message
    assert "200-d: 1 vector(s)" in message and repr(odd) in message
    assert f"300-d: {len(w2v) - 1} vector(s)" in message


def test_word_vector_not_numeric(root):
    w2v = np.load(root / NPY, allow_pickle=True).item()
    odd = sorted(w2v)[0]
    w2v[odd] = "not a vector"
    np.save(root / NPY, w2v, allow_pickle=True)
    message = error_of(root)
    assert str(root / NPY) in message and repr(odd) in message


# -- 8. one .h5 of a folder with another width ---------------------------------------------------

def test_one_file_of_another_width(root):
    path = h5_of(root, "stage_1_val_seen", listed(root, "stage_1_val_seen")[2], "video")
    data, urls = read(path)
    rewrite(path, data[:, :100], urls)
    n_files = len(list(path.parent.glob("*.h5")))
    message = error_of(root, "val")
    assert str(path.parent) in message
    assert f"{path.name} is 100-d while the other {n_files - 1} files are 512-d" in message


def test_widths_without_a_majority(root):
    folder = root / FEATURES / "audio" / "stage_1_val_unseen"
    files = sorted(folder.glob("*.h5"))
    for p in files[: len(files) // 2]:
        data, urls = read(p)
        rewrite(p, data[:, :64], urls)
    message = error_of(root, "val")
    assert str(folder) in message and "64-d: " in message and "512-d: " in message
    assert files[0].name in message
