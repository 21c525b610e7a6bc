"""run_scripts/: the scripts are those src/recipes.py writes and print its commands (dry run), those
commands equal the original's (../shared/spec/RUN_SCRIPTS.md) flag by flag with defaults filled in, every UCF script's
commands run to the end on the tiny benchmark, one script runs for real in bash, and the evaluation
lines find original-format run folders under their original names."""
import argparse
import importlib.util
import json
import os
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REFERENCE, ROOT, run_cli
from src.args import finalize_main_args, get_eval_parser, get_main_parser
from src.recipes import DATASET_TAGS, METHODS, cell_commands, exp_names, script_commands, script_text, scripts, write_scripts

SPEC = ROOT.parent / "shared" / "spec" / "RUN_SCRIPTS.md"
SMOKE = ["--epochs", "1", "--n_batches", "2", "--bs", "32", "--syn_num", "20", "--cls_epochs", "2", "--device", "cpu"]
PROJECT_ONLY = {"resume", "overwrite"}      # main.py fields the project's commands add


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


def test_the_scripts_on_disk_are_the_generated_ones():
    """`python -m src.recipes --write_scripts` would write nothing: every script is its row's text, executable."""
    for name, text in scripts().items():
        path = ROOT / "run_scripts" / name
        assert path.read_text() == text, f"{name} is stale: run python -m src.recipes --write_scripts"
        assert os.access(path, os.X_OK), name


def test_write_scripts_rewrites_what_differs_and_removes_only_generated_scripts_of_gone_rows(tmp_path):
    import shutil
    folder = tmp_path / "run_scripts"
    shutil.copytree(ROOT / "run_scripts", folder)
    gone = folder / "UCF-GZSL" / "gone.sh"           # a row that no longer exists
    gone.write_text(script_text("ale", "UCF").replace("ALE", "Gone").replace("UCF ale", "UCF gone"))
    mine = folder / "UCF-GZSL" / "mine.sh"           # written by hand: kept
    mine.write_text("#!/usr/bin/env bash\necho mine\n")
    edited, not_executable = folder / "UCF-GZSL" / "avca.sh", folder / "VGGSound-GZSL" / "sje.sh"
    edited.write_text(edited.read_text() + "echo edited\n")
    not_executable.chmod(0o644)
    assert write_scripts(folder) == ([edited, not_executable], [gone])
    assert mine.is_file() and not gone.exists() and edited.read_text() == script_text("avca", "UCF")
    assert os.access(not_executable, os.X_OK) and not list(folder.rglob("*.tmp"))
    assert write_scripts(folder) == ([], [])
    assert run_cli("-m", "src.recipes", "--write_scripts").stdout == "run_scripts/ is up to date\n"


@pytest.mark.parametrize("dataset", list(DATASET_TAGS))
@pytest.mark.parametrize("method", list(METHODS))
def test_script_prints_the_table_commands(dataset, method):
    got = dry_run(dataset, method, "--epochs", "2", "--exp name")
    want = [[os.path.basename(c[1]), *c[2:]] for c in script_commands(method, dataset, "/data dir", ["--epochs", "2", "--exp name"])]
    assert got == want and len(got) == 3 * len(METHODS[method].script_families)


# -- against the original's commands (../shared/spec/RUN_SCRIPTS.md) --------------------------------------------

def spec_commands():
    """{(kind, dataset, run name or method/family): argv} of the 132 commands of ../shared/spec/RUN_SCRIPTS.md."""
    if not SPEC.is_file():
        pytest.skip("../shared/spec is absent")
    out, dataset = {}, None
    for line in SPEC.read_text().splitlines():
        if line.startswith("## "):
            dataset = line[3:].strip()
        row = re.match(r"\| (\S+) \| (main|cls) \| `([^`]+)` \| `([^`]+)` \|$", line)
        if row and dataset in DATASET_TAGS:
            method, family, name, flags = row.groups()
            method = method.replace("-", "")
            if name == "(none)":       # f-VAEGAN-D2 ran in its own script: the project's names and flag
                name, flags = exp_names(method, dataset, family)[0], flags + " --fvaegan"
            argv = ["--root_dir", f"/data dir/{dataset}", *flags.split()]
            out[("main", dataset, name)] = argv + ["--exp_name", name]
            full = name.replace("_val_", "_all_")
            out[("main", dataset, full)] = argv + ["--retrain_all", "--save_checkpoints", "--exp_name", full]
        ev = re.match(r"- `(--load_path_stage_A .*)`$", line)
        if ev and dataset in DATASET_TAGS:
            argv = ev.group(1).split()
            out[("eval", dataset, argv[1])] = argv
    return out


def parsed(kind, argv) -> dict:
    if kind == "main":
        ns = vars(finalize_main_args(get_main_parser().parse_args(argv)))
        return {k: v for k, v in ns.items() if k not in PROJECT_ONLY}
    return vars(get_eval_parser().parse_args(argv))


def project_commands():
    out = {}
    for dataset in DATASET_TAGS:
        for method, m in METHODS.items():
            for cmd in dry_run(dataset, method):
                kind = "main" if cmd[0] == "main.py" else "eval"
                key = cmd[cmd.index("--exp_name") + 1] if kind == "main" else cmd[cmd.index("--load_path_stage_A") + 1]
                family = key.rsplit("_", 1)[1]
                original = family in m.original_families and (kind == "main" or m.original_evaluation)
                out[(kind, dataset, key)] = (cmd[1:], original)
    return out


def test_commands_equal_the_original_run_scripts_flag_by_flag():
    spec, ours = spec_commands(), project_commands()
    assert len(spec) == 132
    assert {k for k, (_, original) in ours.items() if original} == set(spec)
    for key, argv in spec.items():
        got, want = parsed(key[0], ours[key][0]), parsed(key[0], argv)
        assert got == want, (key, {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)})
    # what the project runs beyond the original: f-VAEGAN-D2 (cls features, evaluation lines), TCaF, ClipClap
    # the rest: the runs of the rows with the project's own run names (f-VAEGAN-D2, TCaF, ClipClap, ...)
    own = {m.run_prefix for m in METHODS.values() if not m.original_run_names}
    assert {k[2].split(f"_{DATASET_TAGS[k[1]]}_")[0] for k, (_, original) in ours.items() if not original} == \
        own | {f"runs/{p}" for p in own}        # (a prefix may hold "_": frozen_clipclap)


def test_per_dataset_hyper_parameters():
    """A few of the audit's facts, readable without the spec."""
    def flag(method, dataset, family, name):
        ns = finalize_main_args(get_main_parser().parse_args(cell_commands(method, dataset, family, "D")[0][1:]))
        return getattr(ns, name)
    assert all(flag(m, "UCF", "main", "lr_scheduler") for m in METHODS if "main" in METHODS[m].families)
    assert (flag("avca", "ActivityNet", "main", "momentum"), flag("avca", "ActivityNet", "main", "decoder_dropout"),
            flag("avca", "ActivityNet", "cls", "additional_dropout")) == (0.99, 0.2, 0.1)
    assert (flag("avca", "VGGSound", "main", "bs"), flag("avca", "VGGSound", "cls", "bs")) == (64, 256)
    assert flag("ale", "VGGSound", "cls", "dropout_baselines") == 0.0 == flag("cjme", "VGGSound", "main", "dropout_baselines")
    assert (flag("fvaegan", "UCF", "main", "lr"), flag("fvaegan", "UCF", "main", "bs"),
            flag("fvaegan", "VGGSound", "main", "syn_num")) == (0.001, 64, 10000)
    assert exp_names("avca", "VGGSound", "cls") == ("attention_vgg_val_cls", "attention_vgg_all_cls")


def test_fresh_runs_overwrite_instead_of_resuming():
    cmds = dry_run("UCF", "ale", AVGZSL_FRESH="1")
    trainings = [c for c in cmds if c[0] == "main.py"]
    assert all("--overwrite" in c and "--resume" not in c for c in trainings) and len(trainings) == 4


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
    assert out.count("GZSL performance=") == len(METHODS[method].script_families), out
    for fam in METHODS[method].script_families:
        val, full = exp_names(method, "UCF", fam)
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


def test_evaluation_lines_find_original_run_folders_under_their_names(tmp_path):
    """The authors' released models (model.zip) unpacked under runs/ with the original names, in the
    original's format (args.pkl with its fields only, pathlib paths, `module.` keys), are evaluated by
    the VGGSound AVCA script's own evaluation line."""
    from src.models import create_model
    from src.synthetic import generate
    ref = REFERENCE / "original_args_namespace.json"
    if not ref.is_file():
        pytest.skip("../shared/reference is absent")
    fields = next(iter(json.loads(ref.read_text()).values()))
    work = tmp_path / "repo"
    generate(work / "avgzsl_benchmark_datasets", "VGGSound", preset="tiny", families=("main",), seed=1)
    evaluate = [c for c in dry_run("VGGSound", "avca", AVGZSL_DATA="avgzsl_benchmark_datasets")
                if c[0] == "get_evaluation.py" and c[2].endswith("_main")]
    assert evaluate[0][1:5] == ["--load_path_stage_A", "runs/attention_vgg_val_main",
                                "--load_path_stage_B", "runs/attention_vgg_all_main"]
    for train in (c for c in dry_run("VGGSound", "avca", AVGZSL_DATA="avgzsl_benchmark_datasets")
                  if c[0] == "main.py" and "main_features" in c):
        ours = finalize_main_args(get_main_parser().parse_args(train[1:]))
        ns = argparse.Namespace(**{k: getattr(ours, k) for k in fields})
        ns.root_dir, ns.feature_extraction_method, ns.dump_path = (Path(ns.root_dir), Path(ns.feature_extraction_method),
                                                                   Path("."))
        ns.device = "cuda"
        run = work / "runs" / ns.exp_name
        (run / "checkpoints").mkdir(parents=True)
        with open(run / "args.pkl", "wb") as f:
            pickle.dump(ns, f)
        torch.manual_seed(len(ns.exp_name))
        model = create_model("avca", ours)
        state = {"epoch": 2, "model": {f"module.{k}": v for k, v in model.state_dict().items()},
                 "optimizer": {}, "metric": "score"}
        torch.save(state, run / ("checkpoints/AVCA_score_ckpt_1.pt" if ns.retrain_all else "AVCA_score.pt"))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        load_cli("get_evaluation")([*evaluate[0][1:], "--device", "cpu"])
    finally:
        os.chdir(cwd)
    got = json.loads((work / "runs" / "attention_vgg_all_main" / "evaluation.json").read_text())
    assert got["epoch"] == 2 and got["pairing"] == "original" and got["dataset"] == "VGGSound"
    assert 0 <= got["hm"] <= 1 and got["stage_B"].endswith("AVCA_score_ckpt_1.pt")


def test_training_lines_never_overwrite_released_models(tmp_path):
    """`--resume --overwrite` (the scripts' training lines) refuses a run folder of the original code."""
    from src.runs import RunFolder
    from src.errors import UserError
    run = tmp_path / "runs" / "attention_ucf_val_main"
    run.mkdir(parents=True)
    with open(run / "args.pkl", "wb") as f:
        pickle.dump(argparse.Namespace(AVCA=True, root_dir=Path("x")), f)
    (run / "AVCA_score.pt").write_bytes(b"released")
    with pytest.raises(UserError, match="original code"):
        RunFolder(run).check_free(resume=True, overwrite=True)
    assert (run / "AVCA_score.pt").read_bytes() == b"released"
