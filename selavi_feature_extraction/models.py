"""SeLaVi's backbones, built from torchvision so the checkpoint's names fit as they are.

`selavi_vgg_sound.pth`: `{"model": state_dict}` (or a bare state_dict) with keys
`module.video_network.base.*` (torchvision r2plus1d_18) and `module.audio_network.base.*`
(torchvision ResNet, BasicBlock, [1, 1, 1, 1], 1-channel conv1). Both return the pooled
512-d features (`fc` is the identity); the projection heads of the file are not used.
"""
from typing import Optional, Tuple

from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet
from torchvision.models.video import r2plus1d_18

from src.errors import UserError
from src.extraction.weights import load_weights_file, load_exact, require_file, with_prefix

SELAVI_SOURCE = ("selavi_vgg_sound.pth, the SeLaVi model pre-trained on VGGSound, from the "
                 "model zoo of the SeLaVi repository (facebookresearch/selavi on GitHub)")
VIDEO_PREFIX, AUDIO_PREFIX = "video_network.base.", "audio_network.base."


def video_network() -> nn.Module:
    """[B, 3, 30, 112, 112] -> [B, 512]."""
    net = r2plus1d_18(weights=None)
    net.fc = nn.Identity()
    return net


def audio_network() -> nn.Module:
    """[B, 1, 257, 99] log filterbanks -> [B, 512] (ResNet-9: one BasicBlock per stage)."""
    net = ResNet(BasicBlock, [1, 1, 1, 1])
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    return net


def backbone_state(checkpoint: dict) -> dict:
    """The checkpoint's state_dict with `module.` stripped."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UserError("the SeLaVi weights file holds no state_dict (expected {'model': ...})")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_selavi(path: Optional[str], random_init: bool = False) -> Tuple[nn.Module, nn.Module]:
    """(video network, audio network) in eval mode; every backbone key of `path` must load."""
    if not random_init:
        path = require_file(path, "SeLaVi weights (selavi_vgg_sound.pth)", "--weights_path",
                            SELAVI_SOURCE)
    video, audio = video_network(), audio_network()
    if not random_init:
        state = backbone_state(load_weights_file(path))
        for net, prefix in ((video, VIDEO_PREFIX), (audio, AUDIO_PREFIX)):
            part = {k: v for k, v in with_prefix(state, prefix).items() if not k.startswith("fc.")}
            if not part:
                raise UserError(f"{path} has no `module.{prefix}*` keys: not a SeLaVi checkpoint")
            load_exact(net, part, path)
    return video.eval(), audio.eval()
