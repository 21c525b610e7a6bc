"""The small fidelity points of TCaF's and ClipClap's users: the best-score rule of the originals under
--reproduce_original, f-VAEGAN-D2's classifiers shuffled once, cuDNN's deterministic mode, and the
originals' data-describing flags (--selavi, --input_size) refused when they contradict the data."""
import math
from types import SimpleNamespace

import pytest
import torch

from src.args import finalize_main_args, get_main_parser, parse_with_config
from src.errors import UserError
from src.train import Trainer


@pytest.mark.parametrize("reproduce,best,score,improves", [
    (False, 0.0, 0.0, False), (True, 0.0, 0.0, True),            # [original defect]: `not best or score > best`
    (True, 0.0, float("nan"), False), (False, 0.2, 0.3, True), (True, 0.2, 0.2, False),
    (False, -math.inf, 0.0, True), (True, 0.3, 0.1, False)])
def test_the_best_score_rule(reproduce, best, score, improves):
    trainer = SimpleNamespace(config=SimpleNamespace(reproduce_original=reproduce), best_score=best)
    assert Trainer.improves(trainer, score) is improves


def test_fvaegan_classifiers_shuffle_once(monkeypatch):
    """One permutation for all epochs (the original permutes its data once): the batches of every
    epoch are the same, so three epochs equal one epoch run three times over the same order."""
    from src.models import fvaegan
    from src.steps import fit_classifier
    calls = []
    real = torch.randperm
    # the order is drawn by the trainer's fit_classifier, which the model is given
    monkeypatch.setattr(torch, "randperm", lambda *a, **k: calls.append(a) or real(*a, **k))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 8, generator=g), torch.arange(50) % 5
    fvaegan.train_softmax(x, y, 5, epochs=3, batch_size=16, lr=1e-3, generator=torch.Generator().manual_seed(1),
                          fit=fit_classifier)
    assert len(calls) == 1


def test_seeding_sets_cudnn_deterministic():
    from src.runtime import seed_everything
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    seed_everything(3)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def finalize(argv):
    args, given = parse_with_config(get_main_parser, argv)
    return finalize_main_args(args, given)


TCAF = ["--root_dir", "x", "--dataset_name", "UCF", "--new_model_sequence"]


@pytest.mark.parametrize("folder,selavi,ok", [
    ("main_features_non_averaged", "True", True), ("cls_features_non_averaged", "False", True),
    ("main_features_non_averaged", "False", False), ("cls_features_non_averaged", "True", False),
    ("main_features", "True", True), ("cls_features", "True", False)])
def test_selavi_must_agree_with_the_features(folder, selavi, ok):
    argv = TCAF + ["--feature_extraction_method", folder, "--selavi", selavi]
    if ok:
        assert finalize(argv).selavi is (selavi == "True")
    else:
        with pytest.raises(UserError, match="--selavi .* contradicts"):
            finalize(argv)


def test_selavi_left_to_its_default_is_not_a_claim():
    assert finalize(TCAF + ["--feature_extraction_method", "main_features_non_averaged"]).selavi is False


def test_input_size_is_refused_when_given():
    with pytest.raises(UserError, match="--input_size 7: no model reads it"):
        finalize(TCAF + ["--input_size", "7"])


@pytest.mark.parametrize("text,message", [
    ("lr: [1, 2\n", "is not valid YAML"), ("- lr\n- 0.1\n", "expected a mapping of flag names to values"),
    ("lr: fast\n", "lr: 'fast' is not a number"), ("batch_seqlen_train: long\n", "'long' is not one of max, fixed"),
    ("transformer_depht: 3\n", "unknown flags transformer_depht"), ("selavi: maybe\n", "is not a boolean")])
@pytest.mark.parametrize("entry", ["main", "eval"])
def test_a_wrong_cfg_is_one_line_naming_the_file(tmp_path, text, message, entry):
    from src.args import get_eval_parser
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    parser = get_main_parser if entry == "main" else get_eval_parser
    with pytest.raises(UserError) as err:
        parse_with_config(parser, ["--cfg", str(cfg), "--root_dir", "x", "--load_path_stage_A", "a",
                                   "--load_path_stage_B", "b"])
    assert str(cfg) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


def test_a_missing_cfg_is_refused_by_both_entry_points(tmp_path):
    from conftest import run_cli
    missing = tmp_path / "nowhere.yaml"
    for script, extra in (("main.py", ["--root_dir", tmp_path]),
                          ("get_evaluation.py", ["--load_path_stage_A", tmp_path, "--load_path_stage_B", tmp_path])):
        proc = run_cli(script, "--cfg", missing, *extra, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip() == f"{script}: error: cannot read --cfg {missing}: No such file or directory"
