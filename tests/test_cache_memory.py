"""The feature cache at the real datasets' scale (src/cache_file.py): written class file by class file
(a folder is never held twice), read memory-mapped, and the same tensors as before, bit for bit."""
import logging
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from src.cache_file import Pieces, joined, load_mapped, save_pieces
from src.data import AVGZSLDataset
from src.families import FAMILIES
from src.features_cache import load_folder
from src.sequences import Sequences
from src.storage import layout_of
from src.synthetic import generate

SPLITS = ("train", "val", "train_val", "test")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A tiny UCF-like benchmark with an averaged and a temporal family (read-only: caches go to copies)."""
    return generate(tmp_path_factory.mktemp("mem"), "UCF", preset="tiny", seed=5, scale=0.5,
                    families=("cls",), temporal=True, tokens=(1, 5))


def dataset(root, key, **kwargs) -> AVGZSLDataset:
    f = FAMILIES[key]
    return AVGZSLDataset(root, "UCF", f.folder, f.split, input_size_audio=f.audio_width,
                         input_size_video=f.video_width, **kwargs)


def tensors(x):
    """The tensors of a (nested) folder dict or split, in order, Sequences as their three tensors."""
    if isinstance(x, Sequences):
        return [x.values, x.offsets, x.lengths]
    if torch.is_tensor(x):
        return [x]
    if isinstance(x, dict):
        return [t for v in x.values() for t in tensors(v)]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in tensors(v)]
    return []


def same(a, b) -> bool:
    ta, tb = tensors(a), tensors(b)
    return len(ta) == len(tb) and all(x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
                                      for x, y in zip(ta, tb))


def test_pieces_are_saved_as_their_joined_tensor(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((n, 7)).astype(np.float32) for n in (3, 0, 5, 1)]
    obj = {"version": "v", "names": ["a", "b"], "data": {
        "values": Pieces(blocks), "none": Pieces([], 7), "lengths": torch.tensor([3, 5, 1]),
        "codes": torch.arange(10, dtype=torch.uint8), "empty": torch.zeros(0, dtype=torch.long),
        "view": torch.arange(12.0).view(3, 4)[1:]}}
    save_pieces(obj, tmp_path / "pieces.pt")
    torch.save(joined(obj), tmp_path / "joined.pt")
    assert not list(tmp_path.glob(".*.tmp"))
    want = torch.load(tmp_path / "joined.pt", weights_only=True)
    for load in (lambda p: torch.load(p, weights_only=True), load_mapped):
        got = load(tmp_path / "pieces.pt")
        assert got["version"] == "v" and got["names"] == ["a", "b"] and same(got, want)
    assert torch.equal(want["data"]["values"], torch.from_numpy(np.concatenate(blocks)))
    assert want["data"]["none"].shape == (0, 7)


@pytest.mark.parametrize("key", ["cls", "cls_temporal"])
def test_cache_written_class_by_class_holds_the_old_caches_tensors(bench, tmp_path, key):
    """The cache (written piece by piece) holds what torch.save of the joined folder held, loaded eagerly or
    memory-mapped; and the folder read through it is the folder read without a cache."""
    family = FAMILIES[key]
    layout = layout_of(family)
    feature_dir = bench / "features" / family.folder
    dirs = {m: feature_dir / m / "stage_1_train" for m in ("audio", "video")}
    sizes = {"audio": family.audio_width, "video": family.video_width}
    mapped = load_folder(tmp_path, feature_dir, "stage_1_train", sizes, family)
    eager = load_folder(tmp_path, feature_dir, "stage_1_train", sizes, family, use_cache=False)
    assert mapped["mapped"] and not eager["mapped"] and same(mapped, eager)
    assert mapped["urls"] == eager["urls"] and mapped["classes"] == eager["classes"]
    cache = tmp_path / "_features_processed" / family.folder / "stage_1_train.pt"
    old = joined(layout.read_folder(dirs, family))          # what the cache held when saved with torch.save
    blob = torch.load(cache, weights_only=True)
    assert blob["version"] == layout.cache_version and same(blob["data"], old)
    assert same(load_mapped(cache)["data"], old)


@pytest.mark.parametrize("key", ["cls", "cls_temporal"])
def test_splits_through_the_mapped_cache_equal_the_eager_ones(bench, tmp_path, key):
    root = Path(__import__("shutil").copytree(bench, tmp_path / "UCF"))
    eager = dataset(root, key, cache=False)
    for fresh in (True, False):     # the cache written by this dataset, then read by another
        mapped = dataset(root, key)
        for name in SPLITS:
            a, b = mapped.split(name), eager.split(name)
            assert same(a.__dict__, b.__dict__) and a.urls == b.urls, (name, fresh)
        assert not mapped._folders          # memory-mapped folders are not kept: their pages go with the splits


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_stage_1_train_tokens_are_the_mapped_cache(bench, tmp_path):
    """The train split of a temporal family is its folder's cache file, memory-mapped: not a copy in memory."""
    root = Path(__import__("shutil").copytree(bench, tmp_path / "UCF"))
    train = dataset(root, "cls_temporal").split("train")
    cache = root / "_features_processed" / FAMILIES["cls_temporal"].folder / "stage_1_train.pt"
    ptr = train.video.values.data_ptr()
    maps = [line.split() for line in Path("/proc/self/maps").read_text().splitlines()]
    owner = [m[5] for m in maps if len(m) > 5 and int(m[0].split("-")[0], 16) <= ptr < int(m[0].split("-")[1], 16)]
    assert owner == [str(cache.resolve())]


def test_a_folder_loaded_again_warns_once_per_dataset(bench, tmp_path, caplog):
    root = Path(__import__("shutil").copytree(bench, tmp_path / "UCF"))
    key = FAMILIES["cls_temporal"]
    path = sorted((root / "features" / key.folder / "video" / "stage_1_train").glob("*.pkl"))[0]
    blob = pickle.loads(path.read_bytes())
    blob["features"] = [np.round(x * 10).astype(np.int16) for x in blob["features"]]
    path.write_bytes(pickle.dumps(blob))
    ds = dataset(root, "cls_temporal")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            ds.split("train")
            ds.split("train_val")
    assert len([r for r in caplog.records if str(path) in r.getMessage()]) == 1
