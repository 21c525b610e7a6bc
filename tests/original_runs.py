"""Run folders in the original codebases' format (TCaF's, ClipClap's), for the tests that evaluate
them: timestamped names, the original's Namespace in args.pkl, `module.`-prefixed checkpoints; and
the direct evaluation their get_evaluation numbers must equal."""
import argparse
import json
import pickle
import re
from pathlib import Path

import pytest
import torch

from src.args import finalize_main_args, get_main_parser

# get_evaluation's result line; group 1: the GZSL (harmonic mean) figure
LINE = r"Seen performance=\d+\.\d\d, Unseen performance=\d+\.\d\d, GZSL performance=(\d+\.\d\d), ZSL performance=\d+\.\d\d"


def parsed(argv):
    return finalize_main_args(get_main_parser().parse_args(argv))


def reference_namespace(key: str, **values) -> argparse.Namespace:
    """The pickled args of an original run, with exactly the fields and value types listed under `key`
    in ../shared/reference/successor_args_namespaces.json (paths as pathlib.Path), `values` replaced
    (skipped when the file is absent)."""
    from conftest import REFERENCE
    path = REFERENCE / "successor_args_namespaces.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    fields = json.loads(path.read_text())[key]
    for k, v in fields.items():
        m = re.fullmatch(r"PosixPath\('(.*)'\)", v) if isinstance(v, str) else None
        if m:
            fields[k] = Path(m.group(1))
    unknown = set(values) - set(fields)
    assert not unknown, f"not fields of {key}: {unknown}"
    return argparse.Namespace(**{**fields, **values})


def write_original_runs(tmp_path: Path, name: str, fields: dict, root: Path, model_name: str, ours, class_name: str,
                        epoch: int, check_state=None) -> dict:
    """Stage A and B folders under tmp_path/runs as the original wrote them, each with a model
    (create_model(model_name, ours) under seed 1 and 2) saved as {class_name}_score.pt (A) or
    checkpoints/{class_name}_score_ckpt_{epoch - 1}.pt (B) at `epoch`; returns {"A": model, "B": model}.
    check_state(state) may assert on the saved state_dict."""
    from src.models import create_model
    models = {}
    for stage, retrain in (("A", False), ("B", True)):
        ns = argparse.Namespace(**{**fields, "root_dir": Path(root), "log_dir": Path("runs"),
                                   "feature_extraction_method": Path("cls_features_non_averaged"),
                                   "retrain_all": retrain, "save_checkpoints": retrain, "device": "cuda"})
        run = tmp_path / "runs" / f"{name}_{stage}_Nov26_04-40-00_000001_host"
        (run / "checkpoints").mkdir(parents=True)
        (run / "args.pkl").write_bytes(pickle.dumps(ns))
        torch.manual_seed(len(stage))
        models[stage] = m = create_model(model_name, ours)
        state = {f"module.{k}": v for k, v in m.state_dict().items()}
        if check_state is not None:
            check_state(state)
        ckpt = {"epoch": epoch, "model": state, "optimizer": {}, "metric": "score"}
        torch.save(ckpt, run / (f"checkpoints/{class_name}_score_ckpt_{epoch - 1}.pt" if retrain else
                                f"{class_name}_score.pt"))
    return models


def assert_direct_evaluation(result: Path, proc, ours, root: Path, models: dict) -> dict:
    """get_evaluation's `result` json and printed line equal a direct evaluation of the two models
    with the original pairing (beta from stage A on val, stage B on test); returns the json."""
    from src.data import dataset_from_args
    from src.evaluate import combined_beta, evaluate_model
    got = json.loads(result.read_text())
    assert got["pairing"] == "original"
    dataset = dataset_from_args(argparse.Namespace(**{**vars(ours), "root_dir": root}), pairing="original")
    beta = combined_beta(evaluate_model(models["A"], dataset.split("val")))
    want = evaluate_model(models["B"], dataset.split("test"), beta=beta)["both"]
    assert got["beta"] == beta and all(got[k] == pytest.approx(want[k], abs=1e-7) for k in ("seen", "unseen", "hm", "zsl"))
    assert re.search(LINE, proc.stdout)
    return got
