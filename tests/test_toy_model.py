"""Adding a method is its file, one import line and a row in the methods table: here a toy model
is registered in the test itself, and the registry-parametrised checks of
tests/test_models_registry.py, a training run (main.py's composition, in-process) and
get_evaluation's two-stage evaluation all take it without any other file knowing it."""
import inspect
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import test_models_registry as checks
from conftest import main_args
from src.args import finalize_main_args, get_eval_parser, get_main_parser
from src.models import registry
from src.models.base import GZSLModel, distance_matrix, loss_and_parts


class Toy(GZSLModel):
    """A linear map of concat(audio, video) into the word space; one mode."""

    def __init__(self, *, input_size_audio: int, input_size_video: int):
        super().__init__()
        self.proj = nn.Linear(input_size_audio + input_size_video, 300)

    def embed(self, audio, video):
        return self.proj(torch.cat((audio, video), dim=1))

    def training_step(self, batch):
        x = self.embed(batch.audio, batch.video)
        return loss_and_parts({"mse": F.mse_loss(x, batch.text),
                               "triplet": F.triplet_margin_loss(x, batch.text, batch.text_neg)})

    def eval_distances(self, audio, video, text, squared=False):
        return {"both": distance_matrix(self.embed(audio, video), text, squared)}


@pytest.fixture
def toy():
    registry.register_model("toy", flag="toy", class_name="Toy", help="a toy model (tests only)")(
        lambda args: Toy(input_size_audio=args.input_size_audio, input_size_video=args.input_size_video))
    try:
        yield "toy"
    finally:
        del registry._REGISTRY["toy"]


def test_a_model_registered_here_is_checked_trained_and_evaluated(toy, tiny_root, tmp_path):
    from src.compose import train
    from src.runs import RunFolder, load_checkpoint, load_model_state
    from src.two_stage import evaluate_runs

    parametrised = [f for n, f in inspect.getmembers(checks, inspect.isfunction)
                    if n.startswith("test_") and list(inspect.signature(f).parameters) == ["name"]]
    assert len(parametrised) >= 6
    for check in parametrised:          # the checks every registered model gets
        check(toy)

    for exp, extra in (("val", []), ("all", ["--retrain_all", "--save_checkpoints"])):
        args = finalize_main_args(get_main_parser().parse_args(
            list(map(str, main_args(tiny_root, tmp_path, exp, "--toy", "--lr", "0.01", *extra, epochs=2, n_batches=5)))))
        assert args.model_name == "toy"
        train(args)
    result = evaluate_runs(get_eval_parser().parse_args(
        ["--load_path_stage_A", str(tmp_path / "runs" / "val"), "--load_path_stage_B", str(tmp_path / "runs" / "all"),
         "--device", "cpu"]))
    assert result["model"] == "toy" and result["mode"] == "both" and 0 <= result["hm"] <= 1
    rows = [json.loads(l) for l in (tmp_path / "runs" / "val" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and set(rows[0]["train"]) == {"loss", "mse", "triplet"}
    # its checkpoints load by name into a model built from the run's flags
    path = RunFolder(tmp_path / "runs" / "val").best("Toy", "score")
    model = registry.create_model("toy", RunFolder(tmp_path / "runs" / "val").load_args())
    load_model_state(model, load_checkpoint(path)["model"], path)
