"""HSP-MoE's evaluation-time defects of its original code (docs/hspmoe.md): the --eval_semantic_far_*
overrides and the latest-checkpoint fallback of stage 2, each refused by default and what the original
did under --reproduce_original (or on a run folder of the original code)."""
import shutil
from types import SimpleNamespace

import pytest

from conftest import cli
from original_runs import assert_direct_evaluation, parsed, reference_namespace, write_original_runs
from src.families import FAMILIES, dataset_root
from src.recipes import cell_commands

EVALUATE = cli("get_evaluation")


@pytest.fixture
def hspmoe_runs(tiny_root):
    """(stage-A and stage-B folders writer, the project's recipe Namespace, the CLIP/CLAP dataset folder)."""
    root = dataset_root(tiny_root.parent, "UCF", FAMILIES["clip"])
    ours = parsed(cell_commands("hspmoe", "UCF", "clip", tiny_root.parent)[0][1:])
    ours.text_dim = 1536

    def write(tmp_path, fields, model_name="hspmoe"):
        models = write_original_runs(tmp_path, model_name, fields, root, model_name, ours, "ClipClap_model", epoch=2)
        return models, sorted((tmp_path / "runs").iterdir())
    return write, ours, root


def evaluate(runs, *extra):
    EVALUATE(["--load_path_stage_A", str(runs[0]), "--load_path_stage_B", str(runs[1]), "--device", "cpu", *extra])


def refused(capsys, runs, *extra) -> str:
    with pytest.raises(SystemExit) as exit_:
        evaluate(runs, *extra)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def printed(capsys) -> SimpleNamespace:
    return SimpleNamespace(stdout=capsys.readouterr().out)


FAR_OFF_RAW = ("--eval_semantic_far_adapted_weight", "0", "--eval_semantic_far_scale_raw", "False")


def test_far_overrides_act_on_an_original_run_folder(hspmoe_runs, tmp_path, capsys):
    """On a run folder of HSP-MoE's code (its pairing and defects implied), the overrides replace the run's FAR
    settings in both models, as its get_evaluation did: the numbers are a direct evaluation's with them."""
    write, ours, root = hspmoe_runs
    models, runs = write(tmp_path, vars(reference_namespace("hspmoe_full_stage_A")))
    evaluate(runs, *FAR_OFF_RAW)
    for model in models.values():
        assert model.far and model.far_adapted_weight == 0.5 and model.far_scale_raw
        model.far_adapted_weight, model.far_scale_raw = 0.0, False
    assert_direct_evaluation(runs[1] / "evaluation.json", printed(capsys), ours, root, models)


def test_far_overrides_are_refused_on_a_project_run_unless_reproducing(hspmoe_runs, tmp_path, capsys):
    write, ours, root = hspmoe_runs
    models, runs = write(tmp_path, {**vars(ours), "reproduce_original": False})
    err = refused(capsys, runs, "--eval_semantic_far_fusion", "False")
    assert "--eval_semantic_far_fusion" in err and "test split" in err and "--reproduce_original" in err
    assert not (runs[1] / "evaluation.json").exists()
    evaluate(runs, "--eval_semantic_far_fusion", "False", "--reproduce_original")
    for model in models.values():
        model.far = False
    assert_direct_evaluation(runs[1] / "evaluation.json", printed(capsys), ours, root, models)


def test_far_overrides_are_refused_on_another_models_run(hspmoe_runs, tmp_path, capsys):
    write, ours, _ = hspmoe_runs
    _, runs = write(tmp_path, vars(reference_namespace("clipclap_stage_A")), model_name="clipclap")
    err = refused(capsys, runs, *FAR_OFF_RAW, "--reproduce_original")
    assert "--eval_semantic_far_adapted_weight changes hspmoe (--hspmoe) runs" in err and "clipclap" in err


def move_stage_b_checkpoint(run_b, *epochs):
    """Stage B's checkpoint of epoch 1 (0-based, stage A's choice) copied to each of `epochs`, then removed."""
    ckpt = run_b / "checkpoints" / "ClipClap_model_score_ckpt_1.pt"
    for epoch in epochs:
        shutil.copy(ckpt, ckpt.with_name(f"ClipClap_model_score_ckpt_{epoch}.pt"))
    ckpt.unlink()


def test_a_missing_stage_b_checkpoint_is_an_error_on_a_project_run(hspmoe_runs, tmp_path, capsys):
    write, ours, _ = hspmoe_runs
    _, runs = write(tmp_path, {**vars(ours), "reproduce_original": False})
    move_stage_b_checkpoint(runs[1], 0)
    err = refused(capsys, runs)
    assert "ClipClap_model_score_ckpt_1.pt is missing" in err and "at least 2 epochs" in err


def test_the_original_falls_back_to_the_latest_stage_b_checkpoint(hspmoe_runs, tmp_path, capsys):
    """As HSP-MoE's code: the checkpoint with the largest epoch (10, not 9 as the names sort), with a warning."""
    write, ours, root = hspmoe_runs
    models, runs = write(tmp_path, vars(reference_namespace("hspmoe_full_stage_A")))
    move_stage_b_checkpoint(runs[1], 0, 9, 10)
    evaluate(runs)
    out = printed(capsys)
    got = assert_direct_evaluation(runs[1] / "evaluation.json", out, ours, root, models)
    assert got["stage_B"].endswith("ClipClap_model_score_ckpt_10.pt")
    assert "ckpt_1.pt is missing" in out.stdout and "evaluating the latest stage-2 checkpoint" in out.stdout
