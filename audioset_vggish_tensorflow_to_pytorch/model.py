"""The VGGish network with the ported weights' names (`features.{0,3,6,8,11,13}`, `fc.{0,2,4}`)."""
from typing import Optional

import torch
from torch import nn

from src.extraction.weights import load_weights_file, load_exact, require_file

VGGISH_SOURCE = ("pytorch_vggish.pth, AudioSet's TensorFlow VGGish checkpoint (vggish_model.ckpt) "
                 "converted with the audioset_vggish_tensorflow_to_pytorch script")
LAYERS = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]   # 3x3 convs, 2x2 pools


def _features() -> nn.Sequential:
    layers, c = [], 1
    for v in LAYERS:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """log-mel examples `[N, 1, 96, 64]` -> embeddings `[N, 128]` (ReLU after the last fc,
    before PCA)."""

    def __init__(self):
        super().__init__()
        self.features = _features()
        self.fc = nn.Sequential(nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
                                nn.Linear(4096, 4096), nn.ReLU(inplace=True),
                                nn.Linear(4096, 128), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)                                    # [N, 512, 6, 4]
        x = x.permute(0, 2, 3, 1).contiguous().flatten(1)      # [N, 6, 4, 512] -> [N, 12288]
        return self.fc(x)


def load_vggish(path: Optional[str], random_init: bool = False) -> VGGish:
    if not random_init:
        path = require_file(path, "VGGish weights (pytorch_vggish.pth)", "--vggish_weights",
                            VGGISH_SOURCE)
    model = VGGish()
    if not random_init:
        load_exact(model, load_weights_file(path), path)
    return model.eval()
