"""run_scripts/: the 24 scripts print the commands of src/reproduce.py's table (dry run), every UCF
script's commands run to the end on the tiny benchmark, and one script runs for real in bash."""
import importlib.util
import json
import os
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT
from src.reproduce import DATASET_TAGS, FAMILIES, METHODS, cell_commands

SMOKE = ["--epochs", "1", "--n_batches", "2", "--bs", "32", "--syn_num", "20", "--cls_epochs", "2", "--device", "cpu"]


def script(dataset, method):
    return ROOT / "run_scripts" / f"{dataset}-GZSL" / f"{METHODS[method].script}.sh"


def dry_run(dataset, method, *extra, **env):
    proc = subprocess.run(["bash", str(script(dataset, method)), *extra], capture_output=True, text=True, check=True,
                          env={**os.environ, "AVGZSL_DRY_RUN": "1", "AVGZSL_DATA": "/data dir", "PYTHON": "python3",
                               **env})
    cmds = [shlex.split(line) for line in proc.stdout.splitlines()]
    assert all(c[0] == "python3" for c in cmds)
    return [[os.path.basename(c[1]), *c[2:]] for c in cmds]      # [script name, args...]


def test_every_script_exists_and_nothing_else():
    found = {p.relative_to(ROOT / "run_scripts").as_posix() for p in (ROOT / "run_scripts").glob("*-GZSL/*.sh")}
    assert found == {f"{d}-GZSL/{m.script}.sh" for d in DATASET_TAGS for m in METHODS.values()}


@pytest.mark.parametrize("dataset", list(DATASET_TAGS))
@pytest.mark.parametrize("method", list(METHODS))
def test_script_commands_equal_the_reproduction_table(dataset, method):
    got = dry_run(dataset, method, "--epochs", "2")
    want = [cmd for fam in FAMILIES for cmd in cell_commands(method, dataset, fam, "/data dir", extra=["--epochs", "2"])]
    assert got == want


def test_fresh_runs_overwrite_instead_of_resuming():
    cmds = dry_run("UCF", "ale", AVGZSL_FRESH="1")
    trainings = [c for c in cmds if c[0] == "main.py"]
    assert all("--overwrite" in c and "--resume" not in c for c in trainings) and len(trainings) == 4


def test_seed_flags():
    """A few facts of the table (the rest is checked against the original's checkpoints' keys)."""
    avca = {fam: cell_commands("avca", "UCF", fam, "D")[0] for fam in FAMILIES}
    assert avca["main"][avca["main"].index("--momentum") + 1] == "0.1"
    assert avca["cls"][avca["cls"].index("--momentum") + 1] == "0.99"
    assert "--exp_name" in avca["main"] and "attention_ucf_val_main" in avca["main"]
    for m in ("ale", "sje", "devise", "apn"):
        assert "--norm_inputs" in cell_commands(m, "UCF", "cls", "D")[0]
        assert "--norm_inputs" not in cell_commands(m, "UCF", "main", "D")[0]
    s1, s2, ev = cell_commands("cjme", "VGGSound", "cls", "D")
    assert "--retrain_all" in s2 and "--save_checkpoints" in s2 and "--retrain_all" not in s1
    assert ev[:5] == ["get_evaluation.py", "--load_path_stage_A", "runs/cjme_vggsound_val_cls",
                      "--load_path_stage_B", "runs/cjme_vggsound_all_cls"]
    assert ev[-1] == "--cjme" and cell_commands("avgzslnet", "UCF", "main", "D")[2][-2:] == ["--dataset_name", "UCF"]
    for cmd in (s1, s2):
        i = cmd.index("--input_size_video")
        assert cmd[i + 1] == "4096" and cmd[cmd.index("--epochs") + 1] == "50" and cmd[cmd.index("--lr") + 1] == "0.001"


def load_cli(name):
    spec = importlib.util.spec_from_file_location(f"cli_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("method", list(METHODS))
def test_ucf_script_commands_run_to_the_end(method, tiny_root, tmp_path, monkeypatch, capsys):
    """Both families, both stages and the evaluation of each UCF script (in-process, to skip 48
    interpreter starts)."""
    from src.models import list_models
    if method not in list_models():
        pytest.skip(f"{method} is not registered")
    monkeypatch.chdir(tmp_path)
    clis = {"main.py": load_cli("main"), "get_evaluation.py": load_cli("get_evaluation")}
    for cmd in dry_run("UCF", method, *SMOKE, AVGZSL_DATA=str(tiny_root.parent)):
        clis[cmd[0]](cmd[1:])
    out = capsys.readouterr().out
    assert out.count("GZSL performance=") == 2, out
    for fam in FAMILIES:
        val, full = (f"{METHODS[method].exp_prefix}_ucf_{s}_{fam}" for s in ("val", "all"))
        result = json.loads((tmp_path / "runs" / full / "evaluation.json").read_text())
        assert result["epoch"] == 1 and result["model"] == method


def test_a_script_runs_in_bash_and_continues_finished_runs(tiny_root, tmp_path, monkeypatch):
    """Runs made first (in-process, fast), then the script in bash: it continues them (--resume,
    nothing left to do) instead of failing on the existing run folders, and evaluates."""
    monkeypatch.chdir(tmp_path)
    main = load_cli("main")
    for cmd in dry_run("UCF", "devise", *SMOKE, AVGZSL_DATA=str(tiny_root.parent)):
        if cmd[0] == "main.py":
            main(cmd[1:])
    env = {**os.environ, "AVGZSL_DATA": str(tiny_root.parent), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(script("UCF", "devise")), *SMOKE], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("GZSL performance=") == 2 and proc.stdout.count("resumed") == 4, proc.stdout
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == \
        ["devise_ucf_all_cls", "devise_ucf_all_main", "devise_ucf_val_cls", "devise_ucf_val_main"]
