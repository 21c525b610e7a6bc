"""SeLaVi's one-second window front end (docs/features.md, "Windows", "Video/Audio input per window")."""
import math
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from python_speech_features import logfbank

FRAMES_PER_WINDOW = 30
SIZE = 112
MEAN, STD = 0.45, 0.225                  # every channel
FBANK_MEAN, FBANK_STD = 1.93, 17.89
MIN_SECONDS = 1.1                        # shorter audio or video streams are failures


def window_starts(frame_count: int, rate: float, match_published: bool = False) -> List[int]:
    """First frames of the windows of a video of `frame_count` frames at `rate` fps.

    Default: consecutive one-second windows [k r, (k + 1) r), k < floor(F / r).
    [published quirk] (`match_published`): K = int(F / r) - 1 overlapping windows, window i
    starting at int(max(F - r, 0) * i / (10 * (K // 10 + 1))); none for videos under 2 s."""
    if match_published:
        k = int(frame_count / rate) - 1
        return [int(max(frame_count - rate, 0) * i / (10 * (k // 10 + 1))) for i in range(max(k, 0))]
    return [math.ceil(k * rate - 1e-9) for k in range(int(math.floor(frame_count / rate)))]


def temporal_window_starts(frame_count: int, rate: float, match_published: bool = False) -> List[int]:
    """First frames of the windows whose features are kept one by one (TCaF's temporal
    features, docs/tcaf.md 1), of a video of `frame_count` frames at `rate` fps.

    Default: the consecutive one-second windows of `window_starts` (so the per-window
    features average to the averaged feature). [published quirk] (`match_published`): TCaF's
    rule, K = int(F / r) windows, window i starting at
    int(max(F - r, 0) * (100 i) / (1000 (K // 10 + 1))), computed in that order as the
    original did (`delta * clip_idx / num_clips` with clip_idx = 100 i and num_clips =
    1000 (K // 10 + 1)). They overlap and stop short of the end: a 10 s video at 30 fps gets
    10 windows starting every 13.5 frames (0.45 s), covering its first 5 s; one window, at
    frame 0, for a video of 1 to 2 s."""
    if not match_published:
        return window_starts(frame_count, rate)
    k = int(frame_count / rate)
    delta = max(frame_count - rate, 0)
    return [int(delta * (100 * i) / (1000 * (k // 10 + 1))) for i in range(max(k, 0))]


def window_offsets(rate: float) -> np.ndarray:
    """The 30 frames taken of a window's first r: trunc(linspace(0, r - 1, 30)) in float32."""
    return torch.linspace(0, rate - 1, FRAMES_PER_WINDOW, dtype=torch.float32).long().numpy()


def resized_shape(h: int, w: int):
    """Short side 112, long side int((long / short) * 112), as in the original: the ratio
    first, then the product, in float64. This is not always floor(long * 112 / short): for
    a 168 x 183 frame, (183 / 168) * 112 is 121.99999999999999, so the long side is 121
    where 183 * 112 / 168 would give 122."""
    if min(h, w) == SIZE:
        return h, w
    if h <= w:
        return SIZE, int((w / h) * SIZE)
    return int((h / w) * SIZE), SIZE


def selavi_frame(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> normalised, resized, centre-cropped float32 [3, 112, 112]."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0  # [3, H, W]
    x = (x - MEAN) / STD
    h, w = x.shape[1:]
    nh, nw = resized_shape(h, w)
    if (nh, nw) != (h, w):
        x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    top, left = math.ceil((nh - SIZE) / 2), math.ceil((nw - SIZE) / 2)
    return x[:, top:top + SIZE, left:left + SIZE].contiguous().numpy()


def audio_window(samples: np.ndarray, start_frame: int, frame_rate: float, sample_rate: int) -> np.ndarray:
    """int16 mono samples -> the window's normalised log filterbank float32 [1, 257, 99]: one
    second from sample round(s / r * rate), or the last second when that runs past the end."""
    start = int(round(start_frame / frame_rate * sample_rate))
    start = max(0, min(start, len(samples) - sample_rate))
    seg = samples[start:start + sample_rate]                 # raw int16 values, not scaled
    fb = logfbank(seg, sample_rate, winlen=0.02, winstep=0.01, nfilt=257, nfft=1024)  # [99, 257]
    x = fb.astype(np.float32).T[None]                        # [1, 257, 99]
    return (x - FBANK_MEAN) / FBANK_STD
