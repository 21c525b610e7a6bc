"""CLIP image and WavCaps audio features of docs/clipclap.md 1 (ClipClap's features: image 512-d,
audio 1024-d), one vector of each per video.

Output (`write`), rows in video-list order, failed videos left out:
`clip_features_{ucf,activitynet,vggsound}.pkl`, a list of `[image_feature float16[512],
class_id, audio_feature float32[1024], file_name]` (file name with its extension), each
feature L2-normalised.

Per video, one decoding pass (src/extraction/decode.py) gives the frame count n, the frame
CLIP sees and the audio track:
- image: the frame `frame_choice(n, ...)` picks, in RGB (default) or, under match_published,
  BGR with UCF's overflow inversion, through `clip_vit.preprocess_frame`;
- audio: int16 PCM at its native rate, as float in [-1, 1), channels averaged, resampled to
  32 kHz with resampy's kaiser_best (librosa 0.9's `load(sr=32000, mono=True)`), then the
  centre 10 s (`wavcaps.center_window`).
"""
import logging
import math
from collections import deque
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

import numpy as np
import torch

from src.families import ALIASES, DATASETS
from src.extraction.decode import AudioSpec, Failure, decode
from src.extraction.pipeline import Family
from src.extraction.videos import VideoItem
from src.io_utils import atomic_pickle

from . import clip_vit, wavcaps

log = logging.getLogger(__name__)

SAMPLE_RATE = wavcaps.SAMPLE_RATE   # 32 kHz, WavCaps' HTS-AT input rate (docs/clipclap.md 1.2)
BLACK_FRAME = -1             # [published quirk] UCF: an unread slot of the frame buffer (all 0)
ZERO_IMAGE = -2              # [original defect] VGGSound, n // 2 = 0: an all-zero normalised image
FRAME_SLACK = 32             # frames the decoded count may differ from the container's count
                             # and still be picked in the one decoding pass (beyond: a second one)


def clip_dataset(dataset: str) -> str:
    """The CLIP/CLAP file stem (ucf, activitynet, vggsound) of any --dataset alias."""
    try:
        return DATASETS[ALIASES[dataset.lower()]].clip_stem
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}: use ucf, activitynet or vggsound") from None


# ---------------------------------------------------------------------------- the frame
def frame_choice(n: int, frame_count: int, dataset: str, match_published: bool) -> int:
    """The 0-based index of the frame CLIP sees among the `n` decoded frames (n >= 1), or
    BLACK_FRAME / ZERO_IMAGE; raises Failure for a video without one. `frame_count` is the
    container's count (0: unknown). `dataset` is a CLIP/CLAP stem (`clip_dataset`).

    Default: n // 2 for every dataset. Under match_published (docs/clipclap.md 1.1, OpenCV's
    count CAP_PROP_FRAME_COUNT being the container's):
    - ucf: index frameCount // 2 of a frameCount-slot buffer whose unread slots stay 0 (an
      index at or past n is a black frame); an unknown count is taken as n;
    - activitynet, vggsound: the (n' // 2)-th frame counted from 1, n' = min(n, frameCount),
      i.e. index n' // 2 - 1; n' // 2 = 0 gives ActivityNet an empty feature (a failure here)
      and VGGSound an all-zero normalised image."""
    if not match_published:
        return n // 2
    if dataset == "ucf":
        middle = (frame_count or n) // 2
        return middle if middle < n else BLACK_FRAME
    counted = min(n, frame_count) if frame_count else n
    if counted // 2 == 0:
        if dataset == "activitynet":
            raise Failure(f"{counted} decodable frame(s): n // 2 = 0 leaves no frame under "
                          f"--match_published (the original stores an empty image feature, which "
                          f"its splitting drops)")
        return ZERO_IMAGE
    return counted // 2 - 1


class _FramePicker:
    """`keep` and `frame_fn` of one decoding: with the container's frame count known, the
    frames of `candidates` (decode keeps them); unknown, those of the frames seen so far that
    can still be chosen (index >= c // 2 - 1 after c frames, a bound under every rule of
    `frame_choice`: about the last half)."""

    def __init__(self, candidates):
        self.candidates = candidates
        self.wanted: Optional[Set[int]] = None
        self.last_half = deque()   # (index, RGB uint8 [H, W, 3]), ascending
        self.seen = 0

    def keep(self, info) -> Optional[Set[int]]:
        self.wanted = self.candidates(info.frame_count)
        return self.wanted

    def __call__(self, rgb: np.ndarray) -> Optional[np.ndarray]:
        if self.wanted is not None:
            return rgb
        self.last_half.append((self.seen, rgb))
        self.seen += 1
        while self.last_half[0][0] < self.seen // 2 - 1:
            self.last_half.popleft()
        return None

    def held(self, decoded) -> Dict[int, np.ndarray]:
        """{index: RGB frame} of the frames kept."""
        if self.wanted is not None:
            return dict(zip(decoded.frame_indices, decoded.frames))
        return dict(self.last_half)


# ---------------------------------------------------------------------------- the audio
def load_wave(pcm: np.ndarray, rate: int) -> np.ndarray:
    """int16 [n, channels] at `rate` -> float32 [L] at 32 kHz, as librosa 0.9's
    `load(sr=32000, mono=True)`: / 32768, channels averaged, resampy kaiser_best, and the
    length fixed to ceil(n * 32000 / rate) (zero-padded, librosa's `fix=True`)."""
    mono = (pcm.astype(np.float32) / np.float32(32768.0)).mean(axis=1, dtype=np.float32)
    if rate == SAMPLE_RATE:
        return mono
    import resampy  # imported here: numba compiles its kernel on first import
    wave = resampy.resample(mono, rate, SAMPLE_RATE, filter="kaiser_best", axis=-1)
    size = int(math.ceil(len(mono) * SAMPLE_RATE / rate))
    if len(wave) < size:
        wave = np.pad(wave, (0, size - len(wave)))
    return np.ascontiguousarray(wave[:size], dtype=np.float32)


# ---------------------------------------------------------------------------- the family
class ClipFamily(Family):
    streams = ("video", "audio")

    def __init__(self, dataset: str, *, match_published: bool = False, clip_weights=None,
                 wavcaps_weights=None, random_init: bool = False, seed: int = 0):
        self.dataset = clip_dataset(dataset)
        self.match_published = match_published
        self.clip_weights, self.wavcaps_weights = clip_weights, wavcaps_weights
        self.random_init, self.seed = random_init, seed
        self.name = f"clip_features_{self.dataset}"
        # [published quirk] docs/clipclap.md 1.1: OpenCV's BGR frames never converted, all datasets
        self.bgr = match_published
        # [published quirk] docs/clipclap.md 1.1: UCF's float32 buffer through ToPILImage wraps every
        # value v to (256 - v) mod 256, the same overflow as C3D's (docs/features.md)
        self.invert = match_published and self.dataset == "ucf"

    def signature(self) -> dict:
        weights = ["random", self.seed] if self.random_init else [
            str(Path(p).resolve()) if p else None for p in (self.clip_weights, self.wavcaps_weights)]
        return {"family": "clip", "dataset": self.dataset, "match_published": self.match_published,
                "frame": "published per-dataset rule" if self.match_published else "n // 2",
                "channels": "BGR" if self.bgr else "RGB", "invert": self.invert,
                "audio": {"rate": SAMPLE_RATE, "window": wavcaps.CLIP_SAMPLES,
                          "resampler": f"resampy {metadata.version('resampy')} kaiser_best"},
                "weights": weights}

    # -------------------------------------------------------------- workers
    def choose(self, n: int, frame_count: int) -> int:
        return frame_choice(n, frame_count, self.dataset, self.match_published)

    def candidates(self, frame_count: int) -> Optional[Set[int]]:
        """The frames to keep while decoding, before n is known: those chosen for a count
        within FRAME_SLACK of the container's (None: unknown count, `_FramePicker` keeps the
        last half)."""
        if not frame_count:
            return None
        out = set()
        for n in range(max(1, frame_count - FRAME_SLACK), frame_count + FRAME_SLACK + 1):
            try:
                out.add(self.choose(n, frame_count))
            except Failure:
                pass
        return {i for i in out if i >= 0}

    def image(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 [H, W, 3] -> CLIP's input float32 [3, 224, 224], with the quirks."""
        if self.invert:
            rgb = np.negative(rgb)  # uint8 arithmetic wraps: (256 - v) mod 256, 0 stays 0 (as c3d_frame)
        if self.bgr:
            rgb = rgb[:, :, ::-1]
        return np.asarray(clip_vit.preprocess_frame(np.ascontiguousarray(rgb)), dtype=np.float32)

    def prepare(self, path: Path) -> dict:
        picker = _FramePicker(self.candidates)
        d = decode(path, frame_fn=picker, keep=picker.keep, audio=AudioSpec())
        n, count = d.n_frames, d.info.frame_count
        choice = self.choose(n, count)
        if choice == ZERO_IMAGE:
            image = np.zeros((3, 224, 224), np.float32)
        else:
            if choice == BLACK_FRAME:
                rgb = np.zeros((d.info.height, d.info.width, 3), np.uint8)
            else:
                rgb = picker.held(d).get(choice)
                if rgb is None:  # the container's count is off by more than FRAME_SLACK
                    log.warning("%s: %d frames decoded, the container says %d: decoding again for "
                                "frame %d", path, n, count, choice)
                    again = decode(path, frame_fn=np.asarray, keep=lambda _: {choice})
                    if again.frame_indices != [choice]:
                        raise Failure(f"frame {choice} of {n} not decoded on the second pass")
                    rgb = again.frames[0]
            image = self.image(rgb)
        wave = wavcaps.center_window(load_wave(d.audio, d.audio_rate))
        return {"video": {"image": image[None]},                                   # [1, 3, 224, 224]
                "audio": {"wave": np.asarray(wave, np.float32)[None]}}            # [1, 320000]

    # -------------------------------------------------------------- device
    def build_models(self, device) -> Dict[str, object]:
        torch.manual_seed(self.seed)  # --random_init: the same weights on every rank
        # both raise a UserError naming a missing weights file and its flag
        clip = clip_vit.load_clip(self.clip_weights, random_init=self.random_init, device=device)
        ase = wavcaps.load_wavcaps(self.wavcaps_weights, random_init=self.random_init, device=device,
                                   text=False)
        # compile resampy's numba kernel here, once: the forked decoding workers inherit it
        load_wave(np.zeros((441, 1), np.int16), 44100)
        return {"video": lambda b: torch.as_tensor(clip_vit.encode_image(clip, b["image"])),
                "audio": lambda b: torch.as_tensor(ase.encode_audio(b["wave"]))}

    def finish(self, features: Dict[str, np.ndarray]) -> dict:
        # docs/clipclap.md 1.1: the image feature is stored as float16 [published behaviour]
        return {"video": features["video"][0].astype(np.float16),
                "audio": features["audio"][0].astype(np.float32)}

    # -------------------------------------------------------------- outputs
    def output_paths(self, output_dir) -> List[Path]:
        return [Path(output_dir) / f"{self.name}.pkl"]

    def write(self, items: Sequence[VideoItem], records, output_dir) -> List[Path]:
        path = self.output_paths(output_dir)[0]
        atomic_pickle([[r["video"], it.class_id, r["audio"], it.file_name]
                       for it, r in zip(items, records) if r is not None], path)
        return [path]
