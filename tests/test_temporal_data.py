"""Temporal features (docs/tcaf.md 1): `.pkl` token sequences read into `Sequences`, their splits,
cache and validation, and the synthetic temporal benchmark (`python -m src.synthetic --temporal`)."""
import argparse
import logging
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import run_cli
from src.families import AVERAGED_FAMILIES, FAMILIES, TEMPORAL_FAMILIES, folder_family
from src.data import AVGZSLDataset
from src.errors import UserError
from src.sequences import Sequences
from src.synthetic import generate

TOKENS = (1, 4)          # tokens per video of the fixture (1: the shortest sequence is exercised)
SPLITS = ("train", "val", "train_val", "test")
MAIN_T = "features/main_features_non_averaged"


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A tiny UCF-like benchmark with the averaged and the temporal families (read-only)."""
    return generate(tmp_path_factory.mktemp("temporal"), "UCF", preset="tiny", seed=2, scale=0.5,
                    temporal=True, tokens=TOKENS)


@pytest.fixture()
def root(bench, tmp_path) -> Path:
    """A fresh copy (temporal SeLaVi features only, no cache) to damage."""
    return Path(shutil.copytree(bench, tmp_path / "UCF", ignore=shutil.ignore_patterns(
        "_features_processed", "cls_features*", "main_features")))


def dataset(root, family="main_temporal", **kwargs) -> AVGZSLDataset:
    f = FAMILIES[family]
    kwargs = {"input_size_audio": f.audio_width, "input_size_video": f.video_width, **kwargs}
    return AVGZSLDataset(root, "UCF", f.folder, f.split, **kwargs)


def load_pkl(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def save_pkl(path, blob):
    with open(path, "wb") as f:
        pickle.dump(blob, f)


def pkl_of(root, modality="audio", stage="stage_1_train", k=0, folder=MAIN_T) -> Path:
    return sorted((root / folder / modality / stage).glob("*.pkl"))[k]


# -- the families ----------------------------------------------------------------------------

def test_families_table():
    assert list(AVERAGED_FAMILIES) == ["main", "cls"]
    assert {f.folder for f in TEMPORAL_FAMILIES.values()} == {"main_features_non_averaged", "cls_features_non_averaged"}
    cls_t = folder_family(Path("x/features/cls_features_non_averaged")).family
    assert cls_t.temporal and (cls_t.audio_rate, cls_t.video_rate) == (0.96, 0.64) and cls_t.audio_dtype == "uint8"
    assert cls_t.split == "cls_split" and cls_t.widths == "128/4096" and not cls_t.same_length
    main_t = folder_family("main_features_non_averaged").family
    assert main_t.same_length and (main_t.audio_rate, main_t.video_rate) == (1.0, 1.0) and main_t.widths == "512/512"
    assert not any(f.temporal or f.vectors for f in AVERAGED_FAMILIES.values())
    assert not folder_family("cls_features").family.temporal     # a name of no family: tests/test_unnamed_folders.py
    from src.args import default_zero_shot_split
    assert default_zero_shot_split(argparse.Namespace(feature_extraction_method=Path(cls_t.folder))) == "cls_split"
    # the averaged methods' grid and scripts do not grow temporal cells
    from src.recipes import METHODS
    from src.reproduce import get_parser
    assert get_parser().parse_args([]).families == ["main", "cls"]
    for m in METHODS.values():         # a method runs on averaged or on temporal features, not both
        assert len({FAMILIES[f].temporal for f in m.families}) == 1, m


@pytest.mark.parametrize("key", list(FAMILIES))
def test_each_storage_layout_reads_what_it_writes(tmp_path, key):
    """One class per storage layout (src/storage.py): a class file written through it reads back as
    the data layer takes it, [N, D] rows or `Sequences`, under its own cache version."""
    from src.cache_file import joined
    from src.storage import LAYOUTS, layout_of
    family = FAMILIES[key]
    layout = layout_of(family)
    rng = np.random.default_rng(0)
    names = ["v_a", "v_b", "v_c"]
    lengths = [1, 3, 2] if family.temporal else [1, 1, 1]
    written = {}
    for m, width in (("audio", 6), ("video", 5)):
        tokens = [rng.standard_normal((t, width)).astype(np.float32) for t in lengths]
        written[m] = (np.concatenate(tokens) if layout.ext == ".h5" else      # rows; sequences; 1-d vectors
                      tokens if family.temporal else [x[0] for x in tokens])
        layout.write(tmp_path / m / "stage_1_train" / f"Apple{layout.ext}", written[m], names)
    dirs = {m: tmp_path / m / "stage_1_train" for m in ("audio", "video")}
    data = layout.unpack(joined(layout.read_folder(dirs, family)), dirs)     # its features class by class, joined
    assert data["classes"] == ["Apple"] and data["urls"] == names and data["row_class"].tolist() == [0, 0, 0]
    for m in ("audio", "video"):
        if family.temporal:
            assert isinstance(data[m], Sequences) and data[m].lengths.tolist() == lengths
            assert torch.equal(data[m].values, torch.from_numpy(np.concatenate(written[m])))
        else:
            assert torch.equal(data[m], torch.from_numpy(np.stack(written[m]) if family.vectors else written[m]))
    assert len({str(x.cache_version) for x in LAYOUTS.values()}) == len(LAYOUTS)     # no cache read as another's


# -- reading ---------------------------------------------------------------------------------

@pytest.mark.parametrize("family", list(TEMPORAL_FAMILIES))
def test_splits_are_sequences_of_the_averaged_splits(bench, family, caplog):
    f = FAMILIES[family]
    averaged = next(k for k, a in AVERAGED_FAMILIES.items() if a.folder + "_non_averaged" == f.folder)
    with caplog.at_level(logging.WARNING):
        ds = dataset(bench, family, cache=False)
        splits = {s: ds.split(s) for s in SPLITS}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]     # uint8 VGGish audio: expected
    avg = dataset(bench, averaged, cache=False)
    for s, sp in splits.items():
        ref = avg.split(s)
        assert isinstance(sp.audio, Sequences) and isinstance(sp.video, Sequences)
        assert len(sp) == len(ref) == len(sp.audio) == len(sp.video) > 0
        for key in ("targets", "labels", "class_ids", "seen_mask", "text", "word_vectors"):
            assert torch.equal(getattr(sp, key), getattr(ref, key)), key
        assert sp.urls == ref.urls and sp.class_names == ref.class_names and sp.name == s
        assert (sp.audio.width, sp.video.width) == (f.audio_width, f.video_width)
        assert sp.audio.values.dtype == sp.video.values.dtype == torch.float32
        a_len, v_len = sp.audio.lengths, sp.video.lengths
        assert int(a_len.min()) >= TOKENS[0] and int(a_len.max()) <= TOKENS[1]
        if f.same_length:
            assert torch.equal(a_len, v_len)
        else:
            assert torch.equal(v_len, (a_len * 1.5).round().long().clamp(min=1)), (a_len, v_len)
        if f.audio_dtype == "uint8":
            a = sp.audio.values
            assert torch.equal(a, a.round()) and float(a.min()) >= 0 and float(a.max()) <= 255 and float(a.max()) > 1
        # compact: the values hold exactly the split's tokens
        assert len(sp.audio.values) == int(a_len.sum()) and len(sp.video.values) == int(v_len.sum())
    moved = splits["train"].to("meta")
    assert moved.audio.values.device.type == "meta" and moved.video.lengths.device.type == "meta"
    assert moved.urls == splits["train"].urls


@pytest.mark.parametrize("family", list(TEMPORAL_FAMILIES))
def test_gather_equals_the_padded_pickles(bench, family):
    f = FAMILIES[family]
    sp = dataset(bench, family, cache=False).split("val")       # two folders: stage_1_val_seen and _unseen
    by_video = {}
    for stage in ("stage_1_val_seen", "stage_1_val_unseen"):
        for a_path in sorted((bench / "features" / f.folder / "audio" / stage).glob("*.pkl")):
            a, v = load_pkl(a_path), load_pkl(a_path.parents[2] / "video" / stage / a_path.name)
            assert a["video_names"] == v["video_names"] and all(isinstance(n, bytes) for n in a["video_names"])
            assert a["fps"] == [25] * len(a["features"])
            assert all(x.dtype == np.dtype(f.audio_dtype) for x in a["features"])
            assert all(x.dtype == np.float32 for x in v["features"])
            for name, xa, xv in zip(a["video_names"], a["features"], v["features"]):
                by_video[name.decode()] = (a_path.stem, xa, xv)
    assert sorted(by_video) == sorted(sp.urls)
    idx = torch.randperm(len(sp), generator=torch.Generator().manual_seed(0))[:17]
    for m, k in (("audio", 1), ("video", 2)):
        x, mask = getattr(sp, m).gather(idx)
        seqs = [by_video[sp.urls[i]][k] for i in idx.tolist()]
        width = max(len(s) for s in seqs)
        want = torch.zeros(len(seqs), width, seqs[0].shape[1])
        want_mask = torch.zeros(len(seqs), width)
        for b, s in enumerate(seqs):
            want[b, :len(s)] = torch.from_numpy(s.astype(np.float32))
            want_mask[b, :len(s)] = 1
        assert torch.equal(x, want) and torch.equal(mask, want_mask)
    for i in idx.tolist():       # the sample's class is its file's class
        stem = by_video[sp.urls[i]][0]
        assert sp.class_names[int(sp.targets[i])].lower() == stem.lower()


# -- cache -----------------------------------------------------------------------------------

def cache_file(root, folder="stage_1_train"):
    return root / "_features_processed" / "main_features_non_averaged" / f"{folder}.pt"


def test_cache_is_written_reused_and_rebuilt(root):
    a = dataset(root).split("train")
    path = cache_file(root)
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))
    mtime = path.stat().st_mtime_ns
    b = dataset(root).split("train")
    assert path.stat().st_mtime_ns == mtime
    for m in ("audio", "video"):
        assert torch.equal(getattr(a, m).values, getattr(b, m).values)
        assert torch.equal(getattr(a, m).lengths, getattr(b, m).lengths)
    # a source changes: rebuilt, the new values read
    p = pkl_of(root)
    blob = load_pkl(p)
    blob["features"][0] = blob["features"][0].copy()
    blob["features"][0][0, 0] = 1234.5
    save_pkl(p, blob)
    c = dataset(root).split("train")
    assert bool((c.audio.values == 1234.5).any()) and not bool((a.audio.values == 1234.5).any())
    assert path.stat().st_mtime_ns != mtime
    # a damaged cache is rebuilt (c's tensors map the file, cut in place below: copied first; the project
    # itself only ever replaces a cache by a rename, which leaves the mapped file to those who map it)
    c_values, c_targets = c.audio.values.clone(), c.targets.clone()
    del a, b, c
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    d = dataset(root).split("train")
    assert torch.equal(c_values, d.audio.values) and torch.equal(c_targets, d.targets)
    assert path.read_bytes() == data or len(path.read_bytes()) > len(data) // 2


# -- bad input -------------------------------------------------------------------------------

def edit(path, change):
    blob = load_pkl(path)
    change(blob)
    save_pkl(path, blob)
    return path


def set_video(k, value):
    def change(blob):
        blob["features"][k] = value(blob["features"][k])
    return change


def bad_cases(root):
    """{case: (damage, words the message must hold)}; damage returns the file named."""
    audio, video = pkl_of(root), pkl_of(root, "video")
    name0 = load_pkl(audio)["video_names"][0].decode()
    name1 = load_pkl(audio)["video_names"][1].decode()

    def rename_video(blob):
        blob["video_names"][0] = b"another_video"

    def write(data):
        audio.write_bytes(data)
        return audio

    def not_a_dict():
        save_pkl(audio, [1, 2])
        return audio

    return {
        "garbage": (lambda: write(b"not a pickle at all"), ["not a readable pickle"]),
        "truncated": (lambda: write(audio.read_bytes()[:100]), ["not a readable pickle"]),
        "not a dict": (not_a_dict, ["holds a list", "'features'"]),
        "no video_names": (lambda: edit(audio, lambda b: b.pop("video_names")), ["no 'video_names'"]),
        "no features": (lambda: edit(audio, lambda b: b.pop("features")), ["no 'features'"]),
        "counts differ": (lambda: edit(audio, lambda b: b["video_names"].pop()), ["entries in 'features' but"]),
        "3-d": (lambda: edit(audio, set_video(0, lambda x: x[None])), [repr(name0), "2-d"]),
        "1-d": (lambda: edit(audio, set_video(0, lambda x: x[0])), [repr(name0), "2-d"]),
        "width within a file": (lambda: edit(audio, set_video(1, lambda x: x[:, :100])), [repr(name1), "100-d"]),
        "NaN": (lambda: edit(video, set_video(1, lambda x: np.where(np.ones_like(x, bool), np.nan, x))),
                [repr(name1), "NaN or Inf"]),
        "Inf": (lambda: edit(audio, set_video(0, lambda x: np.full_like(x, np.inf))), [repr(name0), "NaN or Inf"]),
        "empty sequence": (lambda: edit(audio, set_video(0, lambda x: x[:0])), [repr(name0), "empty sequence"]),
        "non-numeric": (lambda: edit(video, set_video(0, lambda x: np.full(x.shape, "a"))),
                        [repr(name0), "string values, not numbers"]),
        "object array": (lambda: edit(video, set_video(0, lambda x: np.array([None, 1], dtype=object))),
                         [repr(name0), "Python object values, not numbers"]),
        "repeated name": (lambda: edit(audio, lambda b: b["video_names"].__setitem__(1, b["video_names"][0])),
                          [repr(name0), "more than once"]),
        "different videos": (lambda: edit(video, rename_video),
                             ["list different videos", repr(name0), "'another_video'"]),
    }


CASES = [
    "garbage", "truncated", "not a dict", "no video_names", "no features", "counts differ", "3-d", "1-d",
    "width within a file", "NaN", "Inf", "empty sequence", "non-numeric", "object array", "repeated name",
    "different videos"]     # SeLaVi token counts that differ are accepted: tests/test_successor_data.py


@pytest.mark.parametrize("case", CASES)
def test_bad_pickle_is_a_one_line_error(root, case):
    damage, words = bad_cases(root)[case]
    named = damage()
    with pytest.raises(UserError) as err:
        dataset(root).split("train")
    message = str(err.value)
    assert "\n" not in message, message
    assert str(named) in message, message
    if case == "different videos":
        assert str(pkl_of(root, "video")) in message and str(pkl_of(root)) in message
    for w in words:
        assert w in message, (w, message)
    assert not cache_file(root).exists()                 # raised before anything is written


def test_a_file_of_another_width(root):
    path = pkl_of(root, k=2)
    edit(path, lambda b: b.__setitem__("features", [x[:, :64] for x in b["features"]]))
    with pytest.raises(UserError) as err:
        dataset(root, input_size_audio=None).split("train")
    message = str(err.value)
    assert str(path.parent) in message and f"{path.name} is 64-d" in message and "512-d" in message
    assert ".pkl files" in message and "\n" not in message


def test_width_against_the_flags(root):
    with pytest.raises(UserError) as err:
        dataset(root, input_size_audio=128).split("train")
    message = str(err.value)
    assert "--input_size_audio is 128" in message and "512-d" in message
    assert str(root / MAIN_T / "audio" / "stage_1_train") in message and ".pkl" in message
    assert not cache_file(root).exists()


def test_class_lists_are_checked_as_for_averaged_features(root):
    stage = "stage_1_val_unseen"
    path = pkl_of(root, stage=stage)
    for m in ("audio", "video"):
        edit(pkl_of(root, m, stage), lambda b: b.update(features=[], video_names=[], fps=[]))
    with pytest.raises(UserError) as err:
        dataset(root).split("val")
    message = str(err.value)
    assert f"class {path.stem!r} of split 'val' has no sample" in message and str(path) in message
    assert "hold 0 videos" in message and ".pkl files" in message
    for m in ("audio", "video"):
        pkl_of(root, m, stage).unlink()
    with pytest.raises(UserError, match=r"has no .*\.pkl") as err:
        dataset(root).split("val")
    assert str(root / MAIN_T / "audio" / stage / path.name).lower() in str(err.value).lower()


def test_integer_video_tokens_are_read_with_a_warning(root, caplog):
    path = edit(pkl_of(root, "video"), lambda b: b.update(features=[np.round(x * 10).astype(np.int16)
                                                                      for x in b["features"]]))
    with caplog.at_level(logging.WARNING):
        train = dataset(root).split("train")
    about = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(about) == 1 and "int16" in about[0] and "read as float32" in about[0]
    assert train.video.values.dtype == torch.float32


def test_cls_lengths_may_differ(bench):
    """C3D and VGGish windows differ by design: no length check between the modalities."""
    sp = dataset(bench, "cls_temporal", cache=False).split("train")
    assert not torch.equal(sp.audio.lengths, sp.video.lengths)


# -- the synthetic benchmark -----------------------------------------------------------------

def test_temporal_draws_leave_the_averaged_benchmark_unchanged(tmp_path):
    plain = generate(tmp_path / "a", "UCF", preset="tiny", families=("main",), seed=4, scale=0.3)
    both = generate(tmp_path / "b", "UCF", preset="tiny", families=("main",), seed=4, scale=0.3,
                    temporal=True, tokens=(1, 2))
    files = sorted(p.relative_to(plain) for p in plain.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(both) for p in both.rglob("*") if p.is_file()
                                     and "non_averaged" not in str(p))
    for rel in files:
        if rel.suffix == ".h5":
            with h5py.File(plain / rel) as f, h5py.File(both / rel) as g:
                for key in ("data", "video_urls"):
                    assert np.array_equal(f[key][()], g[key][()]), rel
        else:
            assert (plain / rel).read_bytes() == (both / rel).read_bytes(), rel


def test_synthetic_temporal_cli(tmp_path):
    out = run_cli("-m", "src.synthetic", "--dataset", "ActivityNet", "--preset", "tiny", "--families", "cls",
                  "--temporal", "--tokens", "2", "5", "--scale", "0.3", "--out_dir", tmp_path).stdout
    root = tmp_path / "ActivityNet"
    assert str(root) in out
    feats = root / "features"
    assert sorted(p.name for p in feats.iterdir()) == ["cls_features", "cls_features_non_averaged"]
    t = feats / "cls_features_non_averaged"
    assert (t / "text" / "word_embeddings_activity_normed.npy").is_file()
    assert not (t / "audio" / "stage_2_train").exists()          # never read by TCaF
    for stage in ("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen", "stage_2_test_seen",
                  "stage_2_test_unseen"):
        a_files = sorted((t / "audio" / stage).glob("*.pkl"))
        assert a_files and [p.name for p in a_files] == sorted(p.name for p in (t / "video" / stage).glob("*.pkl"))
        a, v = load_pkl(a_files[0]), load_pkl(t / "video" / stage / a_files[0].name)
        assert set(a) == {"features", "video_names", "fps"} and a["video_names"] == v["video_names"]
        for xa, xv in zip(a["features"], v["features"]):
            assert xa.dtype == np.uint8 and xa.shape[1] == 128 and 2 <= len(xa) <= 5
            assert xv.dtype == np.float32 and xv.shape[1] == 4096 and len(xv) == max(1, round(len(xa) * 0.96 / 0.64))
    ds = AVGZSLDataset(root, "ActivityNet", "cls_features_non_averaged", "cls_split", input_size_audio=128,
                       input_size_video=4096)
    assert isinstance(ds.split("test").video, Sequences)
    bad = run_cli("-m", "src.synthetic", "--preset", "tiny", "--temporal", "--tokens", "0", "3",
                  "--out_dir", tmp_path / "bad", check=False)
    assert bad.returncode == 2 and "tokens" in bad.stderr and "Traceback" not in bad.stderr
