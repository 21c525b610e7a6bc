"""TCaF's and ClipClap's users at home: their own config files, unchanged, with their READMEs'
command lines (TCaF: `main.py --cfg CFG --root_dir ROOT --log_dir LOG --dataset_name D --run all`,
then `get_evaluation.py --cfg CFG --load_path_stage_A .. --load_path_stage_B .. --dataset_name D
--root_dir ROOT`; ClipClap: the same with its config/clipclap.yaml and --use_wavcaps_embeddings True
--modality both --word_embeddings both), on a tiny synthetic benchmark for two epochs. The files are
read from ../shared/reference/original_configs (skipped when absent)."""
import re
from pathlib import Path

import pytest
import yaml

from conftest import REFERENCE, run_cli
from original_runs import LINE

CONFIGS = REFERENCE / "original_configs"
# (config, its codebase's default.yaml, --dataset_name, data family, the model's run-folder class name)
TCAF_DATASETS = {"ucf": "UCF", "anet": "ActivityNet", "vggsound": "VGGSound"}
CASES = [(f"tcaf/best/best_{fam}/best_{ds}.yaml", "tcaf/default.yaml", name, "tcaf", "Multimodal_Sequence_Transformer")
         for fam in ("cls", "main") for ds, name in TCAF_DATASETS.items()] + \
        [("clipclap/clipclap.yaml", "clipclap/default.yaml", "UCF", "clipclap", "ClipClap_model")]
CLIPCLAP_FLAGS = ["--use_wavcaps_embeddings", "True", "--modality", "both", "--word_embeddings", "both"]
# What differs from the originals' parse, by design: the device (here: CUDA when there is one,
# the originals' default.yaml says cuda), the run's name (here a time stamp when none is given).
NOT_COMPARED = {"device", "exp_name"}


def config_or_skip(rel: str) -> Path:
    path = CONFIGS / rel
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory):
    """Tiny benchmarks of the three datasets: TCaF's temporal families and, under ClipClap/, CLIP/CLAP's."""
    from src.synthetic import generate
    out = tmp_path_factory.mktemp("configs")
    for dataset in TCAF_DATASETS.values():
        generate(out, dataset, preset="tiny", seed=0, noise=0.2, spread=0.5,
                 families=("main_temporal", "cls_temporal", "clip"))
    return out


def readme_command(cfg: Path, dataset: str, model: str, root: Path, log_dir: Path):
    cmd = ["--cfg", cfg, "--root_dir", root, "--log_dir", log_dir, "--dataset_name", dataset]
    if model == "clipclap":     # ClipClap's README: its epochs and lr on the command line
        cmd += ["--epochs", "20", "--lr", "0.00007", *CLIPCLAP_FLAGS]
    return cmd + ["--run", "all"]


def data_root(benchmarks: Path, dataset: str, model: str) -> Path:
    return benchmarks / "ClipClap" / dataset if model == "clipclap" else benchmarks / dataset


def expected_values(cfg: Path, default: Path, command) -> dict:
    """The originals' parse: default.yaml, then the config, then the command line."""
    values = {**yaml.safe_load(default.read_text()), **yaml.safe_load(cfg.read_text())}
    flags = [str(a) for a in command]
    for i, a in enumerate(flags):
        if a.startswith("--") and a != "--cfg":
            values[a[2:]] = flags[i + 1] if i + 1 < len(flags) and not flags[i + 1].startswith("--") else True
    return values


def same(ours, theirs) -> bool:
    if isinstance(ours, Path):
        return str(ours) == str(theirs)
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return str(ours).lower() == str(theirs).lower()
    if isinstance(ours, (int, float)) and not isinstance(theirs, bool):
        return float(ours) == float(theirs)
    return str(ours) == str(theirs)


@pytest.mark.parametrize("rel,default,dataset,model,class_name", CASES, ids=[c[0] for c in CASES])
def test_the_parsed_values_are_the_originals(rel, default, dataset, model, class_name, tmp_path):
    """Every field of default.yaml + the config + the README's command line, as this main.py parses
    it (before it fills what depends on the data), equals the original's value; the model is the
    one the original code builds."""
    from src.args import finalize_main_args, get_main_parser, parse_with_config
    cfg = config_or_skip(rel)
    command = readme_command(cfg, dataset, model, tmp_path / dataset, tmp_path / "logs")
    args, given = parse_with_config(get_main_parser, list(map(str, command)))
    want = expected_values(cfg, config_or_skip(default), command)
    wrong = {k: (getattr(args, k), v) for k, v in want.items()
             if k not in NOT_COMPARED | {"cfg", "run"} and not same(getattr(args, k), v)}
    assert not wrong
    assert finalize_main_args(args, given).model_name == model


@pytest.mark.parametrize("rel,default,dataset,model,class_name", CASES, ids=[c[0] for c in CASES])
def test_readme_commands_train_and_evaluate(rel, default, dataset, model, class_name, benchmarks, tmp_path):
    cfg = config_or_skip(rel)
    root, logs = data_root(benchmarks, dataset, model), tmp_path / "logs"
    small = ["--epochs", "2", "--n_batches", "2", "--device", "cpu", "--exp_name", "cfg"]
    if "fixed" in cfg.read_text():      # ActivityNet's fixed 60 / 300 tokens: shorter, for the test's time
        small += ["--batch_seqlen_train_maxlen", "8", "--batch_seqlen_test_maxlen", "16"]
    proc = run_cli("main.py", *readme_command(cfg, dataset, model, root, logs), *small)
    line = re.search(LINE, proc.stdout)
    assert line, proc.stdout + proc.stderr
    stages = [logs / "cfg_stage_1", logs / "cfg_stage_2"]
    assert (stages[0] / f"{class_name}_score.pt").is_file() and (stages[1] / "checkpoints").is_dir()
    assert (stages[1] / "Attention.json").is_file()          # the configs' eval_name
    if model == "clipclap":   # its config's 128/4096 are TCaF's widths: the model is built for the data, and says so
        log = (stages[0] / "train.log").read_text()
        assert "--input_size_audio 128 --input_size_video 4096 do not describe" in log
        assert "--new_model_sequence comes with clipclap's configuration" in log
    test_len = small[small.index("--batch_seqlen_test_maxlen"):][:2] if "--batch_seqlen_test_maxlen" in small else []
    ev = run_cli("get_evaluation.py", "--cfg", cfg, "--load_path_stage_A", stages[0], "--load_path_stage_B",
                 stages[1], "--dataset_name", dataset, "--root_dir", root, "--device", "cpu", *test_len)
    assert re.search(LINE, ev.stdout).group(0) == line.group(0)
    # TCaF's --run eval with the two folders named
    again = run_cli("main.py", "--cfg", cfg, "--root_dir", root, "--dataset_name", dataset, "--run", "eval",
                    "--load_path_stage_A", stages[0], "--load_path_stage_B", stages[1], "--device", "cpu",
                    *(CLIPCLAP_FLAGS if model == "clipclap" else []), *test_len)
    assert re.search(LINE, again.stdout).group(0) == line.group(0)


def test_a_flag_naming_another_model_is_one_line(benchmarks, tmp_path):
    """get_evaluation.py on a ClipClap run with TCaF's flag (or TCaF's config) names both models."""
    cfg = config_or_skip("clipclap/clipclap.yaml")
    root, logs = data_root(benchmarks, "UCF", "clipclap"), tmp_path / "logs"
    run_cli("main.py", *readme_command(cfg, "UCF", "clipclap", root, logs), "--epochs", "1", "--n_batches", "2",
            "--device", "cpu", "--exp_name", "cc")
    stages = ["--load_path_stage_A", logs / "cc_stage_1", "--load_path_stage_B", logs / "cc_stage_2"]
    for wrong in (["--new_model_sequence"], ["--cfg", config_or_skip("tcaf/best/best_cls/best_ucf.yaml")]):
        proc = run_cli("get_evaluation.py", *stages, *wrong, "--device", "cpu", check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1 and "tcaf" in err and "clipclap" in err and "ClipClap_model" in err
    ok = run_cli("get_evaluation.py", *stages, "--device", "cpu")       # no flag: the run's own model
    assert re.search(LINE, ok.stdout)
