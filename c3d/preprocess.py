"""C3D pre-processing (docs/features.md, "Video: C3D").

Per frame, in the decoding workers (`c3d_frame`): [published quirk] value inversion, Pillow
bilinear resize of the whole frame to 128x171 (HxW), centre crop rows 8-119 and columns
30-141, RGB -> BGR; the result stays uint8 `[112, 112, 3]`.
Per video (`frames_to_clips`): ceil(n / 16) clips of 16 frames, the last one padded.
Per batch, on the device (`normalise_clips`): / 255, per-channel (BGR) mean and std, padded
frames set to 0 (the mean colour), layout `[B, 3, 16, 112, 112]`.
"""
from typing import List, Tuple

import numpy as np
import torch
from PIL import Image

CLIP_LEN = 16
RESIZE_HW = (128, 171)
CROP_ROWS, CROP_COLS = (8, 120), (30, 142)
C3D_MEAN = (0.43216, 0.394666, 0.37645)   # applied to channels in BGR order
C3D_STD = (0.22803, 0.22145, 0.216989)


def c3d_frame(rgb: np.ndarray, invert: bool = False) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> resized, cropped BGR uint8 [112, 112, 3]. `invert`: the
    [published quirk] v -> (256 - v) mod 256 of the UCF and VGGSound features."""
    if invert:
        rgb = np.negative(rgb)  # uint8 arithmetic wraps: (256 - v) mod 256, 0 stays 0
    img = Image.fromarray(np.ascontiguousarray(rgb)).resize(RESIZE_HW[::-1], Image.BILINEAR)
    crop = np.asarray(img)[CROP_ROWS[0]:CROP_ROWS[1], CROP_COLS[0]:CROP_COLS[1]]
    return np.ascontiguousarray(crop[:, :, ::-1])  # BGR, as OpenCV decodes


def frames_to_clips(frames: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """n frames [112, 112, 3] -> clips uint8 [K, 16, 112, 112, 3] with K = ceil(n / 16), and
    the number of real frames per clip int64 [K] (the rest of the last clip is padding)."""
    n = len(frames)
    k = -(-n // CLIP_LEN)
    clips = np.zeros((k * CLIP_LEN,) + frames[0].shape, np.uint8)
    clips[:n] = np.stack(frames)
    valid = np.full(k, CLIP_LEN, np.int64)
    valid[-1] = n - (k - 1) * CLIP_LEN
    return clips.reshape((k, CLIP_LEN) + frames[0].shape), valid


def normalise_clips(clips: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 16, 112, 112, 3] (BGR) and real-frame counts [B] -> float [B, 3, 16, 112, 112]."""
    mean = torch.tensor(C3D_MEAN, device=clips.device)
    std = torch.tensor(C3D_STD, device=clips.device)
    x = (clips.float() / 255.0 - mean) / std                               # [B, 16, H, W, 3]
    real = torch.arange(CLIP_LEN, device=clips.device)[None, :] < valid[:, None]  # [B, 16]
    x = torch.where(real[:, :, None, None, None], x, torch.zeros((), device=x.device))
    return x.permute(0, 4, 1, 2, 3).contiguous(memory_format=torch.channels_last_3d)   # [B, 3, 16, H, W], NDHWC in memory
