"""SeLaVi features of FEATURES.md ("main" features: video 512-d, audio 512-d).

Output (`write`): `main_features_{dataset}[_{exp_desc}].pkl`, a dict `{video: [N, 512],
labels: [N], audio: [N, 512], filenames: [N]}` of CPU tensors and strings (names without
extension), rows in video-list order, failed videos left out.
"""
import bisect
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

from src.extraction.decode import AudioSpec, Failure, decode
from src.extraction.pipeline import Family
from src.extraction.videos import VideoItem
from src.io_utils import atomic_pickle

from .models import load_selavi
from .preprocess import MIN_SECONDS, audio_window, selavi_frame, window_offsets, window_starts


class SelaviFamily(Family):
    streams = ("video", "audio")

    def __init__(self, dataset: str, *, weights_path=None, aud_sample_rate: int = 44100,
                 match_published: bool = False, random_init: bool = False, seed: int = 0,
                 exp_desc: str = ""):
        self.dataset, self.weights_path, self.sample_rate = dataset, weights_path, aud_sample_rate
        self.match_published, self.random_init, self.seed = match_published, random_init, seed
        self.name = f"main_features_{dataset}" + (f"_{exp_desc}" if exp_desc else "")

    def signature(self) -> dict:
        weights = ["random", self.seed] if self.random_init else str(Path(self.weights_path).resolve())
        return {"family": "selavi", "dataset": self.dataset, "rate": self.sample_rate,
                "match_published": self.match_published, "weights": weights}

    def windows(self, frame_count: int, rate: float) -> List[int]:
        return window_starts(frame_count, rate, self.match_published)

    # -------------------------------------------------------------- workers
    def prepare(self, path: Path):
        def keep(info):  # only the frames some window takes (all, when the count is unknown)
            if not info.frame_count:
                return None
            offsets = window_offsets(info.rate)
            return {s + int(o) for s in self.windows(info.frame_count, info.rate) for o in offsets}

        d = decode(path, frame_fn=selavi_frame, keep=keep,
                   audio=AudioSpec(rate=self.sample_rate, mono=True))
        count, rate = d.info.frame_count or d.n_frames, d.info.rate
        audio = d.audio[:, 0]                                       # int16 [n]
        if count / rate < MIN_SECONDS:
            raise Failure(f"video stream under {MIN_SECONDS} s: {count / rate:.2f} s")
        if len(audio) / self.sample_rate < MIN_SECONDS:
            raise Failure(f"audio stream under {MIN_SECONDS} s: {len(audio) / self.sample_rate:.2f} s")
        starts = self.windows(count, rate)
        if not starts:
            raise Failure(f"no window: {count} frames at {rate:g} fps")
        offsets = window_offsets(rate)
        kept = d.frame_indices   # ascending; past the decoded end, the last decoded frame is used

        def frame(i):
            return d.frames[max(bisect.bisect_right(kept, i) - 1, 0)]

        video = np.stack([np.stack([frame(s + int(o)) for o in offsets], axis=1)
                          for s in starts])                         # [W, 3, 30, 112, 112]
        spec = np.stack([audio_window(audio, s, rate, self.sample_rate) for s in starts])  # [W, 1, 257, 99]
        return {"video": {"clip": video}, "audio": {"spec": spec}}

    # -------------------------------------------------------------- device
    def build_models(self, device) -> Dict[str, object]:
        torch.manual_seed(self.seed)  # --random_init: the same weights on every rank
        video, audio = load_selavi(self.weights_path, self.random_init)
        video, audio = video.to(device), audio.to(device)
        return {"video": lambda b: video(b["clip"]), "audio": lambda b: audio(b["spec"])}

    def finish(self, features: Dict[str, np.ndarray]) -> dict:
        return {"video": features["video"].mean(axis=0), "audio": features["audio"].mean(axis=0)}

    # -------------------------------------------------------------- outputs
    def output_paths(self, output_dir) -> List[Path]:
        return [Path(output_dir) / f"{self.name}.pkl"]

    def write(self, items: Sequence[VideoItem], records, output_dir) -> List[Path]:
        rows = [(it, r) for it, r in zip(items, records) if r is not None]
        stack = lambda key: torch.from_numpy(  # noqa: E731
            np.stack([r[key] for _, r in rows]) if rows else np.zeros((0, 512), np.float32))
        out = {"video": stack("video"), "labels": torch.tensor([it.class_id for it, _ in rows], dtype=torch.long),
               "audio": stack("audio"), "filenames": [it.stem for it, _ in rows]}
        path = self.output_paths(output_dir)[0]
        atomic_pickle(out, path)
        return [path]
