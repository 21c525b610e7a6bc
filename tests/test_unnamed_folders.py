"""A feature folder whose name no family has: its files tell its layout (.h5 rows, .pkl token sequences,
.pkl vectors), its class split is --zero_shot_split's, and nothing is guessed from its name. Such a
folder trains and evaluates to the numbers of the family whose files it holds; a missing or empty one,
or one with no --zero_shot_split, is refused in one line naming the fix."""
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from conftest import cli, main_args
from src.args import finalize_main_args, get_main_parser
from src.errors import UserError
from src.families import FAMILIES, FOLDERS, folder_family
from src.recipes import cell_commands
from test_end_to_end import SMALL, SMALLER

SHORT = ["--epochs", "2", "--n_batches", "4"]     # equal numbers are the point, not good ones


@pytest.fixture(scope="module")
def root(tiny_root, tmp_path_factory):
    """A UCF folder holding the tiny benchmark's class splits and, under names of no family, copies of its
    averaged SeLaVi features (.h5), temporal ones (.pkl sequences) and CLIP/CLAP ones (.pkl vectors), and
    the named folders they copy (the same data, to compare with)."""
    out = tmp_path_factory.mktemp("unnamed") / "UCF"
    shutil.copytree(tiny_root / "class-split", out / "class-split")
    clip = tiny_root.parent / "ClipClap" / "UCF" / "features" / "cls_features_non_averaged"
    for name, source in (("main_features", tiny_root / "features" / "main_features"),
                         ("main_features_non_averaged", tiny_root / "features" / "main_features_non_averaged"),
                         # names that would once have been read by their text: "cls" and "_non_averaged"
                         ("my_cls_features_non_averaged", tiny_root / "features" / "main_features"),
                         ("my_cls_tokens", tiny_root / "features" / "main_features_non_averaged"),
                         ("my_vectors", clip)):
        shutil.copytree(source, out / "features" / name)
    return out


def test_the_files_tell_the_layout_not_the_name(root):
    h5, h5_why = folder_family("my_cls_features_non_averaged", root, "UCF")
    assert (h5.key, h5.layout, h5.split, h5.widths) == ("", "h5", "", "None/None") and ".h5 class file" in h5_why
    tokens, why = folder_family("my_cls_tokens", root, "UCF")
    assert tokens.temporal and not tokens.key and "[T, D] token sequences" in why
    assert (tokens.audio_rate, tokens.video_rate) == (1.0, 1.0)       # not C3D/VGGish's, whatever the name says
    assert tokens.text == FAMILIES["main"].text                        # word2vec class vectors
    vectors, why = folder_family("my_vectors", root, "UCF")
    assert vectors.vectors and "1-d vector per video" in why and vectors.text == FAMILIES["clip"].text
    # a path ending in the folder, with no dataset folder: the folder itself is looked at
    assert folder_family(root / "features" / "my_cls_tokens").family.temporal


def test_a_missing_or_empty_folder_is_refused(root, tmp_path):
    with pytest.raises(UserError, match="missing feature folder .*nowhere.*--feature_extraction_method") as err:
        folder_family("nowhere", root, "UCF")
    assert all(name in str(err.value) for name in FOLDERS)
    empty = tmp_path / "features" / "empty"
    (empty / "audio" / "stage_1_train").mkdir(parents=True)
    (empty / "text").mkdir()
    with pytest.raises(UserError, match="holds no class file"):
        folder_family("empty", tmp_path)
    (empty / "audio" / "stage_1_train" / "Broken.pkl").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="none of the 1 .pkl class files .* holds a readable video"):
        folder_family("empty", tmp_path)
    both = tmp_path / "features" / "both"
    shutil.copytree(root / "features" / "main_features" / "audio", both / "audio")
    shutil.copytree(root / "features" / "main_features_non_averaged" / "video", both / "video")
    with pytest.raises(UserError, match="both .h5 .* and .pkl"):
        folder_family("both", tmp_path)


def test_no_zero_shot_split_is_refused_with_the_splits_there_are(root, tmp_path):
    argv = main_args(root, tmp_path, "x")
    argv[argv.index("main_features")] = "my_cls_features_non_averaged"
    at = argv.index("--zero_shot_split")
    del argv[at:at + 2]
    with pytest.raises(UserError, match="--zero_shot_split") as err:
        finalize_main_args(get_main_parser().parse_args(list(map(str, argv))))
    assert "cls_split, main_split" in str(err.value) and "my_cls_features_non_averaged" in str(err.value)
    args = finalize_main_args(get_main_parser().parse_args([*map(str, argv), "--zero_shot_split", "cls_split"]))
    assert (args.feature_family, args.zero_shot_split) == ("", "cls_split")


def train_and_evaluate(method, family, root, folder, dump) -> dict:
    """A method's run-script cell for `family`, made small, reading features/{folder}: stage 1, stage 2
    and get_evaluation.py; the evaluation's results."""
    commands = cell_commands(method, "UCF", family, root.parent, dump_path=dump)
    for cmd in commands[:2]:
        cmd[cmd.index("--feature_extraction_method") + 1] = folder
        cli("main")([*map(str, cmd[1:]), *SMALL, *SMALLER.get(method, []), *SHORT])
    cli("get_evaluation")([*map(str, commands[2][1:]), "--device", "cpu"])
    run_b = Path(commands[2][commands[2].index("--load_path_stage_B") + 1])
    assert pickle.loads((run_b / "args.pkl").read_bytes()).feature_family == ("" if folder != FAMILIES[family].folder
                                                                              else family)
    return json.loads((run_b / "evaluation.json").read_text())


@pytest.mark.parametrize("method,family,folder", [("avca", "main", "my_cls_features_non_averaged"),
                                                  ("tcaf", "main_temporal", "my_cls_tokens")])
def test_an_unnamed_folder_trains_and_evaluates_as_its_files_say(method, family, folder, root, tmp_path):
    """Trained on a copy of a family's folder under a name of no family (the split given, as the recipe
    does), a method reaches the numbers it reaches on the family's own folder; the saved runs record no
    family, and the evaluation reads the layout from the files again."""
    named = train_and_evaluate(method, family, root, FAMILIES[family].folder, tmp_path / "named")
    unnamed = train_and_evaluate(method, family, root, folder, tmp_path / "unnamed")
    keys = ("hm", "zsl", "seen", "unseen", "epoch")
    assert {k: unnamed[k] for k in keys} == {k: named[k] for k in keys}


def test_an_unnamed_folder_of_vectors_reads_as_clipclaps(tiny_root, tmp_path):
    """1-d vectors per video are ClipClap's layout, class vectors included: the same splits as its folder's."""
    from src.data import AVGZSLDataset
    root = shutil.copytree(tiny_root.parent / "ClipClap" / "UCF", tmp_path / "UCF")
    shutil.copytree(root / "features" / "cls_features_non_averaged", root / "features" / "my_vectors")
    named, unnamed = (AVGZSLDataset(root, "UCF", folder, "cls_split", cache=False)
                      for folder in ("cls_features_non_averaged", "my_vectors"))
    assert (named.family.key, unnamed.family.key, unnamed.text_dim) == ("clip", "", named.text_dim)
    a, b = named.split("train"), unnamed.split("train")
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("audio", "video", "targets", "text"))
