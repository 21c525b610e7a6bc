"""Data the successors' original codes accept, loaded, trained on and evaluated with one warning per
split folder (issue 17): SeLaVi videos whose audio and video token counts differ (TCaF pads each
modality on its own, docs/tcaf.md 2) and CLIP/CLAP class files listing more video names than feature
rows (ClipClap pairs audio and video rows by position and never reads the names, docs/clipclap.md 1.4,
3). What is truly inconsistent stays a one-line `UserError` naming the file."""
import logging
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli, warnings_of
from original_runs import LINE
from src.data import AVGZSLDataset
from src.errors import UserError
from src.models.tcaf import Collation, temporal_batch
from src.recipes import cell_commands

SELAVI = "features/main_features_non_averaged"
CLIP = "features/cls_features_non_averaged"
TCAF_STAGES = ("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen", "stage_2_test_seen", "stage_2_test_unseen")
SHORTENED = 2           # SeLaVi videos whose last audio token is dropped, in the first class file of each folder
# small and fast: one epoch of two batches per stage
TCAF_SMALL = ["--embeddings_hidden_size", "32", "--transformer_depth", "1", "--transformer_heads", "2",
              "--transformer_dim_head", "16", "--decoder_hidden_size", "32", "--epochs", "1", "--n_batches", "2",
              "--bs", "16", "--lr", "0.001", "--device", "cpu"]
CLIPCLAP_SMALL = ["--epochs", "1", "--n_batches", "2", "--bs", "16", "--lr", "0.001", "--device", "cpu"]


def load_pkl(path: Path) -> dict:
    return pickle.loads(path.read_bytes())


def save_pkl(path: Path, blob: dict) -> None:
    path.write_bytes(pickle.dumps(blob))


def class_files(root: Path, folder: str, modality: str, stage: str):
    return sorted((root / folder / modality / stage).glob("*.pkl"))


@pytest.fixture()
def restore_logging():
    """main.py in this process points the project's loggers at the captured stdout: undone after."""
    names = ("avgzsl", "src.features_cache", "src.data")
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in names}
    yield
    for n, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)


def about(messages, stage: str):
    return [m for m in messages if f"{{audio,video}}/{stage}:" in m]


# -- SeLaVi: audio and video token counts that differ ---------------------------------------------

@pytest.fixture(scope="module")
def uneven(tmp_path_factory):
    """(root, {stage: {video name: (class, T_a, T_v)}}): the tiny temporal SeLaVi benchmark whose first
    class file in every folder has its first SHORTENED videos' last audio token dropped (read-only)."""
    from src.synthetic import generate
    root = generate(tmp_path_factory.mktemp("uneven"), "UCF", preset="tiny", seed=0, noise=0.2, spread=0.5,
                    families=("main_temporal",))
    changed = {}
    for stage in TCAF_STAGES:
        path = class_files(root, SELAVI, "audio", stage)[0]
        audio, video = load_pkl(path), load_pkl(root / SELAVI / "video" / stage / path.name)
        changed[stage] = {}
        for k in range(SHORTENED):
            assert len(audio["features"][k]) >= 2            # tiny preset: 2..6 tokens
            audio["features"][k] = audio["features"][k][:-1]
            changed[stage][audio["video_names"][k].decode()] = (path.stem, len(audio["features"][k]),
                                                                len(video["features"][k]))
        save_pkl(path, audio)
    return root, changed


@pytest.fixture()
def uneven_root(uneven, tmp_path):
    """A fresh copy of `uneven` without a cache."""
    root, changed = uneven
    return Path(shutil.copytree(root, tmp_path / "UCF", ignore=shutil.ignore_patterns("_features_processed"))), changed


def selavi(root) -> AVGZSLDataset:
    return AVGZSLDataset(root, "UCF", "main_features_non_averaged", "main_split", input_size_audio=512,
                         input_size_video=512)


def test_unequal_selavi_token_counts_load_with_one_warning_per_folder(uneven_root):
    root, changed = uneven_root
    cache = root / "_features_processed" / "main_features_non_averaged" / "stage_1_train.pt"
    written = None
    for load in ("built", "from the cache"):
        with warnings_of() as messages:
            ds = selavi(root)
            train, train_val = ds.split("train"), ds.split("train_val")        # both read stage_1_train
        assert written in (None, cache.stat().st_mtime_ns), load                 # the second load: not rebuilt
        written = cache.stat().st_mtime_ns
        for stage in ("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen"):
            n = len(ds.folder(stage)["urls"])
            (message,) = about(messages, stage)
            assert message.startswith(f"{root / SELAVI}/{{audio,video}}/{stage}: {SHORTENED} of {n} videos have "
                                      f"different audio and video token counts (first: "), (load, message)
            name, (stem, t_a, t_v) = next(iter(changed[stage].items()))
            assert f"(first: {stem}/{name}, audio {t_a}, video {t_v}); each modality is padded on its own, " \
                   f"as TCaF does" in message, message
        assert len(messages) == 3, messages
        # each modality keeps its own counts, the tokens those of the files
        for name, (stem, t_a, t_v) in changed["stage_1_train"].items():
            i = train.urls.index(name)
            assert (int(train.audio.lengths[i]), int(train.video.lengths[i])) == (t_a, t_v)
            blob = load_pkl(root / SELAVI / "audio" / "stage_1_train" / f"{stem}.pkl")
            k = [n.decode() for n in blob["video_names"]].index(name)
            x, _ = train.audio.gather(torch.tensor([i]))
            assert torch.equal(x[0], torch.from_numpy(blob["features"][k]))
        assert int((train_val.audio.lengths != train_val.video.lengths).sum()) == 3 * SHORTENED


def test_each_modality_of_a_batch_is_padded_on_its_own(uneven_root):
    root, changed = uneven_root
    train = selavi(root).split("train")
    name, (_, t_a, t_v) = next(iter(changed["stage_1_train"].items()))
    i = train.urls.index(name)
    batch = temporal_batch(train, torch.tensor([i]), Collation("max"))
    assert batch.audio.shape == (1, t_a, 512) and batch.video.shape == (1, t_v, 512) and t_a == t_v - 1
    assert batch.audio_mask.sum() == t_a and batch.video_mask.sum() == t_v
    assert batch.audio_time.shape == (1, t_a) and batch.video_time.shape == (1, t_v)
    # with other videos: each modality padded to its own longest sequence, every mask its video's count
    idx = torch.arange(len(train))[:8].tolist() + [i]
    batch = temporal_batch(train, torch.tensor(idx), Collation("max"))
    a_len, v_len = train.audio.lengths[idx], train.video.lengths[idx]
    assert batch.audio.shape[1] == int(a_len.max()) and batch.video.shape[1] == int(v_len.max())
    assert torch.equal(batch.audio_mask.sum(1).long(), a_len) and torch.equal(batch.video_mask.sum(1).long(), v_len)
    # fixed mode (ActivityNet): both cut to L = maxlen (SeLaVi audio: round(L * 1 * 1)), each from its own count
    batch = temporal_batch(train, torch.tensor([i]), Collation("fixed", maxlen=t_v - 1, trim="center"))
    assert batch.audio.shape[1] == batch.video.shape[1] == t_v - 1
    assert batch.audio_mask.sum() == min(t_a, t_v - 1) and batch.video_mask.sum() == t_v - 1


def test_selavi_names_still_pair_audio_with_video(uneven_root):
    """Only the token counts are free: a name list that is not the rows', or another video, still fails."""
    root, _ = uneven_root
    path = class_files(root, SELAVI, "audio", "stage_1_train")[1]
    blob = load_pkl(path)
    blob["video_names"].append(b"a_dropped_video")
    save_pkl(path, blob)
    with pytest.raises(UserError) as err:
        selavi(root).split("train")
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "entries in 'features' but" in message


def run_all_then_evaluate(method, family, data_dir, small, runs_parent, capsys):
    """`main.py --run all` of a method's recipe in this process, then get_evaluation.py in a new one
    (its data from the cache): both print the same line. Returns main's stdout and the evaluation's."""
    from main import main
    base = cell_commands(method, "UCF", family, data_dir)[0][1:]
    base = base[:base.index("--exp_name")]
    main([*base, *small, "--exp_name", "r", "--dump_path", str(runs_parent), "--run", "all"])
    out = capsys.readouterr().out
    assert re.search(LINE, out), out
    runs = runs_parent / "runs"
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", runs / "r_stage_1", "--load_path_stage_B",
                   runs / "r_stage_2", "--device", "cpu")
    assert re.search(LINE, proc.stdout).group(0) == re.search(LINE, out).group(0)
    return out, proc.stdout


def test_tcaf_trains_and_evaluates_on_unequal_selavi_counts(uneven_root, tmp_path, capsys, restore_logging):
    root, _ = uneven_root
    out, evaluation = run_all_then_evaluate("tcaf", "main_temporal", root.parent, TCAF_SMALL, tmp_path, capsys)
    assert about(out.splitlines(), "stage_2_test_seen") and about(out.splitlines(), "stage_1_train")
    assert list((tmp_path / "runs" / "r_stage_2").glob("checkpoints/Multimodal_Sequence_Transformer_score_ckpt_*.pt"))
    # the evaluation warns once per folder it reads
    lines = evaluation.splitlines()
    for stage in ("stage_1_val_seen", "stage_1_val_unseen", "stage_2_test_seen", "stage_2_test_unseen"):
        assert len(about(lines, stage)) == 1, evaluation
    assert not about(lines, "stage_1_train"), evaluation             # not read by the evaluation


# -- CLIP/CLAP: class files listing more video names than rows --------------------------------------

def drop_rows(path: Path, rows, extra_names=0):
    """ClipClap's splitting (docs/clipclap.md 1.4): `rows` left out of 'features', every name kept (and
    `extra_names` more appended)."""
    blob = load_pkl(path)
    blob["features"] = [x for k, x in enumerate(blob["features"]) if k not in rows]
    blob["video_names"] = blob["video_names"] + [f"another_{k}.mp4".encode() for k in range(extra_names)]
    save_pkl(path, blob)
    return blob


@pytest.fixture(scope="module")
def clip_bench(tmp_path_factory):
    from src.synthetic import generate
    return generate(tmp_path_factory.mktemp("clip"), "UCF", preset="tiny", seed=0, noise=0.2, spread=0.5,
                    families=("clip",))


@pytest.fixture()
def clip_root(clip_bench, tmp_path):
    """A copy of the CLIP/CLAP benchmark in which, as ClipClap's splitting leaves them, two classes of
    stage_1_train and one of stage_2_test_unseen lost rows but kept their names (audio and video alike)."""
    root = Path(shutil.copytree(clip_bench, tmp_path / "ClipClap" / "UCF",
                                ignore=shutil.ignore_patterns("_features_processed")))
    for stage, k, rows, extra in (("stage_1_train", 0, {3}, 0), ("stage_1_train", 2, {0, 5}, 1),
                                  ("stage_2_test_unseen", 1, {0}, 0)):
        for m in ("audio", "video"):
            drop_rows(class_files(root, CLIP, m, stage)[k], rows, extra)
    return root


def clip(root) -> AVGZSLDataset:
    return AVGZSLDataset(root, "UCF", "cls_features_non_averaged", "cls_split")


def test_more_names_than_rows_load_by_position_with_one_warning(clip_root):
    a0, a2 = (class_files(clip_root, CLIP, "audio", "stage_1_train")[k] for k in (0, 2))
    n0, n2 = (len(load_pkl(p)["features"]) for p in (a0, a2))
    cache = clip_root / "_features_processed" / "cls_features_non_averaged" / "stage_1_train.pt"
    written = None
    for load in ("built", "from the cache"):
        with warnings_of() as messages:
            ds = clip(clip_root)
            train, train_val = ds.split("train"), ds.split("train_val")
        assert written in (None, cache.stat().st_mtime_ns), load
        written = cache.stat().st_mtime_ns
        (message,) = about(messages, "stage_1_train")
        assert message == (
            f"{clip_root / CLIP}/{{audio,video}}/stage_1_train: 4 class files list more video names than feature "
            f"rows (first: audio/stage_1_train/{a0.name}, {n0 + 1} names for {n0} rows; ClipClap's splitting keeps "
            f"the names of the videos it drops): the audio and video rows of 2 classes ({n0 + n2} videos) are paired "
            f"by position, as ClipClap does; their names are not used (the videos are called "
            f"'stage_1_train/{{Class}}.pkl#row{{i}}')"), (load, message)
        assert len(messages) == 1, messages                  # stage_1_val_* hold none
        # rows by position, in the file's order; their names made up, the other classes' kept
        for path in (a0, a2):
            c = ds.class_index(path.stem, path)
            rows = (train.targets == c).nonzero()[:, 0]
            audio = load_pkl(path)["features"]
            video = load_pkl(path.parents[2] / "video" / "stage_1_train" / path.name)["features"]
            assert torch.equal(train.audio[rows], torch.from_numpy(np.stack(audio)))
            assert torch.equal(train.video[rows], torch.from_numpy(np.stack(video).astype(np.float32)))
            assert [train.urls[i] for i in rows] == [f"stage_1_train/{path.name}#row{j}" for j in range(len(rows))]
        other = class_files(clip_root, CLIP, "audio", "stage_1_train")[1]
        c = ds.class_index(other.stem, other)
        names = [n.decode() for n in load_pkl(other)["video_names"]]
        assert [train.urls[i] for i in (train.targets == c).nonzero()[:, 0]] == names
        assert len(train_val) > len(train)
    with warnings_of() as messages:
        clip(clip_root).split("test")
    (message,) = about(messages, "stage_2_test_unseen")
    assert "2 class files list more video names than feature rows" in message and "of 1 class (" in message


def test_clipclap_trains_and_evaluates_on_more_names_than_rows(clip_root, tmp_path, capsys, restore_logging):
    out, evaluation = run_all_then_evaluate("clipclap", "clip", clip_root.parent.parent, CLIPCLAP_SMALL, tmp_path, capsys)
    assert about(out.splitlines(), "stage_1_train") and about(out.splitlines(), "stage_2_test_unseen")
    assert len(about(evaluation.splitlines(), "stage_2_test_unseen")) == 1, evaluation


def one_line_error(root) -> str:
    with pytest.raises(UserError) as err:
        clip(root).split("train")
    message = str(err.value)
    assert "\n" not in message, message
    return message


def test_audio_and_video_rows_of_different_counts_stay_an_error(clip_root):
    path = class_files(clip_root, CLIP, "audio", "stage_1_train")[0]        # names for more rows already
    rows = len(drop_rows(path, {0})["features"])
    message = one_line_error(clip_root)
    video = path.parents[2] / "video" / "stage_1_train" / path.name
    assert f"{path} and {video} hold {rows} and {rows + 1} feature rows" in message, message
    assert "paired by position" in message and "re-extract the class" in message


def test_fewer_names_than_rows_stays_an_error(clip_bench, tmp_path):
    root = Path(shutil.copytree(clip_bench, tmp_path / "UCF", ignore=shutil.ignore_patterns("_features_processed")))
    path = class_files(root, CLIP, "video", "stage_1_train")[0]
    blob = load_pkl(path)
    blob["video_names"] = blob["video_names"][:-1]
    save_pkl(path, blob)
    message = one_line_error(root)
    assert str(path) in message and "entries in 'features' but" in message


def test_names_that_match_the_rows_are_still_checked(clip_bench, tmp_path):
    """Aligned files (as many names as rows) still pair audio and video by name."""
    root = Path(shutil.copytree(clip_bench, tmp_path / "UCF", ignore=shutil.ignore_patterns("_features_processed")))
    path = class_files(root, CLIP, "video", "stage_1_train")[0]
    blob = load_pkl(path)
    blob["video_names"][1] = b"another_video"
    save_pkl(path, blob)
    message = one_line_error(root)
    assert str(path) in message and "list different videos" in message and "'another_video'" in message


def test_a_bad_row_of_an_unaligned_file_is_named_by_its_position(clip_root):
    """Its names are not its rows': an error names the row, never a name that may be another video's."""
    path = class_files(clip_root, CLIP, "video", "stage_1_train")[0]
    blob = load_pkl(path)
    blob["features"][4] = np.full_like(blob["features"][4], np.nan)
    save_pkl(path, blob)
    message = one_line_error(clip_root)
    assert str(path) in message and "the video of row 4" in message and "NaN or Inf" in message
    assert not any(n.decode() in message for n in blob["video_names"])
