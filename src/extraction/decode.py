"""Decoding with PyAV, written once for every extractor (FEATURES.md).

    decoded = decode(path, frame_fn=resize, fps=25, audio=AudioSpec(rate=None, mono=False))
    decoded.frames      # [frame_fn(rgb) for every output frame], in order
    decoded.audio       # int16 [n_samples, channels]

One pass over the container demuxes the video and the audio stream together. Frames are
handed to `frame_fn` one at a time as RGB uint8 `[H, W, 3]`, so only the pre-processed
frames are kept in memory. With `fps` set, the video is converted to that constant rate on
the fly (like ffmpeg's `fps` filter: output frame k shows the last input frame whose
timestamp, rounded to the output rate, is <= k); with `fps=None` every decoded frame is
taken in order, with no dropping or duplication.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Set

import av
import numpy as np


class Failure(Exception):
    """A video the extractor skips: its message is the reason written to the failures file."""


@dataclass(frozen=True)
class AudioSpec:
    """How to decode the audio track: 16-bit PCM at `rate` (None: native), mono or native."""
    rate: Optional[int] = None
    mono: bool = False


@dataclass(frozen=True)
class VideoInfo:
    frame_count: int   # the container's frame count (0 when the container does not say)
    rate: float        # the stream's average frame rate (frames per second)
    width: int
    height: int


@dataclass
class Decoded:
    info: VideoInfo
    frames: List[Any] = field(default_factory=list)   # frame_fn outputs of the kept frames
    frame_indices: List[int] = field(default_factory=list)  # their output-frame indices
    n_frames: int = 0                                 # output frames seen (kept or not)
    audio: Optional[np.ndarray] = None                # int16 [n_samples, channels]
    audio_rate: int = 0


def _round_half_up(x: float) -> int:
    """Nearest integer, halves away from zero (ffmpeg's AV_ROUND_NEAR_INF); x >= 0 here."""
    return int(x + 0.5 + 1e-9)


class _ConstantRate:
    """Streaming frame-rate conversion: push input frames with their times, get output frames."""

    def __init__(self, fps: float):
        self.fps = fps
        self.t0 = None
        self.prev = None
        self.prev_time = 0.0
        self.next_k = 0

    def push(self, frame, t: float) -> list:
        if self.t0 is None:
            self.t0 = t
        slot = _round_half_up((t - self.t0) * self.fps)
        out = []
        if self.prev is not None:
            while self.next_k < slot:
                out.append(self.prev)
                self.next_k += 1
        self.prev, self.prev_time = frame, t
        return out

    def finish(self, frame_duration: float) -> list:
        if self.prev is None:
            return []
        end = _round_half_up((self.prev_time - self.t0 + frame_duration) * self.fps)
        end = max(end, self.next_k + 1)  # the last input frame is shown at least once
        out = [self.prev] * (end - self.next_k)
        self.next_k = end
        return out


def _open(path: Path):
    try:
        return av.open(str(path))
    except Exception as err:  # PyAV raises many error types for unreadable files
        raise Failure(f"cannot open: {type(err).__name__}: {err}") from None


def _video_info(stream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise Failure("video stream has no frame rate")
    return VideoInfo(int(stream.frames or 0), float(rate), stream.codec_context.width,
                     stream.codec_context.height)


def decode(path, *, frame_fn: Optional[Callable[[np.ndarray], Any]] = None,
           fps: Optional[float] = None,
           keep: Optional[Callable[[VideoInfo], Optional[Set[int]]]] = None,
           audio: Optional[AudioSpec] = None) -> Decoded:
    """Decode `path` once. `frame_fn` (None: no video decoding) maps each RGB uint8 frame
    [H, W, 3] to what is kept; `keep(info)` may return the set of output-frame indices to
    keep (None: all). `audio` (None: no audio) decodes the first audio track to int16.
    Raises `Failure` for a file that cannot be read, lacks a stream, or yields nothing."""
    path = Path(path)
    with _open(path) as container:
        if frame_fn is not None and not container.streams.video:
            raise Failure("no video stream")
        if audio is not None and not container.streams.audio:
            raise Failure("no audio track")
        vstream = container.streams.video[0] if frame_fn is not None else None
        astream = container.streams.audio[0] if audio is not None else None
        info = _video_info(container.streams.video[0]) if container.streams.video else None
        out = Decoded(info=info)
        wanted = keep(info) if (keep is not None and vstream is not None) else None
        converter = _ConstantRate(fps) if fps else None
        resampler = None
        chunks = []
        n_in = 0

        last = [None, None]  # a frame repeated by the rate conversion is processed once

        def emit(frame):
            if wanted is None or out.n_frames in wanted:
                if last[0] is not frame:
                    last[:] = frame, frame_fn(frame.to_ndarray(format="rgb24"))
                out.frames.append(last[1])
                out.frame_indices.append(out.n_frames)
            out.n_frames += 1

        def take_audio(frames):
            for f in frames:
                a = f.to_ndarray()  # packed s16: [1, n * channels]
                chunks.append(a.reshape(-1, len(f.layout.channels)))

        streams = [s for s in (vstream, astream) if s is not None]
        if vstream is not None:
            vstream.thread_type = "AUTO"
        try:
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if packet.stream is vstream:
                        if converter is None:
                            emit(frame)
                        else:
                            t = frame.time if frame.time is not None else n_in / info.rate
                            for f in converter.push(frame, t):
                                emit(f)
                        n_in += 1
                    else:
                        if resampler is None:
                            resampler = av.AudioResampler(
                                format="s16", layout="mono" if audio.mono else frame.layout.name,
                                rate=audio.rate or frame.sample_rate)
                            out.audio_rate = audio.rate or frame.sample_rate
                        take_audio(resampler.resample(frame))
            if converter is not None:
                for f in converter.finish(1.0 / info.rate):
                    emit(f)
            if resampler is not None:
                take_audio(resampler.resample(None))
        except Failure:
            raise
        except Exception as err:
            raise Failure(f"cannot decode: {type(err).__name__}: {err}") from None
    if vstream is not None and out.n_frames == 0:
        raise Failure("no decodable video frame")
    if astream is not None:
        if not chunks or sum(len(c) for c in chunks) == 0:
            raise Failure("audio track has no decodable samples")
        out.audio = np.concatenate(chunks, axis=0)
    return out


__all__ = ["AudioSpec", "Decoded", "Failure", "VideoInfo", "decode"]
