"""SeLaVi features of docs/features.md ("main" features: video 512-d, audio 512-d).

Outputs (`write`), rows in video-list order, failed videos left out:
- `main_features_{dataset}[_{exp_desc}].pkl`: a dict `{video: [N, 512], labels: [N],
  audio: [N, 512], filenames: [N]}` of CPU tensors and strings (names without extension),
  each feature the mean over the video's windows (`window_starts`);
- `main_features_{dataset}[_{exp_desc}]_per_window.pkl` (unless per_window=False): the same
  dict with `video` and `audio` lists of one float32 numpy array `[K_i, 512]` per video, one
  row per window of `temporal_window_starts` (the same K_i for audio and video): TCaF's
  temporal features (docs/tcaf.md 1). By default these are the averaged feature's own windows;
  under match_published they follow TCaF's rule, which differs from the averaged
  feature's, so a video's units are its averaged windows (as without the per-window
  output) followed by TCaF's windows that start elsewhere, each once, and `finish` picks
  each output's rows (`unit_starts`).
"""
import bisect
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from src.errors import UserError
from src.extraction.decode import AudioSpec, Failure, decode
from src.extraction.pipeline import Family, Prepared
from src.extraction.videos import VideoItem
from src.io_utils import atomic_pickle

from .models import load_selavi
from .preprocess import (MIN_SECONDS, audio_window, selavi_frame, temporal_window_starts, window_offsets,
                         window_starts)


class SelaviFamily(Family):
    streams = ("video", "audio")

    def __init__(self, dataset: str, *, weights_path=None, aud_sample_rate: int = 44100,
                 match_published: bool = False, random_init: bool = False, seed: int = 0,
                 exp_desc: str = "", per_window: bool = True):
        self.dataset, self.weights_path, self.sample_rate = dataset, weights_path, aud_sample_rate
        self.match_published, self.random_init, self.seed = match_published, random_init, seed
        self.per_window = per_window
        self.name = f"main_features_{dataset}" + (f"_{exp_desc}" if exp_desc else "")

    def signature(self) -> dict:
        weights = ["random", self.seed] if self.random_init else str(Path(self.weights_path).resolve())
        return {"family": "selavi", "dataset": self.dataset, "rate": self.sample_rate,
                "match_published": self.match_published, "weights": weights,
                "per_window": self.per_window}

    def windows(self, frame_count: int, rate: float) -> List[int]:
        """The windows averaged into the averaged feature."""
        return window_starts(frame_count, rate, self.match_published)

    def temporal_windows(self, frame_count: int, rate: float) -> List[int]:
        """The windows kept one by one in the per-window output (none without it)."""
        if not self.per_window:
            return []
        return temporal_window_starts(frame_count, rate, self.match_published)

    def unit_starts(self, frame_count: int, rate: float) -> Tuple[List[int], List[int], List[int]]:
        """(the starts of the windows to run, the averaged windows' rows among them, the
        per-window output's rows among them). The averaged windows come first, exactly as
        without the per-window output (repeated starts included); the per-window output's
        starts that are not among them follow, each once."""
        averaged = self.windows(frame_count, rate)
        wanted = self.temporal_windows(frame_count, rate)
        starts = list(averaged)
        row: Dict[int, int] = {}
        for j, s in enumerate(starts):
            row.setdefault(s, j)
        for s in wanted:
            if s not in row:
                row[s] = len(starts)
                starts.append(s)
        return starts, list(range(len(averaged))), [row[s] for s in wanted]

    # -------------------------------------------------------------- workers
    def prepare(self, path: Path):
        def keep(info):  # only the frames some window takes (all, when the count is unknown)
            if not info.frame_count:
                return None
            offsets = window_offsets(info.rate)
            starts = self.unit_starts(info.frame_count, info.rate)[0]
            return {s + int(o) for s in starts for o in offsets}

        d = decode(path, frame_fn=selavi_frame, keep=keep,
                   audio=AudioSpec(rate=self.sample_rate, mono=True))
        count, rate = d.info.frame_count or d.n_frames, d.info.rate
        audio = d.audio[:, 0]                                       # int16 [n]
        if count / rate < MIN_SECONDS:
            raise Failure(f"video stream under {MIN_SECONDS} s: {count / rate:.2f} s")
        if len(audio) / self.sample_rate < MIN_SECONDS:
            raise Failure(f"audio stream under {MIN_SECONDS} s: {len(audio) / self.sample_rate:.2f} s")
        starts, averaged, temporal = self.unit_starts(count, rate)
        if not averaged or (self.per_window and not temporal):
            raise Failure(f"no window: {count} frames at {rate:g} fps")
        offsets = window_offsets(rate)
        kept = d.frame_indices   # ascending; past the decoded end, the last decoded frame is used

        def frame(i):
            return d.frames[max(bisect.bisect_right(kept, i) - 1, 0)]

        video = np.stack([np.stack([frame(s + int(o)) for o in offsets], axis=1)
                          for s in starts])                         # [W, 3, 30, 112, 112]
        spec = np.stack([audio_window(audio, s, rate, self.sample_rate) for s in starts])  # [W, 1, 257, 99]
        return Prepared({"video": {"clip": video}, "audio": {"spec": spec}},
                        {"averaged": averaged, "windows": temporal})

    # -------------------------------------------------------------- device
    def build_models(self, device) -> Dict[str, object]:
        torch.manual_seed(self.seed)  # --random_init: the same weights on every rank
        video, audio = load_selavi(self.weights_path, self.random_init)
        video, audio = video.to(device), audio.to(device)
        return {"video": lambda b: video(b["clip"]), "audio": lambda b: audio(b["spec"])}

    def finish(self, features: Dict[str, np.ndarray], info: Optional[dict] = None) -> dict:
        """{video, audio: the mean over the averaged windows [512]} and, with the per-window
        output, {video_windows, audio_windows: float32 [K, 512]}."""
        n = len(info["averaged"]) if info is not None else len(features["video"])
        # the averaged windows are the first n units, as without the per-window output
        rec = {m: features[m][:n].mean(axis=0) for m in ("video", "audio")}
        if self.per_window:
            rows = np.asarray(info["windows"], dtype=np.int64)
            rec.update({f"{m}_windows": np.ascontiguousarray(features[m][rows], dtype=np.float32)
                        for m in ("video", "audio")})
        return rec

    # -------------------------------------------------------------- outputs
    def output_paths(self, output_dir) -> List[Path]:
        out = [Path(output_dir) / f"{self.name}.pkl"]
        if self.per_window:
            out.append(Path(output_dir) / f"{self.name}_per_window.pkl")
        return out

    def write(self, items: Sequence[VideoItem], records, output_dir) -> List[Path]:
        paths = self.output_paths(output_dir)
        rows = [(it, r) for it, r in zip(items, records) if r is not None]
        stack = lambda key: torch.from_numpy(  # noqa: E731
            np.stack([r[key] for _, r in rows]) if rows else np.zeros((0, 512), np.float32))
        labels = lambda: torch.tensor([it.class_id for it, _ in rows], dtype=torch.long)  # noqa: E731
        names = [it.stem for it, _ in rows]
        out = {"video": stack("video"), "labels": labels(), "audio": stack("audio"), "filenames": names}
        atomic_pickle(out, paths[0])
        if self.per_window:
            if any("video_windows" not in r for _, r in rows):
                raise UserError(f"the shards of {self.name} hold no per-window features (extracted with "
                                f"--no_per_window or an older version): merge with --no_per_window, or "
                                f"extract again with --overwrite")
            atomic_pickle({"video": [r["video_windows"] for _, r in rows], "labels": labels(),
                           "audio": [r["audio_windows"] for _, r in rows], "filenames": list(names)},
                          paths[1])
        return paths
