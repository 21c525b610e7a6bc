"""Damaged successor data (issue 19): TCaF's temporal folder (`cls_features_non_averaged`, one .pkl
of [T, D] token sequences per class) and ClipClap's CLIP/CLAP folder (the same name under
`{data}/ClipClap/{Dataset}`, one 1-d vector per video, class vectors [CLIP || WavCaps]) stop with
one line naming the file and the fix, or load with one warning naming the file; a killed cache
write leaves no temp file behind.

Every test damages a copy of the session's tiny benchmark (`tiny_root`: TCaF's folder in UCF/,
ClipClap's in ClipClap/UCF/); a few run through main.py as a user runs it."""
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, run_cli, warnings_of
from src import io_utils
from src.families import FAMILIES, folder_family
from src.data import AVGZSLDataset, read_class_list
from src.errors import UserError
from src.recipes import cell_commands

FOLDER = "features/cls_features_non_averaged"
SELAVI = "features/main_features_non_averaged"
SPLIT = "class-split/cls_split"
FAMILY_KEYS = ("cls_temporal", "clip")
CACHE = "_features_processed/cls_features_non_averaged"
SMALL = ["--epochs", "1", "--n_batches", "2", "--bs", "16", "--device", "cpu"]


def copy_of(tiny_root: Path, tmp_path: Path, family: str) -> Path:
    """A fresh copy (no cache) of one family's dataset folder: TCaF's at {tmp}/UCF (its temporal
    C3D/VGGish and SeLaVi folders only), ClipClap's at {tmp}/ClipClap/UCF."""
    if family == "clip":
        return Path(shutil.copytree(tiny_root.parent / "ClipClap" / "UCF", tmp_path / "ClipClap" / "UCF",
                                    ignore=shutil.ignore_patterns("_features_processed")))
    return Path(shutil.copytree(tiny_root, tmp_path / "UCF", ignore=shutil.ignore_patterns(
        "_features_processed", "main_features", "cls_features")))


@pytest.fixture(params=FAMILY_KEYS)
def damaged(request, tiny_root, tmp_path):
    """(root, family key): a fresh copy of either family to damage."""
    return copy_of(tiny_root, tmp_path, request.param), request.param


@pytest.fixture()
def temporal(tiny_root, tmp_path) -> Path:
    return copy_of(tiny_root, tmp_path, "cls_temporal")


@pytest.fixture()
def clip(tiny_root, tmp_path) -> Path:
    return copy_of(tiny_root, tmp_path, "clip")


def dataset(root, family="cls_temporal", folder=FOLDER, **kwargs) -> AVGZSLDataset:
    f = FAMILIES[family]
    return AVGZSLDataset(root, "UCF", Path(folder).name, f.split, input_size_audio=f.audio_width,
                         input_size_video=f.video_width, **kwargs)


def error_of(root, family, *splits) -> str:
    """The one-line message of the UserError raised while building the dataset and loading `splits`."""
    with pytest.raises(UserError) as err:
        ds = dataset(root, family)
        for s in splits:
            ds.split(s)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def pkl_of(root, modality="audio", stage="stage_1_train", k=0, folder=FOLDER) -> Path:
    return sorted((root / folder / modality / stage).glob("*.pkl"))[k]


def load_pkl(path: Path) -> dict:
    return pickle.loads(path.read_bytes())


def save_pkl(path: Path, blob: dict) -> None:
    path.write_bytes(pickle.dumps(blob))


def edit(path: Path, fn) -> dict:
    blob = load_pkl(path)
    fn(blob)
    save_pkl(path, blob)
    return blob


def name_of(blob, k) -> str:
    return blob["video_names"][k].decode()


def test_the_undamaged_copies_load_without_warnings(damaged):
    root, family = damaged
    with warnings_of("src.features_cache") as cache_msgs, warnings_of("src.data") as data_msgs, \
            warnings_of() as notices:
        ds = dataset(root, family)
        for s in ("train", "val", "train_val", "test"):
            assert len(ds.split(s)) > 0
    assert cache_msgs == data_msgs == notices == []
    assert ds.family is FAMILIES[family]


# -- a damaged class file ------------------------------------------------------------------------

def test_truncated_pickle(damaged):
    root, family = damaged
    path = pkl_of(root, k=2)
    path.write_bytes(path.read_bytes()[:100])
    message = error_of(root, family, "train")
    assert message.startswith(f"cannot read {path}: not a readable pickle (")
    layout = "one 1-d [D] vector per video" if family == "clip" else "one [T, D] array per video"
    assert layout in message and message.endswith("re-create the file")


@pytest.mark.parametrize("key", ["features", "video_names"])
def test_missing_key(damaged, key):
    root, family = damaged
    path = pkl_of(root, "video", "stage_1_val_unseen", k=1)
    edit(path, lambda b: b.pop(key))
    message = error_of(root, family, "val")
    assert message.startswith(f"{path} has no '{key}' (its keys: ")
    assert message.endswith("re-create the file")


def test_video_without_tokens(damaged):
    root, family = damaged
    path = pkl_of(root, "audio", "stage_2_test_seen", k=1)
    blob = edit(path, lambda b: b["features"].__setitem__(3, b["features"][3][:0]))
    message = error_of(root, family, "test")
    assert message.startswith(f"{path}: ") and repr(name_of(blob, 3)) in message
    assert ("an empty vector (0 values)" if family == "clip" else "an empty sequence (0 time steps)") in message
    assert "drop " in message and "re-extract" in message


def test_nan_tokens(damaged):
    root, family = damaged

    def poison(b):
        x = np.array(b["features"][2], dtype=np.float32)
        x.reshape(-1)[-1] = np.nan
        b["features"][2] = x
    path = pkl_of(root, "video", k=3)
    blob = edit(path, poison)
    message = error_of(root, family, "train")
    assert message.startswith(f"{path}: video {name_of(blob, 2)!r} holds NaN or Inf values")
    assert "re-extract or drop it" in message


def test_one_file_of_another_width(damaged):
    root, family = damaged
    path = pkl_of(root, "video", "stage_1_val_seen", k=2)
    edit(path, lambda b: b.__setitem__("features", [x[..., :100] for x in b["features"]]))
    n_files = len(list(path.parent.glob("*.pkl")))
    width = FAMILIES[family].video_width
    message = error_of(root, family, "val")
    assert message.startswith(f"{path.parent}: {path.name} is 100-d while the other {n_files - 1} files are {width}-d")
    assert "re-extract or remove the odd file" in message


def test_audio_and_video_list_other_videos(damaged):
    root, family = damaged
    audio = pkl_of(root, "audio", k=1)
    video = audio.parent.parent.parent / "video" / "stage_1_train" / audio.name
    blob = edit(video, lambda b: b["video_names"].__setitem__(4, b"v_another_video"))
    message = error_of(root, family, "train")
    assert message.startswith(f"{audio} and {video} list different videos")
    assert f"first difference at position 4: {name_of(load_pkl(audio), 4)!r} and 'v_another_video'" in message
    assert "the same videos in the same order" in message and len(blob["features"]) > 4


def test_class_file_without_its_video_file(damaged):
    root, family = damaged
    video = pkl_of(root, "video", "stage_1_val_unseen", k=0)
    video.unlink()
    message = error_of(root, family, "val")
    assert f"{root / FOLDER / 'audio' / 'stage_1_val_unseen'} has ['{video.stem}'] without video" in message
    assert "add the missing files or remove the extra ones" in message


# -- class files and the class lists ---------------------------------------------------------------

def test_class_file_of_no_known_class_is_named_once(damaged):
    root, family = damaged
    reference = len(dataset(root, family, cache=False).split("train"))
    for m in ("audio", "video"):
        shutil.copy(pkl_of(root, m, k=0), root / FOLDER / m / "stage_1_train" / "NotAClass.pkl")
    with warnings_of("src.data") as messages:
        ds = dataset(root, family)
        train, train_val = ds.split("train"), ds.split("train_val")         # both read stage_1_train
    assert messages == [f"{root / FOLDER / 'audio' / 'stage_1_train'}: 1 file is of no class of "
                        f"{root / 'class-split' / 'all_class.txt'} (NotAClass.pkl): their videos are not read; "
                        f"rename such a file to its class's name in all_class.txt, or remove it"]
    assert len(train) == reference and len(train_val) > len(train)


def test_class_files_left_out_of_the_lists_are_dropped_silently(damaged):
    """docs/protocol.md 1: the real cls_split test-unseen folders hold classes their .txt leaves out."""
    root, family = damaged
    folder = root / FOLDER / "audio" / "stage_2_test_unseen"
    listed = {n.lower() for n in read_class_list(root / SPLIT / "stage_2_test_unseen.txt")}
    extra = [p.stem for p in folder.glob("*.pkl") if p.stem.lower() not in listed]
    assert extra                                                  # the tiny benchmark has such files
    with warnings_of("src.data") as messages:
        ds = dataset(root, family)
        test = ds.split("test")
    assert messages == []
    assert not {ds.class_names[int(c)] for c in test.targets.unique()} & set(extra)


def test_empty_split_folder(damaged):
    root, family = damaged
    for m in ("audio", "video"):
        for p in (root / FOLDER / m / "stage_1_val_seen").glob("*.pkl"):
            p.unlink()
    n = len(read_class_list(root / SPLIT / "stage_1_val_seen.txt"))
    message = error_of(root, family, "val")
    assert message.startswith(f"{root / FOLDER / 'audio' / 'stage_1_val_seen'} and video/stage_1_val_seen hold no "
                              f".pkl file, but {root / SPLIT / 'stage_1_val_seen.txt'} lists {n} classes (first: ")
    assert message.endswith("put one .pkl file per listed class ({Class}.pkl) in both folders")


# -- text/ ---------------------------------------------------------------------------------------------

def test_missing_word2vec_file_of_tcaf(temporal):
    path = temporal / FOLDER / "text" / "word_embeddings_ucf_normed.npy"
    path.unlink()
    message = error_of(temporal, "cls_temporal")
    assert message.startswith(f"missing word vectors {path} (a pickled dict {{name: float32[300]}}): copy ")


def test_missing_clip_class_embeddings(clip):
    path = clip / FOLDER / "text" / "word_embeddings_ucf_normed.npy"
    path.unlink()
    message = error_of(clip, "clip")
    assert message.startswith(f"missing class embeddings {path}: {clip / FOLDER} holds ClipClap's WavCaps/CLIP data "
                              f"(text/wavcaps_word_embeddings_ucf_normed.npy is present), whose class vectors are "
                              f"[CLIP 512 || WavCaps 1024]")
    assert "get_clip_embeddings.py --dataset ucf --models clip --output_dir" in message


def test_clipclap_data_without_wavcaps_class_embeddings(clip):
    """Not taken for TCaF's folder of the same name (whose word2vec would be 'not 300-d')."""
    text = clip / FOLDER / "text"
    (text / "wavcaps_word_embeddings_ucf_normed.npy").unlink()
    assert folder_family(FOLDER, clip, "UCF") == (
        FAMILIES["clip"], "text/word_embeddings_ucf_normed.npy holds 512-d CLIP class embeddings, not 300-d word2vec")
    message = error_of(clip, "clip")
    assert message.startswith(f"missing class embeddings {text / 'wavcaps_word_embeddings_ucf_normed.npy'}: "
                              f"{clip / FOLDER} holds ClipClap's WavCaps/CLIP data")
    assert "[CLIP 512 || WavCaps 1024], text/word_embeddings_ucf_normed.npy and " \
           "text/wavcaps_word_embeddings_ucf_normed.npy" in message
    assert "--models wavcaps" in message and "are not 300-d" not in message


def test_clipclap_vectors_with_word2vec_text_are_clipclap_data(clip, tiny_root):
    """Its text/ gives nothing away (TCaF's 300-d word2vec under the shared name, no WavCaps file): its
    class files of one 1-d vector per video do."""
    text = clip / FOLDER / "text"
    (text / "wavcaps_word_embeddings_ucf_normed.npy").unlink()
    shutil.copy(tiny_root / FOLDER / "text" / "word_embeddings_ucf_normed.npy", text)
    family, evidence = folder_family(FOLDER, clip, "UCF")
    assert family is FAMILIES["clip"]
    assert evidence.startswith("audio/") and evidence.endswith(".pkl holds one 1-d vector per video, not [T, D] "
                                                               "token sequences")
    message = error_of(clip, "clip")
    assert message.startswith(f"missing class embeddings {text / 'wavcaps_word_embeddings_ucf_normed.npy'}: ")
    assert f"({evidence})" in message and "[CLIP 512 || WavCaps 1024]" in message


def test_tcaf_folder_stays_tcaf(temporal):
    assert folder_family(FOLDER, temporal, "UCF") == (FAMILIES["cls_temporal"], "")
    (temporal / FOLDER / "text" / "word_embeddings_ucf_normed.npy").unlink()         # nothing in text/
    assert folder_family(FOLDER, temporal, "UCF").family is FAMILIES["cls_temporal"]
    pkl_of(temporal, k=0).write_bytes(b"garbage")               # an unreadable class file shows nothing
    assert folder_family(FOLDER, temporal).family is FAMILIES["cls_temporal"]


# -- VGGish codes stored as floats in [0, 1] ----------------------------------------------------------

def divide_by_255(path: Path) -> dict:
    return edit(path, lambda b: b.__setitem__("features", [np.asarray(x, np.float32) / 255 for x in b["features"]]))


def test_vggish_codes_divided_by_255_warn_once_per_folder(temporal):
    first, second = pkl_of(temporal, k=1), pkl_of(temporal, k=4)
    blob = divide_by_255(first)
    divide_by_255(second)
    n_files = len(list(first.parent.glob("*.pkl")))
    cache = temporal / CACHE / "stage_1_train.pt"
    written = None
    for load in ("built", "from the cache"):
        with warnings_of("src.features_cache") as messages:
            ds = dataset(temporal)
            train, train_val = ds.split("train"), ds.split("train_val")        # both read stage_1_train
        assert written in (None, cache.stat().st_mtime_ns), load
        written = cache.stat().st_mtime_ns
        assert messages == [f"{first}: float audio features all within [0, 1] (as are 1 more of the {n_files} .pkl "
                            f"files of its folder), but this folder's VGGish audio is stored as uint8 codes 0..255, "
                            f"which TCaF divides by 255 (docs/tcaf.md 1): codes already divided by 255 would end near 0; "
                            f"re-export them as uint8 codes (the values times 255)"], (load, messages)
        i = train.urls.index(name_of(blob, 0))                      # read as they are: the user decides
        x, _ = train.audio.gather(torch.tensor([i]))
        assert torch.equal(x[0], torch.from_numpy(blob["features"][0])) and float(train.audio.values.max()) > 1
        assert len(train_val) > len(train)


def test_one_vggish_file_divided_by_255(temporal):
    path = pkl_of(temporal, "audio", "stage_2_test_unseen", k=3)
    divide_by_255(path)
    with warnings_of("src.features_cache") as messages:
        dataset(temporal).split("test")
    (message,) = messages
    assert message.startswith(f"{path}: float audio features all within [0, 1] (the only one of the ")


def scale_into_unit(path: Path) -> None:
    def scale(b):
        xs = [np.abs(np.asarray(x, np.float32)) for x in b["features"]]
        top = max(float(x.max()) for x in xs)
        b["features"] = [x / top for x in xs]
    edit(path, scale)


@pytest.mark.parametrize("family, folder, modality", [("cls_temporal", FOLDER, "video"),     # C3D: floats
                                                      ("main_temporal", SELAVI, "audio"),    # SeLaVi: floats
                                                      ("clip", FOLDER, "audio")])            # WavCaps: floats
def test_other_float_features_within_0_1_are_not_flagged(tiny_root, tmp_path, family, folder, modality):
    root = copy_of(tiny_root, tmp_path, "clip" if family == "clip" else "cls_temporal")
    for path in (root / folder / modality / "stage_1_train").glob("*.pkl"):       # the whole folder re-exported
        scale_into_unit(path)
    with warnings_of("src.features_cache") as messages:
        train = dataset(root, family, folder).split("train")
    x = getattr(train, modality)
    values = x if family == "clip" else x.values
    assert messages == [] and 0 <= float(values.min()) and float(values.max()) <= 1


def test_vggish_codes_stored_as_floats_0_255_are_not_flagged(temporal):
    path = pkl_of(temporal)
    edit(path, lambda b: b.__setitem__("features", [np.asarray(x, np.float32) for x in b["features"]]))
    with warnings_of("src.features_cache") as messages:
        assert len(dataset(temporal).split("train")) > 0
    assert messages == []


# -- temp files of a killed cache build ------------------------------------------------------------------

HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from src import io_utils
from src.data import AVGZSLDataset

def hold(tmp, path):            # the cache's temp file is complete: wait here to be killed
    print(tmp, flush=True)
    time.sleep(120)

io_utils.before_rename = hold
AVGZSLDataset({root!r}, "UCF", "cls_features_non_averaged", "cls_split").split("train")
"""


def start_held_build(root: Path):
    """A process building root's stage_1_train cache, held before its rename: (process, its temp file)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(repo=str(ROOT), root=str(root))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    timer = threading.Timer(120, proc.kill)
    timer.start()
    line = proc.stdout.readline().strip()
    timer.cancel()
    assert line, proc.stderr.read() if proc.poll() is not None else "no temp file named"
    return proc, Path(line)


def test_temp_file_of_a_killed_build_is_removed_not_that_of_a_live_one(temporal):
    proc, tmp = start_held_build(temporal)
    try:
        cache = temporal / CACHE / "stage_1_train.pt"
        assert tmp.parent == cache.parent and tmp.name.startswith(".stage_1_train.pt.pid") and tmp.is_file()
        assert not cache.exists()
        ds = dataset(temporal)
        first = ds.split("train")                      # builds the cache beside the live writer's temp file
        assert cache.is_file() and tmp.is_file()       # its writer still runs: kept
    finally:
        proc.kill()
        proc.wait()
    written = cache.stat().st_mtime_ns
    again = dataset(temporal).split("train")           # its writer was killed: removed, the cache still valid
    assert not tmp.exists() and not list(cache.parent.glob(".*.tmp"))
    assert cache.stat().st_mtime_ns == written         # read from the cache, not rebuilt
    assert torch.equal(again.audio.values, first.audio.values) and again.urls == first.urls


def test_stale_temp_rules(tmp_path):
    """Dead writer of this machine: removed now; live writer: kept however old; a writer that cannot be
    told (another machine, a name without pid): removed once not modified for STALE_AFTER_S."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()                                                # exited and reaped: its pid runs nothing
    host, me = io_utils._host(), os.getpid()
    files = {"dead": tmp_path / f".a.pt.pid{ended.pid}@{host}.abc_12.tmp",
             "live": tmp_path / f".a.pt.pid{me}@{host}.k2j_x8.tmp",
             "live, old": tmp_path / f".e.pt.pid{me}@{host}.k2j_x8.tmp",
             "other host, fresh": tmp_path / ".a.pt.pid1@another-machine.q1w2e3.tmp",
             "other host, old": tmp_path / ".b.pt.pid1@another-machine.q1w2e3.tmp",
             "no pid, fresh": tmp_path / ".c.pt.zz9x8c7v.tmp",
             "no pid, old": tmp_path / ".d.pt.zz9x8c7v.tmp"}
    for p in files.values():
        p.write_bytes(b"half a cache")
    old = time.time() - io_utils.STALE_AFTER_S - 60
    for key in ("live, old", "other host, old", "no pid, old"):
        os.utime(files[key], (old, old))
    (tmp_path / "stage_1_train.pt").write_bytes(b"a cache")
    removed = io_utils.remove_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted(files[k] for k in ("dead", "other host, old", "no pid, old"))
    assert {k for k, p in files.items() if p.exists()} == {"live", "live, old", "other host, fresh", "no pid, fresh"}
    assert (tmp_path / "stage_1_train.pt").read_bytes() == b"a cache"


def test_atomic_writes_name_their_writer(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(io_utils, "before_rename", lambda tmp, path: seen.append((tmp, io_utils.temp_writer_dead(tmp))))
    io_utils.atomic_torch_save({"x": 1}, tmp_path / "f.pt")
    (tmp, dead), = seen
    assert tmp.name.startswith(f".f.pt.pid{os.getpid()}@{io_utils._host()}.") and tmp.name.endswith(".tmp")
    assert not dead and not tmp.exists() and torch.load(tmp_path / "f.pt") == {"x": 1}


# -- through main.py -------------------------------------------------------------------------------------

def check_cli(root: Path, method: str, family: str, tmp_path: Path, *names):
    """main.py (stage 1 of the method's recipe) on the damaged `root`: status 2, one error line naming
    `names`, no traceback, no run folder."""
    base = cell_commands(method, "UCF", family, tmp_path)[0][1:]
    base[base.index("--root_dir") + 1] = str(root)
    base = base[:base.index("--exp_name")]
    dump = tmp_path / "dump"
    proc = run_cli("main.py", *base, *SMALL, "--dump_path", dump, "--exp_name", "damaged", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert line.startswith("main.py: error: "), proc.stderr
    for name in names:
        assert name in line, (name, line)
    assert not (dump / "runs" / "damaged").exists() or not list((dump / "runs" / "damaged").rglob("*"))
    return line


def test_truncated_pickle_cli(temporal, tmp_path):
    path = pkl_of(temporal, "video", "stage_1_val_seen", k=1)
    path.write_bytes(path.read_bytes()[:64])
    check_cli(temporal, "tcaf", "cls_temporal", tmp_path, str(path), "not a readable pickle", "re-create the file")


def test_clipclap_data_without_wavcaps_cli(clip, tmp_path):
    path = clip / FOLDER / "text" / "wavcaps_word_embeddings_ucf_normed.npy"
    path.unlink()
    check_cli(clip, "clipclap", "clip", tmp_path, str(path), "[CLIP 512 || WavCaps 1024]")
