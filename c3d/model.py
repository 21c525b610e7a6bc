"""The C3D network with the state_dict names of `c3d.pickle` (`conv1.weight` ... `fc8.bias`).

docs/features.md, "Video: C3D": the feature of a clip is fc7 after ReLU, in eval mode.
"""
from typing import Optional

import torch
from torch import nn

from src.extraction.weights import load_weights_file, load_exact, require_file

C3D_SOURCE = ("c3d.pickle, the Sports-1M C3D weights ported to PyTorch, from the c3d-pytorch "
              "project (DavideA/c3d-pytorch on GitHub, link in its README)")


class C3D(nn.Module):
    """Input `[B, 3, 16, 112, 112]` (BGR, normalised); `forward` -> fc8 logits `[B, 487]`,
    `features` -> fc7 after ReLU `[B, 4096]`."""

    def __init__(self, num_classes: int = 487):
        super().__init__()
        conv = lambda i, o: nn.Conv3d(i, o, kernel_size=3, padding=1)  # noqa: E731
        self.conv1 = conv(3, 64)
        self.pool1 = nn.MaxPool3d((1, 2, 2), (1, 2, 2))
        self.conv2 = conv(64, 128)
        self.pool2 = nn.MaxPool3d(2, 2)
        self.conv3a, self.conv3b = conv(128, 256), conv(256, 256)
        self.pool3 = nn.MaxPool3d(2, 2)
        self.conv4a, self.conv4b = conv(256, 512), conv(512, 512)
        self.pool4 = nn.MaxPool3d(2, 2)
        self.conv5a, self.conv5b = conv(512, 512), conv(512, 512)
        self.pool5 = nn.MaxPool3d(2, 2, padding=(0, 1, 1))
        self.fc6 = nn.Linear(8192, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.dropout = nn.Dropout(p=0.5)
        self.relu = nn.ReLU()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        r = self.relu
        x = self.pool1(r(self.conv1(x)))
        x = self.pool2(r(self.conv2(x)))
        x = self.pool3(r(self.conv3b(r(self.conv3a(x)))))
        x = self.pool4(r(self.conv4b(r(self.conv4a(x)))))
        x = self.pool5(r(self.conv5b(r(self.conv5a(x)))))   # [B, 512, 1, 4, 4]
        assert x.shape[1:] == (512, 1, 4, 4), f"C3D needs 16x112x112 clips, pool5 gave {tuple(x.shape)}"
        x = x.flatten(1)                                     # [B, 8192], channel-first
        x = self.dropout(r(self.fc6(x)))
        return self.dropout(r(self.fc7(x)))                  # [B, 4096]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc8(self.features(x))


def load_c3d(path: Optional[str], random_init: bool = False) -> C3D:
    """C3D in eval mode with the weights of `path` (a pickled state_dict, loaded strictly),
    or random weights with `random_init`."""
    if not random_init:
        path = require_file(path, "C3D weights (c3d.pickle)", "--c3d_weights", C3D_SOURCE)
    model = C3D()
    if not random_init:
        load_exact(model, load_weights_file(path), path)
    return model.eval()
