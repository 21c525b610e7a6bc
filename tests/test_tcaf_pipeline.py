"""TCaF in the toolkit: its best configurations as data (docs/tcaf.md §9), resume, original-format TCaF
run folders, mismatched inputs (its two stages and evaluation beating chance: tests/test_end_to_end.py)."""
import re

import pytest

from conftest import ROOT, run_cli
from original_runs import reference_namespace, assert_direct_evaluation, parsed, write_original_runs
from src.recipes import cell_commands

SPEC = ROOT.parent / "shared" / "spec" / "TCAF.md"
DATASETS = {"UCF": "UCF", "ActivityNet": "ActivityNet", "VGGSound": "VGGSound"}
# small enough for a test, the rest as the best configurations
SMALL = ["--embeddings_hidden_size", "64", "--transformer_depth", "2", "--transformer_heads", "2",
         "--transformer_dim_head", "32", "--decoder_hidden_size", "64", "--epochs", "5", "--n_batches", "20",
         "--bs", "32", "--lr", "0.001", "--device", "cpu"]


@pytest.fixture(scope="module")
def temporal_root(tmp_path_factory):
    from src.synthetic import generate
    return generate(tmp_path_factory.mktemp("temporal"), "UCF", preset="tiny", seed=0, noise=0.2, spread=0.5,
                    temporal=True)



def test_the_recipes_hold_tcaf_md_best_configurations():
    if not SPEC.is_file():
        pytest.skip("../shared/spec is absent")
    rows = re.findall(r"^\| (main|cls) (UCF|ActivityNet|VGGSound) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \| "
                      r"(\d+) × (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\de.-]+) \| (yes|no) \| (max|fixed) \|$",
                      SPEC.read_text(), flags=re.M)
    assert len(rows) == 6
    for fam, ds, hidden, e_drop, d_drop, a_drop, depth, heads, dim_head, t_drop, t_e_drop, lr, sched, mode in rows:
        a = parsed(cell_commands("tcaf", ds, f"{fam}_temporal", "D")[0][1:])
        assert (a.model_name, a.bs, a.n_batches, a.epochs, a.seed) == ("tcaf", 64, 300, 50, 42)
        assert (a.embeddings_hidden_size, a.embedding_dropout, a.decoder_dropout, a.additional_dropout) == \
            (int(hidden), float(e_drop), float(d_drop), float(a_drop))
        assert (a.transformer_depth, a.transformer_heads, a.transformer_dim_head, a.transformer_dropout,
                a.transformer_embedding_dropout) == (int(depth), int(heads), int(dim_head), float(t_drop), float(t_e_drop))
        assert (a.lr, a.lr_scheduler, a.batch_seqlen_train, a.batch_seqlen_test) == (float(lr), sched == "yes", mode, mode)
        assert str(a.feature_extraction_method) == f"{fam}_features_non_averaged"
        assert (a.decoder_hidden_size, a.batch_seqlen_train_maxlen, a.batch_seqlen_test_maxlen) == (512, 60, 300)



def test_resume_equals_an_uninterrupted_run(temporal_root, tmp_path):
    from src.compose import train
    from test_train import metrics, same_state
    base = cell_commands("tcaf", "UCF", "cls_temporal", temporal_root.parent)[0][1:]
    base = base[:base.index("--exp_name")] + SMALL + ["--dump_path", str(tmp_path)]
    train(parsed(base + ["--exp_name", "whole"]))
    train(parsed(base + ["--exp_name", "cut", "--epochs", "3"]))
    train(parsed(base + ["--exp_name", "cut", "--resume"]))
    whole, cut = tmp_path / "runs" / "whole", tmp_path / "runs" / "cut"
    assert metrics(whole) == metrics(cut) and len(metrics(cut)) == 5
    assert same_state(whole / "checkpoints" / "resume_state.pt", cut / "checkpoints" / "resume_state.pt")


def test_an_original_tcaf_run_folder_evaluates_with_the_original_pairing(temporal_root, tmp_path):
    """Run folders as the original TCaF wrote them: timestamped names, its Namespace (pathlib paths,
    no field of this project), checkpoints with both names of the embedding module; get_evaluation
    with a --cfg gives the numbers of a direct evaluation with the original word-vector pairing."""
    base = cell_commands("tcaf", "UCF", "cls_temporal", temporal_root.parent)[0][1:]
    base = base[:base.index("--exp_name")] + SMALL
    ours = parsed(base)
    # exactly the fields and value types of TCaF's own args.pkl (the reference), with this run's values
    original = vars(reference_namespace("tcaf_cls_stage_B"))
    fields = {k: type(v)(getattr(ours, k)) if isinstance(v, (bool, int, float, str)) and hasattr(ours, k) else v
              for k, v in original.items()}

    def both_embedding_names(state):
        assert any(k.startswith("module.position_encoder_block.") for k in state) and \
            any(k.startswith("module.audiovisual_embeddings.") for k in state)
    models = write_original_runs(tmp_path, "tcaf", fields, temporal_root, "tcaf", ours,
                                 "Multimodal_Sequence_Transformer", epoch=2, check_state=both_embedding_names)
    cfg = tmp_path / "best.yaml"
    cfg.write_text("new_model_sequence: true\nbatch_seqlen_test: max\nbatch_seqlen_test_maxlen: 300\neval_bs: 64\n"
                   "transformer_depth: 2\neval_name: Attention\n")
    runs = sorted((tmp_path / "runs").iterdir())
    proc = run_cli("get_evaluation.py", "--cfg", cfg, "--load_path_stage_A", runs[0], "--load_path_stage_B", runs[1],
                   "--dataset_name", "UCF", "--root_dir", temporal_root, "--device", "cpu")
    got = assert_direct_evaluation(runs[1] / "Attention.json", proc, ours, temporal_root, models)
    assert got["epoch"] == 2 and got["model"] == "tcaf"


def test_features_of_the_other_kind_are_refused(temporal_root, tmp_path):
    base = cell_commands("tcaf", "UCF", "cls_temporal", temporal_root.parent)[0][1:]
    base = base[:base.index("--exp_name")] + SMALL + ["--dump_path", tmp_path, "--exp_name", "x"]
    i = base.index("--feature_extraction_method")
    averaged = base[:i + 1] + ["cls_features"] + base[i + 2:]
    proc = run_cli("main.py", *averaged, check=False)
    assert proc.returncode == 2 and "*_non_averaged" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("main.py", "--root_dir", temporal_root, "--dataset_name", "UCF", "--ale", "--feature_extraction_method",
                   "cls_features_non_averaged", "--input_size_audio", "128", "--input_size_video", "4096",
                   "--dump_path", tmp_path, "--exp_name", "y", check=False)
    assert proc.returncode == 2 and "token sequences" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
