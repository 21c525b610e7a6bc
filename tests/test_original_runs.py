"""Run folders written by the original code load into get_evaluation.py (docs/protocol.md 3)."""
import argparse
import json
import pickle
from pathlib import Path

import pytest
import torch

from conftest import REFERENCE, run_cli
from src.args import get_main_parser, finalize_main_args
from src.data import dataset_from_args
from src.evaluate import combined_beta, evaluate_model
from src.models import create_model

SEED_FLAGS = ("--AVCA --lr 0.001 --embeddings_hidden_size 512 --decoder_hidden_size 512 --embedding_dropout 0.2 "
              "--decoder_dropout 0.3 --additional_dropout 0.5 --depth_transformer 1 --additional_triplets_loss "
              "--first_additional_triplet 1 --second_additional_triplet 1 --momentum 0.1 --reg_loss --lr_scheduler "
              "--epochs 50 --n_batches 500").split()


def original_namespace(root_rel: str, retrain_all: bool) -> argparse.Namespace:
    """An args.pkl as the original main.py pickled it: its fields only, paths as pathlib."""
    ref = REFERENCE / "original_args_namespace.json"
    if not ref.is_file():
        pytest.skip("../shared/reference is absent")
    fields = next(iter(json.loads(ref.read_text()).values()))
    ours = finalize_main_args(get_main_parser().parse_args(["--root_dir", root_rel, "--dataset_name", "UCF", *SEED_FLAGS]))
    ns = argparse.Namespace(**{k: getattr(ours, k, v) for k, v in fields.items()})
    ns.root_dir, ns.feature_extraction_method, ns.dump_path = Path(root_rel), Path("main_features"), Path(".")
    ns.zero_shot_split, ns.device, ns.retrain_all, ns.save_checkpoints = "main_split", "cuda", retrain_all, retrain_all
    ns.exp_name = "attention_ucf_all_main" if retrain_all else "attention_ucf_val_main"
    assert set(vars(ns)) == set(fields)
    return ns


def save_original_ckpt(model, path: Path, epoch: int):
    """The original's format, with a DataParallel `module.` prefix on the keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(model.parameters())
    torch.save({"epoch": epoch, "model": {f"module.{k}": v for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "metric": "score"}, path)


def test_original_run_folder_evaluates_with_the_original_pairing(tiny_root, tmp_path):
    # the dataset sits at a path relative to the working directory, as in the seed's commands
    work = tmp_path / "repo"
    (work / "avgzsl_benchmark_datasets").mkdir(parents=True)
    (work / "avgzsl_benchmark_datasets" / "UCF").symlink_to(tiny_root)
    rel = "avgzsl_benchmark_datasets/UCF"
    runs = work / "runs"
    models = {}
    for stage, retrain in (("attention_ucf_val_main", False), ("attention_ucf_all_main", True)):
        ns = original_namespace(rel, retrain)
        (runs / stage).mkdir(parents=True)
        with open(runs / stage / "args.pkl", "wb") as f:
            pickle.dump(ns, f)
        torch.manual_seed(len(stage))
        args = finalize_main_args(get_main_parser().parse_args(["--root_dir", str(tiny_root), "--dataset_name", "UCF",
                                                                 *SEED_FLAGS]))
        models[stage] = m = create_model("avca", args)
        with torch.no_grad():                      # move BN statistics off their defaults
            m.train()
            m.get_embeddings(torch.randn(64, 512), torch.randn(64, 512), torch.randn(8, 300))
        if retrain:
            save_original_ckpt(m, runs / stage / "checkpoints" / "AVCA_score_ckpt_2.pt", 3)
            save_original_ckpt(create_model("avca", args), runs / stage / "checkpoints" / "AVCA_score_ckpt_1.pt", 2)
        else:
            save_original_ckpt(m, runs / stage / "AVCA_score.pt", 3)

    proc = run_cli("get_evaluation.py", "--load_path_stage_A", "runs/attention_ucf_val_main", "--load_path_stage_B",
                   "runs/attention_ucf_all_main", "--dataset_name", "UCF", "--AVCA", cwd=work)
    got = json.loads((runs / "attention_ucf_all_main" / "evaluation.json").read_text())
    assert got["pairing"] == "original" and got["epoch"] == 3

    # the same numbers computed here, with the original pairing, epoch 3 -> ckpt_2
    ds_args = finalize_main_args(get_main_parser().parse_args(["--root_dir", str(tiny_root), "--dataset_name", "UCF",
                                                                "--reproduce_original", *SEED_FLAGS]))
    ds = dataset_from_args(ds_args)
    assert ds.pairing == "original"
    beta = combined_beta(evaluate_model(models["attention_ucf_val_main"], ds.split("val")))
    want = evaluate_model(models["attention_ucf_all_main"], ds.split("test"), beta=beta)["both"]
    assert got["beta"] == beta
    for k in ("seen", "unseen", "hm", "zsl"):
        assert got[k] == pytest.approx(want[k], abs=1e-7)
    line = (f"Seen performance={100 * want['seen']:.2f}, Unseen performance={100 * want['unseen']:.2f}, "
            f"GZSL performance={100 * want['hm']:.2f}, ZSL performance={100 * want['zsl']:.2f}")
    assert line in proc.stdout

    # the data moved: --root_dir points at it
    (work / "avgzsl_benchmark_datasets" / "UCF").unlink()
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", "runs/attention_ucf_val_main", "--load_path_stage_B",
                   "runs/attention_ucf_all_main", "--AVCA", cwd=work, check=False)
    assert proc.returncode != 0 and "--root_dir" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("get_evaluation.py", "--load_path_stage_A", "runs/attention_ucf_val_main", "--load_path_stage_B",
                   "runs/attention_ucf_all_main", "--AVCA", "--root_dir", tiny_root, "--device", "cpu",
                   "--eval_name", "moved", cwd=work)
    assert line in proc.stdout
    assert json.loads((runs / "attention_ucf_all_main" / "moved.json").read_text())["hm"] == got["hm"]
