"""Decoding with PyAV, written once for every extractor (docs/features.md).

    decoded = decode(path, frame_fn=resize, fps=25, audio=AudioSpec(rate=None, mono=False))
    decoded.frames      # [frame_fn(rgb) for every output frame], in order
    decoded.audio       # int16 [n_samples, channels]

One pass over the container demuxes the video and the audio stream together. Frames are
handed to `frame_fn` one at a time as RGB uint8 `[H, W, 3]`, so only the pre-processed
frames are kept in memory. With `fps` set, the video is converted to that constant rate on
the fly by ffmpeg's own `fps` filter (libavfilter through PyAV's filter graph, default
options: output frame k shows the last input frame whose timestamp, rounded to the nearest
output tick, is <= k; the stream ends at the last frame's end time rounded the same way);
with `fps=None` every decoded frame is taken in order, with no dropping or duplication.
"""
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, List, Optional, Set

import av
import av.error
import av.filter
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


class _FpsFilter:
    """Streaming frame-rate conversion with ffmpeg's own `fps` filter (libavfilter, through
    PyAV's filter graph): push decoded frames, get the output frames; `flush()` at the end
    of the stream drains the frames the filter still holds. Each output frame's `opaque` is
    the index of the input frame it shows (0, 1, ... in decoding order)."""

    def __init__(self, fps: float, first, time_base, rate: float):
        self.step = max(1, round(1 / (rate * time_base)))  # one source frame, in time_base
        self.graph = av.filter.Graph()
        src = self.graph.add_buffer(width=first.width, height=first.height, format=first.format,
                                    time_base=time_base)
        conv = self.graph.add("fps", f"fps={Fraction(fps).limit_denominator(1001)}")
        sink = self.graph.add("buffersink")
        src.link_to(conv)
        conv.link_to(sink)
        self.graph.configure()
        self.n_in = 0
        self.next_pts = None

    def push(self, frame) -> list:
        # a frame without a timestamp or duration follows its predecessor at the stream rate
        # (ffmpeg's command line also estimates missing ones from the frame rate)
        if frame.pts is None:
            frame.pts = self.next_pts if self.next_pts is not None else self.n_in * self.step
        if not frame.duration:
            frame.duration = self.step
        self.next_pts = frame.pts + frame.duration
        frame.opaque = self.n_in
        self.n_in += 1
        self.graph.push(frame)
        return self._drain()

    def flush(self) -> list:
        self.graph.push(None)
        return self._drain()

    def _drain(self) -> list:
        out = []
        while True:
            try:
                out.append(self.graph.pull())
            except (av.error.BlockingIOError, av.error.EOFError):
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
        converter = None
        resampler = None
        chunks = []

        last = [None, None]  # a frame repeated by the rate conversion is processed once

        def emit(frame):
            if wanted is None or out.n_frames in wanted:
                source = frame.opaque if converter is not None else out.n_frames
                if last[0] != source:
                    last[:] = source, frame_fn(frame.to_ndarray(format="rgb24"))
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
                        if not fps:
                            emit(frame)
                            continue
                        if converter is None:
                            converter = _FpsFilter(fps, frame, frame.time_base or vstream.time_base,
                                                   info.rate)
                        for f in converter.push(frame):
                            emit(f)
                    else:
                        if resampler is None:
                            resampler = av.AudioResampler(
                                format="s16", layout="mono" if audio.mono else frame.layout.name,
                                rate=audio.rate or frame.sample_rate)
                            out.audio_rate = audio.rate or frame.sample_rate
                        take_audio(resampler.resample(frame))
            if converter is not None:
                for f in converter.flush():   # the frames the filter holds until the end
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
