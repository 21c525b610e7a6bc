"""Short test videos made with PyAV: moving bars (or frames whose grey level codes their
index) and a sine tone, in a few containers and frame rates."""
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODECS = {".avi": ("mpeg4", "pcm_s16le"), ".mp4": ("libx264", "aac"), ".mkv": ("mpeg4", "flac")}


def pattern_frame(i: int, width: int, height: int, pattern: str = "bars") -> np.ndarray:
    """RGB uint8 [H, W, 3]: "bars" move 2 px per frame; "index" is grey level 4 * i."""
    if pattern == "index":
        return np.full((height, width, 3), (4 * i) % 256, np.uint8)
    x = np.broadcast_to((np.arange(width)[None, :] + 2 * i) % 16 < 8, (height, width))
    y = np.broadcast_to(np.arange(height)[:, None] / max(height - 1, 1), (height, width))
    img = np.stack([x * 200 + 20, y * 180 + 30, (1 - y) * 150 + x * 50], axis=-1)
    return img.astype(np.uint8)


def make_video(path, *, seconds: float = 1.0, fps=25, size=(64, 48), audio: bool = True,
               audio_seconds=None, rate: int = 16000, channels: int = 1, tone_hz: float = 440.0,
               pattern: str = "bars") -> Path:
    """Write a video of `seconds` at `fps` (int or Fraction) with `size` (W, H); with `audio`,
    a sine tone of `audio_seconds` (default: `seconds`) at `rate` Hz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vcodec, acodec = CODECS[path.suffix]
    width, height = size
    n = int(round(seconds * fps))
    with av.open(str(path), "w") as c:
        v = c.add_stream(vcodec, rate=Fraction(fps).limit_denominator(1001))
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        if vcodec == "mpeg4":
            v.codec_context.qmax = 2  # near lossless, so grey levels survive
        else:
            v.options = {"crf": "1"}
        a = None
        if audio:
            a = c.add_stream(acodec, rate=rate)
            a.layout = "mono" if channels == 1 else "stereo"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, width, height, pattern), format="rgb24")
            for p in v.encode(frame):
                c.mux(p)
        if a is not None:
            total = int(round((audio_seconds if audio_seconds is not None else seconds) * rate))
            t = np.arange(total) / rate
            wave = (np.sin(2 * np.pi * tone_hz * t) * 12000).astype(np.int16)
            fmt = "s16" if acodec != "aac" else "fltp"
            for start in range(0, total, 1024):
                chunk = wave[start:start + 1024]
                data = np.repeat(chunk[None], channels, axis=0)
                if fmt == "s16":
                    frame = av.AudioFrame.from_ndarray(data.T.reshape(1, -1).copy(), format="s16",
                                                       layout=a.layout.name)
                else:
                    frame = av.AudioFrame.from_ndarray((data / 32768.0).astype(np.float32),
                                                       format="fltp", layout=a.layout.name)
                frame.sample_rate, frame.pts = rate, start
                for p in a.encode(frame):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    return path


def make_corrupt(path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return path
