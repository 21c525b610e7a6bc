"""Adding a method is the README's four steps, done here inside the test: the model file (a toy model,
its builder registered with a flag of its own), the registration the import line would run, a row
in the methods table, and its generated run script. The registry-parametrised checks of
tests/test_models_registry.py take it; its script's commands train both stages and evaluate it
(main.py's and get_evaluation.py's entry points, in-process) without any other file knowing it."""
import inspect
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import test_models_registry as checks
from conftest import ROOT
from test_run_scripts import load_cli
from src import recipes
from src.args import evaluation_overrides, get_eval_parser, get_main_parser
from src.models import registry
from src.models.base import GZSLModel, distance_matrix, loss_and_parts
from src.models.flags import positive_float
from src.recipes import Method

class Toy(GZSLModel):
    """A linear map of concat(audio, video) into the word space, scaled; one mode."""

    def __init__(self, *, input_size_audio: int, input_size_video: int, scale: float = 1.0):
        super().__init__()
        self.proj = nn.Linear(input_size_audio + input_size_video, 300)
        self.scale = scale

    def embed(self, audio, video):
        return self.scale * self.proj(torch.cat((audio, video), dim=1))

    def training_step(self, batch):
        x = self.embed(batch.audio, batch.video)
        return loss_and_parts({"mse": F.mse_loss(x, batch.text),
                               "triplet": F.triplet_margin_loss(x, batch.text, batch.text_neg)})

    def eval_distances(self, audio, video, text, squared=False):
        return {"both": distance_matrix(self.embed(audio, video), text, squared)}


def add_toy_arguments(parser, entry_point):
    """The toy's own flag: main.py's, and get_evaluation.py's to replace the stage-2 run's value."""
    g = parser.add_argument_group("Toy (--toy)")
    if entry_point == "main.py":
        g.add_argument("--toy_scale", type=positive_float, default=1.0, help="scale of the toy's embeddings")
    else:
        g.add_argument("--toy_scale", type=positive_float, default=None, help="default: the stage-2 run's")


def build_toy(args) -> Toy:
    return Toy(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video, scale=args.toy_scale)


# its row: main features only (fewer trainings), its own flag in its run scripts
TOY_ROW = Method("Toy", "toy", "toy", "--toy", "--toy_scale 0.5", original_families=("main",))


@pytest.fixture
def toy(monkeypatch):
    registry.register_model("toy", flag="toy", class_name="Toy", help="a toy model (tests only)",
                            add_arguments=add_toy_arguments)(build_toy)
    monkeypatch.setitem(recipes.METHODS, "toy", TOY_ROW)
    try:
        yield "toy"
    finally:
        del registry._REGISTRY["toy"]
    assert "--toy" not in get_main_parser().format_help() and "--toy" not in get_eval_parser().format_help()


def test_a_model_registered_here_is_checked_trained_and_evaluated(toy, tiny_root, tmp_path, monkeypatch):
    from src.runs import RunFolder, load_checkpoint, load_model_state

    # its flags: in both entry points' parsers and --help; get_evaluation.py's replaces the run's value
    assert get_main_parser().parse_args(["--root_dir", "x", "--toy", "--toy_scale", "2"]).toy_scale == 2.0
    assert get_eval_parser().parse_args(["--load_path_stage_A", "a", "--load_path_stage_B", "b",
                                         "--toy_scale", "2"]).toy_scale == 2.0
    assert "--toy_scale" in get_main_parser().format_help() and "--toy_scale" in get_eval_parser().format_help()
    assert "toy_scale" in evaluation_overrides()

    parametrised = [f for n, f in inspect.getmembers(checks, inspect.isfunction)
                    if n.startswith("test_") and list(inspect.signature(f).parameters) == ["name"]]
    assert len(parametrised) >= 6
    for check in parametrised:          # the checks every registered model gets
        check(toy)

    # its run scripts, written into a copy of run_scripts/: the others unchanged, its own beside them
    folder = tmp_path / "repo" / "run_scripts"
    shutil.copytree(ROOT / "run_scripts", folder)
    written, removed = recipes.write_scripts(folder)
    assert sorted(p.relative_to(folder).as_posix() for p in written) == \
        sorted(f"{d}-GZSL/toy.sh" for d in recipes.DATASET_TAGS) and removed == []
    script = folder / "UCF-GZSL" / "toy.sh"
    assert os.access(script, os.X_OK) and script.read_text().endswith('run_gzsl UCF toy "$@"\n')

    # its dry run: common.sh asks src.recipes, run by an interpreter that knows the toy's row
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      f"from src.recipes import METHODS, Method, main\nMETHODS['toy'] = {TOY_ROW!r}\n"
                      f"assert sys.argv[1:3] == ['-m', 'src.recipes']\nsys.exit(main(sys.argv[3:]))\n")
    python.chmod(0o755)
    smoke = ["--epochs", "2", "--n_batches", "5", "--bs", "64", "--lr", "0.01", "--device", "cpu"]
    proc = subprocess.run(["bash", str(script), *smoke], capture_output=True, text=True, check=True,
                          env={**os.environ, "AVGZSL_DRY_RUN": "1", "AVGZSL_DATA": str(tiny_root.parent),
                               "PYTHON": str(python)})
    cmds = [shlex.split(line) for line in proc.stdout.splitlines()]
    assert [os.path.basename(c[1]) for c in cmds] == ["main.py", "main.py", "get_evaluation.py"], proc.stdout
    assert all("--toy" in c for c in cmds) and cmds[0][cmds[0].index("--toy_scale") + 1] == "0.5"

    # its commands: both stages trained, then evaluated (in-process: the toy is registered here)
    monkeypatch.chdir(tmp_path)
    clis = {"main.py": load_cli("main"), "get_evaluation.py": load_cli("get_evaluation")}
    for cmd in cmds:
        clis[os.path.basename(cmd[1])](cmd[2:] + (["--device", "cpu"] if cmd[1].endswith("get_evaluation.py") else []))
    val, full = (tmp_path / "runs" / name for name in recipes.exp_names("toy", "UCF", "main"))
    result = json.loads((full / "evaluation.json").read_text())
    assert result["model"] == "toy" and result["mode"] == "both" and 0 <= result["hm"] <= 1
    rows = [json.loads(l) for l in (val / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and set(rows[0]["train"]) == {"loss", "mse", "triplet"}
    # its checkpoints load by name into a model built from the run's flags, its own included
    args = RunFolder(val).load_args()
    assert args.model_name == "toy" and args.toy_scale == 0.5
    path = RunFolder(val).best("Toy", "score")
    model = registry.create_model("toy", args)
    load_model_state(model, load_checkpoint(path)["model"], path)
    assert model.scale == 0.5
