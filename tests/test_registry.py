"""The registry: its order and imports, and every model's state_dict against the original's.

`../shared/reference/checkpoint_keys.json` lists the keys and shapes of each original model
under the run-script flags; published checkpoints load by name, so they must match exactly.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.args import finalize_main_args, get_main_parser, resolve_model_name
from src.models.base import GZSLModel
from src.models.registry import create_model, get_entry, list_models, model_flags

KEYS_JSON = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoint_keys.json"

MAIN = ["--input_size_audio", "512", "--input_size_video", "512"]
CLS = ["--input_size_audio", "128", "--input_size_video", "4096"]
BN = ["--embedding_use_bn", "--decoder_use_bn", "--normalize_decoder_outputs"]

# checkpoint_keys.json entry -> the command line that builds it (without --root_dir).
CONFIGS = {
    "AVCA (UCF main run-script flags: --input_size_audio 512 --input_size_video 512 "
    "--embeddings_hidden_size 512 --decoder_hidden_size 512 --depth_transformer 1 --momentum 0.1)":
        ["--AVCA", *MAIN, "--embeddings_hidden_size", "512", "--decoder_hidden_size", "512",
         "--depth_transformer", "1", "--momentum", "0.1"],
    "AVCA (UCF cls run-script flags: --input_size_audio 128 --input_size_video 4096 "
    "--embeddings_hidden_size 512 --decoder_hidden_size 512 --depth_transformer 1 --momentum 0.99)":
        ["--AVCA", *CLS, "--embeddings_hidden_size", "512", "--decoder_hidden_size", "512",
         "--depth_transformer", "1", "--momentum", "0.99"],
    "AVGZSLNet (main, 512/512: --embedding_use_bn --decoder_use_bn --normalize_decoder_outputs; "
    "--embeddings_hidden_size 1024 --decoder_hidden_size 64 by default)": [*MAIN, *BN],
    "AVGZSLNet (cls, 128/4096: --embedding_use_bn --decoder_use_bn --normalize_decoder_outputs)": [*CLS, *BN],
    "AVGZSLNet (main, 512/512, no model flag and no batch-norm flags: the argparse defaults)": [*MAIN],
    "DeviseModel (shared by --ale, --sje, --devise; main 512/512)": ["--devise", *MAIN],
    "DeviseModel (shared by --ale, --sje, --devise; cls 128/4096, --norm_inputs)": ["--devise", *CLS, "--norm_inputs"],
    "APN (--apn; main 512/512)": ["--apn", *MAIN],
    "APN (--apn --norm_inputs; cls 128/4096)": ["--apn", *CLS, "--norm_inputs"],
    "CJME (--cjme --embedding_use_bn --decoder_use_bn --normalize_decoder_outputs --dropout_baselines 0.2; "
    "main 512/512)": ["--cjme", *MAIN, *BN, "--dropout_baselines", "0.2"],
    "CJME (--cjme --embedding_use_bn --decoder_use_bn --normalize_decoder_outputs --dropout_baselines 0.2; "
    "cls 128/4096)": ["--cjme", *CLS, *BN, "--dropout_baselines", "0.2"],
}
# DeviseModel's entries hold for the three losses alike.
SAME_KEYS_AS = {"--devise": ("--ale", "--sje")}


def build(argv):
    args = finalize_main_args(get_main_parser().parse_args(["--root_dir", "x", "--dataset_name", "UCF", *argv]))
    name = resolve_model_name(args)
    return name, create_model(name, args)


@pytest.fixture(scope="module")
def reference():
    if not KEYS_JSON.exists():
        pytest.skip(f"{KEYS_JSON} is absent (../shared not laid out)")
    return json.loads(KEYS_JSON.read_text())


def test_every_reference_configuration_is_listed(reference):
    assert set(reference) == set(CONFIGS), "checkpoint_keys.json and CONFIGS disagree"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_state_dict_matches_the_original(reference, config):
    flag = CONFIGS[config][0]
    for argv in [CONFIGS[config]] + [[alt, *CONFIGS[config][1:]] for alt in SAME_KEYS_AS.get(flag, ())]:
        name, model = build(argv)
        assert get_entry(name).class_name == config.split(" ")[0]
        got = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert got == reference[config], f"{argv}: keys/shapes differ from the original's"
        # A checkpoint of that layout loads strictly, by name.
        model.load_state_dict({k: torch.zeros(s) for k, s in reference[config].items()}, strict=True)


@pytest.mark.parametrize("name", list_models())
def test_registered_model_answers_the_interface(name):
    entry = get_entry(name)
    args = finalize_main_args(get_main_parser().parse_args(["--root_dir", "x", "--dataset_name", "UCF",
                                                            *([f"--{entry.flag}"] if entry.flag else [])]))
    assert resolve_model_name(args) == name
    model = create_model(name, args)
    assert isinstance(model, GZSLModel)
    # the run folders' file names: its class's name, or the original class it extends and whose name its
    # original code kept (HSP-MoE's files are ClipClap_model_*.pt)
    assert entry.class_name in [c.__name__ for c in type(model).__mro__ if issubclass(c, GZSLModel)][:2]
    assert model.reported_mode in model.modes


# The model flags of --help and the README, in their order (a new model may come anywhere).
FLAG_ORDER = ["AVCA", "ale", "sje", "devise", "apn", "cjme", "fvaegan"]


def test_model_flags_in_registration_order():
    flags = model_flags()
    assert [f for f in flags if f in FLAG_ORDER] == FLAG_ORDER
    assert all(get_entry(name).flag == flag for flag, (name, _) in flags.items())
    assert [e for e in list_models() if get_entry(e).flag is None] == ["avgzslnet"]   # the default model


def test_list_models_is_sorted_and_unknown_names_fail():
    assert list_models() == sorted(list_models()) and "avgzslnet" in list_models()
    with pytest.raises(KeyError, match="unknown model 'nope'; known: ale, "):
        get_entry("nope")


@pytest.mark.parametrize("statement", [
    "import src.models.registry as r",
    "import src.models.fvaegan",
    "from src.models import create_model",
    "from src.args import get_main_parser",
])
def test_any_first_import_registers_every_model_in_order(statement):
    """Whatever is imported first, the package's __init__ imports the model files in its order."""
    code = (f"{statement}\nfrom src.models.registry import list_models, model_flags\n"
            f"print(list(model_flags())); print(list_models())")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    flags, names = (ast.literal_eval(line) for line in out.stdout.splitlines())
    assert flags == list(model_flags()) and names == list_models()
