"""C3D video and VGGish audio features of docs/features.md ("cls" features: video 4096-d, audio 128-d).

Outputs (`write`), in video-list order, failed videos left out:
- `cls_features_{dataset}.pkl`: a list of `[video_feature float32[4096], class_id,
  audio_feature float64[128] (mean of the 0..255 quantised examples), file_name]`;
- `cls_features_{dataset}_per_clip.pkl` (unless per_clip=False): the same rows with
  `float32[K, 4096]` clip features and `uint8[M, 128]` example features before averaging.
"""
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from audioset_vggish_tensorflow_to_pytorch import load_pca, load_vggish, waveform_to_examples
from c3d import c3d_frame, frames_to_clips, load_c3d, normalise_clips
from src.extraction.decode import AudioSpec, Failure, decode
from src.extraction.pipeline import Family
from src.extraction.videos import VideoItem
from src.io_utils import atomic_pickle

INVERTED_DATASETS = ("ucf", "vggsound")  # [published quirk] pixel inversion (not ActivityNet)


class ClsFamily(Family):
    streams = ("video", "audio")

    def __init__(self, dataset: str, *, fps: Optional[float] = 25.0, match_published: bool = False,
                 c3d_weights=None, vggish_weights=None, vggish_pca=None, random_init: bool = False,
                 seed: int = 0, per_clip: bool = True):
        self.dataset, self.fps, self.match_published = dataset, fps or None, match_published
        self.c3d_weights, self.vggish_weights, self.vggish_pca = c3d_weights, vggish_weights, vggish_pca
        self.random_init, self.seed, self.per_clip = random_init, seed, per_clip
        self.name = f"cls_features_{dataset}"
        # docs/features.md, "Video: C3D": [published quirk] (256 - v) mod 256 before the resize
        self.invert = match_published and dataset in INVERTED_DATASETS
        # docs/features.md, "Audio: VGGish": the published features were resampled by resampy 0.2.2,
        # whose kaiser_best differs from the installed resampy's (mel.resample_published)
        self.published_resampling = match_published
        self._pca = None

    def signature(self) -> dict:
        weights = ("random", self.seed) if self.random_init else tuple(
            str(Path(p).resolve()) if p else None
            for p in (self.c3d_weights, self.vggish_weights, self.vggish_pca))
        return {"family": "cls", "dataset": self.dataset, "fps": self.fps, "invert": self.invert,
                "published_resampling": self.published_resampling,
                "weights": list(weights), "per_clip": self.per_clip}

    # -------------------------------------------------------------- workers
    def prepare(self, path: Path):
        d = decode(path, frame_fn=partial(c3d_frame, invert=self.invert), fps=self.fps,
                   audio=AudioSpec())
        clips, valid = frames_to_clips(d.frames)               # [K, 16, 112, 112, 3], [K]
        samples = (d.audio / 32768.0).mean(axis=1)              # int16 [n, ch] -> mono float
        examples = waveform_to_examples(samples, d.audio_rate,  # [M, 96, 64]
                                        published=self.published_resampling)
        if len(examples) == 0:
            raise Failure(f"audio shorter than one VGGish example (0.96 s): "
                          f"{len(samples) / d.audio_rate:.2f} s")
        return {"video": {"clips": clips, "valid": valid}, "audio": {"examples": examples}}

    # -------------------------------------------------------------- device
    def build_models(self, device) -> Dict[str, object]:
        torch.manual_seed(self.seed)  # --random_init: the same weights on every rank
        # channels_last_3d: the clips' own layout ([B, 16, H, W, 3] permuted); 0.81x the time of the
        # contiguous layout on the CPU, outputs within rounding (tests/extraction/test_cls_networks.py)
        c3d = load_c3d(self.c3d_weights, self.random_init).to(device, memory_format=torch.channels_last_3d)
        vggish = load_vggish(self.vggish_weights, self.random_init).to(device)
        self._pca = load_pca(self.vggish_pca, self.random_init)
        # compile resampy's numba kernel here, once: the forked decoding workers inherit it
        waveform_to_examples(np.zeros(4410), 44100, published=self.published_resampling)
        return {"video": lambda b: c3d.features(normalise_clips(b["clips"], b["valid"])),
                "audio": lambda b: vggish(b["examples"][:, None])}

    def finish(self, features: Dict[str, np.ndarray]) -> dict:
        clips = features["video"]                 # float32 [K, 4096]
        examples = self._pca(features["audio"])   # uint8 [M, 128]
        rec = {"video": clips.mean(axis=0), "audio": examples.mean(axis=0)}
        if self.per_clip:
            rec.update(video_clips=clips, audio_examples=examples)
        return rec

    # -------------------------------------------------------------- outputs
    def output_paths(self, output_dir) -> List[Path]:
        out = [Path(output_dir) / f"{self.name}.pkl"]
        if self.per_clip:
            out.append(Path(output_dir) / f"{self.name}_per_clip.pkl")
        return out

    def write(self, items: Sequence[VideoItem], records, output_dir) -> List[Path]:
        paths = self.output_paths(output_dir)
        rows = [(it, r) for it, r in zip(items, records) if r is not None]
        atomic_pickle([[r["video"], it.class_id, r["audio"], it.file_name] for it, r in rows], paths[0])
        if self.per_clip:
            atomic_pickle([[r["video_clips"], it.class_id, r["audio_examples"], it.file_name]
                           for it, r in rows], paths[1])
        return paths
