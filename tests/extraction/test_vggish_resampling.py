"""VGGish resampling: the published (resampy 0.2.2) kaiser_best under --match_published
against values resampy 0.2.2 itself gave, and how far the installed resampy's is from it."""
import numpy as np
import pytest
import resampy

from audioset_vggish_tensorflow_to_pytorch.mel import (PUBLISHED_ROLLOFF, log_mel,
                                                       published_kaiser_best, resample_published,
                                                       waveform_to_examples)


def three_tones(rate: int, n: int) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 7200 * t)
            + 0.1 * np.sin(2 * np.pi * 3000 * t + 1))


# Made by us: resampy 0.2.2 (pip install resampy==0.2.2, in a separate environment) ran
# resampy.resample(three_tones(rate, rate // 10), rate, 16000, filter="kaiser_best") and
# printed these output samples (index: value) and the sum of |y|. At 44.1 kHz the output
# time of sample 480 is 480 * 2.75625 = 1323 exactly, while 0.2.2's running sum of 2.75625
# falls just short of it: the samples 480 and 640 check that the running sum is kept.
RESAMPY_022 = {
    44100: ({0: 0.24741277635104558, 1: 0.17680551631420452, 79: 0.33264116598203464,
             80: 0.5611924459060927, 160: 0.37847171940320634, 480: 0.5619292036367468,
             640: -0.20967658025861094, 799: -0.1961584454046529, 1599: -0.09784875189151884},
            562.3835869469301),
    8000: ({0: 0.08516786968974371, 1: 0.05946651313631909, 2: -0.02937452639998015,
            3: -0.08501908890788656, 800: 0.08414709384969025, 1599: -0.055063792206680034},
           561.5528081453471),
}


@pytest.mark.parametrize("rate", sorted(RESAMPY_022))
def test_published_resampling_gives_resampy_022s_values(rate):
    y = resample_published(three_tones(rate, rate // 10), rate)
    samples, total = RESAMPY_022[rate]
    assert y.shape == (1600,) and y.dtype == np.float64
    for i, want in samples.items():
        assert y[i] == pytest.approx(want, abs=1e-15), i
    assert np.abs(y).sum() == pytest.approx(total, abs=1e-12)
    # the installed resampy's kaiser_best (0.3 and later) is another filter: far from them
    new = resampy.resample(three_tones(rate, rate // 10), rate, 16000, filter="kaiser_best")
    assert max(abs(new[i] - want) for i, want in samples.items()) > 1e-3


def test_published_filter_design():
    half, table, rolloff = published_kaiser_best()
    assert half.shape == (64 * 512 + 1,) and table == 512 and rolloff == PUBLISHED_ROLLOFF
    assert half[0] == rolloff                                   # sinc(0) = 1, window peak 1
    assert abs(half[-1]) < 1e-7                                 # the Kaiser taper's end
    assert np.all(np.diff(half[:table]) < 0)                    # main lobe falls off
    # sampled at the input's integer taps the filter sums to its DC gain, 1 (within 1e-3)
    assert 2 * half[::table].sum() - half[0] == pytest.approx(1.0, abs=1e-3)
    assert not half.flags.writeable


def test_published_resampling_is_a_good_resampler():
    # a 440 Hz tone at 44.1 kHz -> 16 kHz: away from the edges it is the tone sampled at
    # 16 kHz, up to 0.2.2's filter gain there, 1.0027 (resampy 0.2.2 itself: the same 0.00275)
    y = resample_published(np.sin(2 * np.pi * 440 * np.arange(44100) / 44100), 44100)
    assert len(y) == 16000
    want = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y - want)[500:-500].max() < 3e-3
    assert np.abs(y[500:-500]).max() == pytest.approx(1.0027, abs=1e-4)


def test_waveform_to_examples_published_switch():
    tone = np.sin(2 * np.pi * 440 * np.arange(88200) / 44100) * 0.5
    default = waveform_to_examples(tone, 44100)
    published = waveform_to_examples(tone, 44100, published=True)
    assert default.shape == published.shape == (2, 96, 64)
    assert np.array_equal(published, log_mel(resample_published(tone, 44100))[:192]
                          .reshape(2, 96, 64).astype(np.float32))
    assert not np.array_equal(default, published)               # the resampy versions differ
    at16k = np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)
    assert np.array_equal(waveform_to_examples(at16k, 16000, published=True),
                          waveform_to_examples(at16k, 16000))   # no resampling at 16 kHz
