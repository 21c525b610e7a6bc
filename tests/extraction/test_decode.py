"""Decoding: frame counts, frame-rate conversion, audio, failures, the video list."""
from fractions import Fraction

import numpy as np
import pytest

from src.errors import UserError
from src.extraction.decode import AudioSpec, Failure, decode
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
    assert got[0] == 0 and got[-1] == 2 * fps - 1         # starts at the first, ends at the last
    assert all(b >= a for a, b in zip(got, got[1:]))      # in order
    if fps < 25:
        assert set(got) == set(range(2 * fps))            # upsampling repeats, drops nothing
    else:
        assert len(set(got)) == len(got)                  # downsampling never repeats
    if fps == 30:  # ffmpeg's fps filter: output k shows the last input with round(t*25) <= k
        assert got[:6] == [0, 1, 2, 4, 5, 6]


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
