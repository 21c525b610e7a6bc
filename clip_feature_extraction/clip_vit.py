"""OpenAI CLIP ViT-B/32 through `open_clip` (`ViT-B-32-quickgelu`): image features and text embeddings.

See docs/clipclap.md 1.1 (image), 1.3 (weights) and 2 (text). The model is open_clip's `CLIP` class
built from its `ViT-B-32-quickgelu` configuration (224 px, patch 32, width 768, 12 layers,
QuickGELU, 512-d embeddings), whose state_dict names are those of OpenAI's release
(`visual.conv1.weight`, `visual.transformer.resblocks.*`, `transformer.resblocks.*`,
`token_embedding.weight`, `text_projection`, `logit_scale`, ...). open_clip's factory is not
used, so nothing is ever downloaded.

Precision **[published behaviour]**: `clip.load` converts the Linear/Conv/attention weights and
the two projections to fp16 on a CUDA device (layer norms computed in fp32), so on CUDA the
model runs in fp16 the same way (open_clip's `convert_weights_to_lp`, LayerNormFp32); on the
CPU it runs in fp32. `encode_image` / `encode_text` divide by the norm in the model's dtype
and return float32.
"""
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from src.errors import UserError
from src.extraction.weights import load_weights_file, load_exact, require_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")           # open_clip imports huggingface_hub
import open_clip                                       # noqa: E402  (after the offline switch)
from open_clip.model import CLIP, convert_weights_to_lp   # noqa: E402

MODEL_NAME = "ViT-B-32-quickgelu"
IMAGE_SIZE = 224
CONTEXT_LENGTH = 77
EMBED_DIM = 512
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SOURCE = ("the OpenAI CLIP release, https://openaipublic.azureedge.net/clip/models/"
               "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt, "
               "or open_clip's ViT-B-32-quickgelu 'openai' weights")
# ints the OpenAI TorchScript archive keeps beside the weights
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def build_clip(fp16: bool = False) -> CLIP:
    """Randomly initialised ViT-B/32 CLIP (QuickGELU); with `fp16`, OpenAI's mixed fp16 layout."""
    config = open_clip.get_model_config(MODEL_NAME)
    if config is None:
        raise RuntimeError(f"open_clip has no {MODEL_NAME} configuration")
    model = CLIP(**config, cast_dtype=torch.float16 if fp16 else None)
    if fp16:
        convert_weights_to_lp(model, dtype=torch.float16)
    return model


def _openai_state(path: Path) -> dict:
    """The state_dict of an OpenAI TorchScript archive, or of a saved state_dict in its key format
    (also {"state_dict": ...} with a `module.` prefix, as open_clip's training saves it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.jit.load(str(path), map_location="cpu")
    except Exception:                                  # not a TorchScript archive
        loaded = load_weights_file(path)
    if isinstance(loaded, nn.Module):                  # torch.jit.ScriptModule included
        loaded = loaded.state_dict()
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not loaded or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise UserError(f"{path} is not a CLIP checkpoint: expected OpenAI's ViT-B-32.pt (a TorchScript "
                        f"archive) or a state_dict in its key format")
    state = dict(loaded)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    for key in OPENAI_EXTRA_KEYS:
        state.pop(key, None)
    return state


def load_clip(path: Optional[str], random_init: bool = False, device="cpu") -> CLIP:
    """CLIP ViT-B/32 in eval mode on `device` with the weights of `path` (OpenAI's `ViT-B-32.pt`,
    loaded strictly), or random weights and no file with `random_init`. fp16 on CUDA (see above)."""
    device = torch.device(device)
    state = None
    if not random_init:
        path = require_file(path, "CLIP ViT-B/32 weights (ViT-B-32.pt)", "--clip_weights", CLIP_SOURCE)
        state = _openai_state(path)
    model = build_clip(fp16=device.type == "cuda")
    if state is not None:
        load_exact(model, state, path)                 # values are cast to each parameter's dtype
    return model.to(device).eval()


@lru_cache(maxsize=1)
def _preprocess() -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize(IMAGE_SIZE, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(IMAGE_SIZE),
        transforms.ToTensor(),
        transforms.Normalize(CLIP_MEAN, CLIP_STD),
    ])


def preprocess_frame(frame: np.ndarray) -> torch.Tensor:
    """CLIP's pre-processing of one uint8 frame [H, W, 3] -> float32 [3, 224, 224]: PIL bicubic
    resize of the short side to 224 (long side int(224 * long / short)), centre crop 224,
    [0, 1], normalised with CLIP's mean and std. The channels are taken in the order given."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"preprocess_frame takes a uint8 [H, W, 3] frame, got {frame.dtype} {frame.shape}")
    return _preprocess()(Image.fromarray(frame))


@lru_cache(maxsize=1)
def _tokenizer():
    """CLIP's BPE tokenizer (the vocabulary ships with open_clip), 77 tokens, zero padding."""
    return open_clip.tokenizer.SimpleTokenizer(context_length=CONTEXT_LENGTH)


def _weight(model: CLIP) -> torch.Tensor:
    return model.visual.conv1.weight


@torch.no_grad()
def encode_image(model: CLIP, images: torch.Tensor) -> torch.Tensor:
    """Pre-processed images [B, 3, 224, 224] -> float32 [B, 512], each row divided by its L2 norm
    (computed in the model's dtype)."""
    weight = _weight(model)
    features = model.encode_image(torch.as_tensor(images).to(device=weight.device, dtype=weight.dtype))
    return (features / features.norm(dim=-1, keepdim=True)).float()


@torch.no_grad()
def encode_text(model: CLIP, prompts: Sequence[str]) -> torch.Tensor:
    """Prompts -> float32 [P, 512], each row divided by its L2 norm (in the model's dtype): CLIP
    BPE tokens (start and end tokens, 77 positions; open_clip truncates a longer prompt where
    `clip.tokenize` would raise), the feature at the end token after `ln_final`, `text_projection`."""
    tokens = _tokenizer()(list(prompts)).to(_weight(model).device)
    features = model.encode_text(tokens)
    return (features / features.norm(dim=-1, keepdim=True)).float()
