"""A saved run's arguments are upgraded once, where they are loaded (`src.args.upgrade_run_args`): the
original codebases' Namespaces (AVCA's, TCaF's, ClipClap's) and an older project's get their origin, their
model and every field of main.py's parser, with the values their code behaved with."""
import argparse
import json
import pickle

import pytest

from original_runs import parsed, reference_namespace
from src.args import ABSENT_VALUES, ORIGINS, get_main_parser, upgrade_run_args
from src.errors import UserError
from src.runs import RunFolder, resume_differences
from test_original_runs import original_namespace


def parser_fields() -> set:
    return {a.dest for a in get_main_parser()._actions if a.dest != "help"}


def check_complete(args: argparse.Namespace, raw: argparse.Namespace) -> None:
    """Every field of the parser present; the saved fields kept as they were."""
    assert parser_fields() <= set(vars(args))
    assert all(vars(args)[k] == v for k, v in vars(raw).items() if k not in ("model_name", "origin"))


def test_an_original_avca_namespace():
    raw = original_namespace("avgzsl_benchmark_datasets/UCF", retrain_all=True)
    args = upgrade_run_args(raw)
    check_complete(args, raw)
    assert (args.origin, args.model_name) == ("avca", "avca")
    # its defects, no standardisation, plain L2; the fields of later versions at what it did
    assert args.reproduce_original is True and args.z_score_inputs is False and args.distance_fn == "L2Loss"
    assert (args.fvaegan, args.new_model_sequence, args.compile, args.amp, args.cuda_graph) == (False, False, False,
                                                                                              None, False)
    assert args.feature_family is None and args.text_dim is None        # decided from the data at evaluation


def test_an_original_avca_namespace_of_another_model_and_older_fields():
    raw = original_namespace("avgzsl_benchmark_datasets/UCF", retrain_all=False)
    raw.AVCA, raw.cjme = False, True
    del raw.distance_fn, raw.z_score_inputs, raw.zero_shot_split
    args = upgrade_run_args(raw)
    assert (args.origin, args.model_name) == ("avca", "cjme")
    assert (args.distance_fn, args.z_score_inputs, args.zero_shot_split, args.reproduce_original) == (
        "L2Loss", False, "", True)


@pytest.mark.parametrize("key, origin, model", [
    ("tcaf_main_stage_A", "tcaf", "tcaf"), ("tcaf_cls_stage_B", "tcaf", "tcaf"),
    ("clipclap_stage_A", "clipclap", "clipclap"), ("clipclap_stage_B", "clipclap", "clipclap")])
def test_successor_namespaces(key, origin, model):
    raw = reference_namespace(key)
    args = upgrade_run_args(raw)
    check_complete(args, raw)
    assert (args.origin, args.model_name, args.reproduce_original) == (origin, model, True)
    assert args.fvaegan is False and args.test_selection is False


def test_an_older_project_namespace():
    """A run of an earlier version of this project, saved before later flags existed."""
    now = parsed(["--root_dir", "x", "--dataset_name", "UCF", "--new_model_sequence",
                  "--feature_extraction_method", "cls_features_non_averaged"])
    raw = argparse.Namespace(**{k: v for k, v in vars(now).items()
                                if k not in ("model_name", "feature_family", "text_dim", "rec_loss", "use_self_attention",
                                             "optimizer", "eval_bs", "num_threads", "cuda_graph", "amp")})
    args = upgrade_run_args(raw)
    check_complete(args, raw)
    assert (args.origin, args.model_name) == ("project", "tcaf")
    # the values it trained with: the model's defaults of the flags whose default depends on the model
    assert {k: vars(args)[k] for k in ("rec_loss", "use_self_attention", "optimizer", "eval_bs", "num_threads",
                                       "cuda_graph", "amp")} == {k: vars(now)[k] for k in (
        "rec_loss", "use_self_attention", "optimizer", "eval_bs", "num_threads", "cuda_graph", "amp")}
    assert (args.rec_loss, args.use_self_attention) == (True, False)
    assert args.feature_family is None and args.text_dim is None
    assert upgrade_run_args(args) == args                # upgrading twice changes nothing
    # --resume with the same flags: nothing differs (the family and width it predates are not compared)
    assert resume_differences(now, args) == []
    assert [d[0] for d in resume_differences(argparse.Namespace(**{**vars(now), "eval_bs": 32}), args)] == ["eval_bs"]


def test_the_table_holds_what_absent_fields_meant():
    """Each value here was a `getattr(args, name, default)` of the evaluation or a builder: a fact about old
    runs, whatever the parser's defaults become."""
    assert ABSENT_VALUES == {"distance_fn": "L2Loss", "z_score_inputs": False, "zero_shot_split": "",
                             "retrain_all": False, "eval_bs": 64, "optimizer": "adam", "use_wavcaps_embeddings": True,
                             "modality": "both", "word_embeddings": "both", "embeddings_batch_norm": True}
    assert set(ABSENT_VALUES) <= parser_fields() and ORIGINS == ("avca", "tcaf", "clipclap", "project")


def test_a_damaged_namespace_is_named(tmp_path):
    raw = original_namespace("avgzsl_benchmark_datasets/UCF", retrain_all=True)
    del raw.input_size_video
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.pkl").write_bytes(pickle.dumps(raw))
    with pytest.raises(UserError, match=f"{run / 'args.pkl'} lacks the fields input_size_video"):
        RunFolder(run).load_args()
    assert RunFolder(run).written_by_the_original()


def test_save_args_writes_a_readable_json(tmp_path):
    args = parsed(["--root_dir", str(tmp_path / "UCF"), "--exp_name", "x"])
    run = RunFolder(tmp_path / "runs" / "x")
    run.path.mkdir(parents=True)
    run.save_args(args)
    text = (run.path / "args.json").read_text()
    got = json.loads(text)
    assert got == {k: str(v) if k in ("root_dir", "feature_extraction_method", "dump_path") else v
                   for k, v in vars(args).items()}
    assert list(got) == sorted(got) and got["root_dir"] == str(tmp_path / "UCF")
    assert not list(run.path.glob("*.tmp*")) and not [p for p in run.path.iterdir() if p.name.startswith(".")]
    assert run.load_args().origin == "project" and not run.written_by_the_original()
