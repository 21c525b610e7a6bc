"""The command lines: --help, the synthetic generator's CLI, and the README's flag list."""
import argparse
import re

import h5py
import numpy as np

from conftest import ROOT, run_cli
from src.args import finalize_main_args, get_eval_parser, get_main_parser


def public_flags(parser):
    return [a.option_strings[0] for a in parser._actions
            if a.option_strings and a.help != argparse.SUPPRESS and a.dest != "help"]


def test_help_explains_every_flag():
    for script, parser in (("main.py", get_main_parser()), ("get_evaluation.py", get_eval_parser())):
        out = run_cli(script, "--help").stdout
        for flag in public_flags(parser):
            assert flag in out, (script, flag)


def test_original_namespace_fields_are_all_accepted():
    import json
    from conftest import REFERENCE
    ref = REFERENCE / "original_args_namespace.json"
    if not ref.is_file():
        import pytest
        pytest.skip("../shared/reference is absent")
    fields = next(iter(json.loads(ref.read_text()).values()))
    args = finalize_main_args(get_main_parser().parse_args(["--root_dir", "x", "--dataset_name", "UCF"]))
    missing = set(fields) - set(vars(args))
    assert not missing, missing
    for k, v in fields.items():
        if k not in ("root_dir", "dataset_name", "feature_extraction_method", "dump_path", "device", "zero_shot_split",
                     "exp_name"):
            assert getattr(args, k) == v, (k, getattr(args, k), v)


def test_readme_documents_every_flag():
    from src.args import flags_markdown
    readme = (ROOT / "README.md").read_text()
    assert flags_markdown() in readme, "README's Flags section is stale: paste the output of `python -m src.args`"
    for parser in (get_main_parser(), get_eval_parser()):
        for flag in public_flags(parser):
            assert re.search(rf"`{re.escape(flag)}`", readme), flag


def test_the_ignored_flags_are_those_whose_help_says_so():
    """The flags --resume lets differ (they select nothing) are listed where they are defined; the
    list and the help agree."""
    from src.args import ignored_flags
    from src.models.flags import IGNORED
    said = {a.dest for a in get_main_parser()._actions if a.help in (IGNORED, "ignored")}
    assert ignored_flags() == said


def test_synthetic_cli(tmp_path):
    out = run_cli("-m", "src.synthetic", "--dataset", "ActivityNet", "--preset", "tiny", "--families", "cls",
                  "--out_dir", tmp_path).stdout
    root = tmp_path / "ActivityNet"
    assert str(root) in out
    for stage in ("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen", "stage_2_train",
                  "stage_2_test_seen", "stage_2_test_unseen"):
        for ext in ("txt", "csv"):
            assert (root / "class-split" / "cls_split" / f"{stage}.{ext}").is_file()
        h5 = sorted((root / "features/cls_features/video" / stage).glob("*.h5"))[0]
        with h5py.File(h5) as f:
            assert f["data"].shape[1] == 4096 and f["video_urls"].dtype == np.dtype("S80")
    assert (root / "features/cls_features/text/word_embeddings_activity_normed.npy").is_file()
    assert (root / "class-split" / "activitynet_w2v_class_names.csv").is_file()
    again = run_cli("-m", "src.synthetic", "--dataset", "ActivityNet", "--preset", "tiny", "--out_dir", tmp_path,
                    check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
