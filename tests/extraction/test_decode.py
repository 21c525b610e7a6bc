"""Decoding: frame counts, frame-rate conversion, audio, failures, the video list."""
from fractions import Fraction

import av
import av.error
import av.filter
import numpy as np
import pytest

from src.errors import UserError
from src.extraction.decode import AudioSpec, Failure, _FpsFilter, decode
from src.extraction.videos import list_videos

from .media import make_corrupt, make_video


def grey_index(frame):
    return int(round(frame.mean() / 4))  # media.pattern_frame("index"): grey level 4 * i


@pytest.mark.parametrize("ext,fps,n", [(".avi", 25, 50), (".mp4", 30, 60), (".mkv", 10, 20),
                                       (".mp4", Fraction(30000, 1001), 60)])
def test_every_frame_in_order_without_conversion(tmp_path, ext, fps, n):
    path = make_video(tmp_path / f"v{ext}", seconds=n / float(fps), fps=fps, pattern="index")
    d = decode(path, frame_fn=grey_index)
    assert d.n_frames == n and d.frames == list(range(n))
    assert d.info.rate == pytest.approx(float(fps))


@pytest.mark.parametrize("fps", [10, 30, 25])
def test_conversion_to_25_fps(tmp_path, fps):
    path = make_video(tmp_path / "v.avi", seconds=2, fps=fps, pattern="index")
    got = decode(path, frame_fn=grey_index, fps=25).frames
    assert len(got) == 50                                 # 2 s at 25 fps
    assert got[0] == 0 and got[-1] == 2 * fps - 1         # at these rates the last is shown
    assert all(b >= a for a, b in zip(got, got[1:]))      # in order
    if fps < 25:
        assert set(got) == set(range(2 * fps))            # upsampling repeats, drops nothing
    else:
        assert len(set(got)) == len(got)                  # downsampling never repeats
    if fps == 30:  # ffmpeg's fps filter: output k shows the last input with round(t*25) <= k
        assert got[:6] == [0, 1, 2, 4, 5, 6]


def ffmpeg_fps_reference(path, fps=25):
    """What ffmpeg's own `fps` filter makes of the video, run directly through a PyAV filter
    graph (buffer -> fps -> buffersink), flushed at the end: [(output pts, grey index)]."""
    out = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        graph = av.filter.Graph()
        src, conv, sink = graph.add_buffer(template=stream), graph.add("fps", f"fps={fps}"), \
            graph.add("buffersink")
        src.link_to(conv)
        conv.link_to(sink)
        graph.configure()

        def drain():
            while True:
                try:
                    f = graph.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                out.append((f.pts, grey_index(f.to_ndarray(format="rgb24"))))

        for frame in c.decode(stream):
            graph.push(frame)
            drain()
        graph.push(None)  # end of stream: the filter gives the frames it still holds
        drain()
    return out


@pytest.mark.parametrize("ext", [".avi", ".mp4", ".mkv"])
def test_50_fps_conversion_is_ffmpegs_fps_filter(tmp_path, ext):
    # 1 s at 50 fps -> exactly 25 frames, every other one: the last source frame (t = 0.98 s)
    # rounds to output tick 25 = the end of the stream, so ffmpeg drops it (no 26th frame)
    path = make_video(tmp_path / f"v{ext}", seconds=1, fps=50, pattern="index")
    ref = ffmpeg_fps_reference(path)
    assert [pts for pts, _ in ref] == list(range(25))
    assert [i for _, i in ref] == list(range(0, 50, 2))
    d = decode(path, frame_fn=grey_index, fps=25)
    assert d.n_frames == 25 and d.frame_indices == list(range(25))
    assert d.frames == [i for _, i in ref]


def test_fps_filter_frames_and_timestamps_equal_ffmpegs(tmp_path):
    # the decoder's converter against the reference graph, frame by frame: the same output
    # timestamps, each showing the same source frame (its `opaque` is the source index)
    path = make_video(tmp_path / "v.mp4", seconds=1, fps=50, pattern="index")
    ref = ffmpeg_fps_reference(path)
    got = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        conv = None
        for frame in c.decode(stream):
            conv = conv or _FpsFilter(25, frame, stream.time_base, float(stream.average_rate))
            got += conv.push(frame)
        got += conv.flush()
    assert [f.pts for f in got] == [pts for pts, _ in ref]
    assert [f.opaque for f in got] == [i for _, i in ref]     # source frame index = grey index
    assert all(f.time_base == Fraction(1, 25) for f in got)


def test_low_fps_source_repeats_frames_as_ffmpeg_does(tmp_path):
    # 1 s at 10 fps -> 25 frames: source i (t = i / 10) first shows at round(2.5 i), halves
    # rounded up, so frames are shown 3, 2, 3, 2, ... times
    path = make_video(tmp_path / "v.mkv", seconds=1, fps=10, pattern="index")
    expected = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 7, 7, 8, 8, 8, 9, 9]
    assert [i for _, i in ffmpeg_fps_reference(path)] == expected
    calls = []
    d = decode(path, frame_fn=lambda rgb: calls.append(1) or grey_index(rgb), fps=25)
    assert d.frames == expected
    assert len(calls) == 10                   # a repeated frame is pre-processed once


def test_audio_native_rate_channels(tmp_path):
    path = make_video(tmp_path / "v.mkv", seconds=1, fps=10, rate=44100, channels=2)
    d = decode(path, frame_fn=grey_index, audio=AudioSpec())
    assert d.audio_rate == 44100 and d.audio.dtype == np.int16 and d.audio.shape == (44100, 2)
    assert np.abs(d.audio).max() == pytest.approx(12000, rel=0.01)    # the sine tone survives
    m = decode(path, audio=AudioSpec(rate=16000, mono=True))
    assert m.audio_rate == 16000 and m.audio.shape[1] == 1 and abs(len(m.audio) - 16000) < 100


def test_failures(tmp_path):
    with pytest.raises(Failure, match="cannot open"):
        decode(make_corrupt(tmp_path / "bad.mp4"), frame_fn=grey_index)
    silent = make_video(tmp_path / "silent.avi", seconds=0.5, fps=10, audio=False)
    with pytest.raises(Failure, match="no audio track"):
        decode(silent, frame_fn=grey_index, audio=AudioSpec())
    truncated = tmp_path / "cut.avi"
    truncated.write_bytes(make_video(tmp_path / "full.avi", seconds=1, fps=10).read_bytes()[:600])
    with pytest.raises(Failure):
        decode(truncated, frame_fn=grey_index, audio=AudioSpec())


def test_video_list_layouts(tmp_path):
    for p in ("B/v_B_g01_c01.avi", "A/v_A_g02_c01.avi", "A/v_A_g01_c01.avi", "A/notes.txt"):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(b"")
    items = list_videos(tmp_path)
    assert [(i.path, i.label, i.class_id) for i in items] == [
        ("A/v_A_g01_c01.avi", "A", 0), ("A/v_A_g02_c01.avi", "A", 0), ("B/v_B_g01_c01.avi", "B", 1)]
    assert items[0].stem == "v_A_g01_c01" and items[0].file_name == "v_A_g01_c01.avi"
    (tmp_path / "list.csv").write_text("video,class\nB/v_B_g01_c01.avi,zeta\nA/v_A_g01_c01.avi,alpha\n")
    items = list_videos(tmp_path, str(tmp_path / "list.csv"))
    assert [(i.label, i.class_id) for i in items] == [("zeta", 1), ("alpha", 0)]
    with pytest.raises(UserError, match="not found"):
        list_videos(tmp_path / "nope")
