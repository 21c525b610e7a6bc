"""VGGish log-mel examples from a waveform (AudioSet's mel_features.py / vggish_input.py).

`waveform_to_examples(samples, rate)`: float mono samples in [-1, 1] at `rate` -> resampled
to 16 kHz with resampy's kaiser_best (when `rate` differs) -> log-mel `[T, 64]` -> complete
non-overlapping examples `[M, 96, 64]` (the tail is dropped).

resampy 0.3 replaced its `kaiser_best` filter (64 -> 50 zero crossings, another Kaiser
window and roll-off) and now computes the output times as products instead of a running
sum, so the installed resampy (0.4) does not give the resampling the published features
were made with (resampy 0.2.2). `published=True` rebuilds that resampling: the 0.2.2 filter
is generated here from its published design (`published_kaiser_best`) and run through the
installed resampy's interpolation kernel at 0.2.2's accumulated output times
(`resample_published`). See docs/extraction.md for how close it comes to 0.2.2.
"""
from functools import lru_cache

import numpy as np

from . import params as P


def hertz_to_mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_matrix(num_bins: int = P.NUM_MEL_BINS, num_spectrogram_bins: int = P.FFT_LENGTH // 2 + 1,
               rate: int = P.SAMPLE_RATE, lower_hz: float = P.MEL_MIN_HZ,
               upper_hz: float = P.MEL_MAX_HZ) -> np.ndarray:
    """[num_spectrogram_bins, num_bins] triangular filters, edges equally spaced in HTK mel,
    unnormalised, the DC bin weighted 0."""
    bins_mel = hertz_to_mel(np.linspace(0.0, rate / 2.0, num_spectrogram_bins))
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def log_mel(samples: np.ndarray) -> np.ndarray:
    """16 kHz mono float samples [n] -> log-mel [T, 64], T = 1 + (n - 400) // 160 (0 if n < 400)."""
    samples = np.asarray(samples, np.float64)
    win, hop = P.STFT_WINDOW_LENGTH, P.STFT_HOP_LENGTH
    t = 1 + (len(samples) - win) // hop if len(samples) >= win else 0
    if t == 0:
        return np.zeros((0, P.NUM_MEL_BINS))
    frames = np.lib.stride_tricks.as_strided(
        samples, shape=(t, win), strides=(samples.strides[0] * hop, samples.strides[0]))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)   # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, P.FFT_LENGTH))  # [T, 257]
    return np.log(magnitude @ mel_matrix() + P.LOG_OFFSET)


def frame_examples(mel: np.ndarray) -> np.ndarray:
    """log-mel [T, 64] -> complete non-overlapping examples [T // 96, 96, 64]."""
    m = len(mel) // P.EXAMPLE_FRAMES
    return mel[:m * P.EXAMPLE_FRAMES].reshape(m, P.EXAMPLE_FRAMES, mel.shape[1])


# resampy 0.2.2's kaiser_best, as its documentation states it: a windowed sinc of 64 zero
# crossings with a Kaiser window (beta 14.769656459379492), roll-off 0.9475937167399596 of
# Nyquist, tabulated at 512 points per zero crossing (its right half, 32769 values)
PUBLISHED_ZEROS, PUBLISHED_TABLE = 64, 512
PUBLISHED_BETA, PUBLISHED_ROLLOFF = 14.769656459379492, 0.9475937167399596


@lru_cache(maxsize=1)
def published_kaiser_best():
    """The right half of resampy 0.2.2's kaiser_best filter, generated from its design:
    (half window float64 [32769], table points per zero crossing, roll-off). Read-only."""
    import scipy.signal
    n = PUBLISHED_ZEROS * PUBLISHED_TABLE
    sinc = PUBLISHED_ROLLOFF * np.sinc(PUBLISHED_ROLLOFF * np.linspace(0, PUBLISHED_ZEROS, n + 1))
    half = scipy.signal.windows.kaiser(2 * n + 1, PUBLISHED_BETA)[n:] * sinc
    half.setflags(write=False)
    return half, PUBLISHED_TABLE, PUBLISHED_ROLLOFF


def resample_published(samples: np.ndarray, rate: int, new_rate: int = P.SAMPLE_RATE) -> np.ndarray:
    """Resample mono float samples from `rate` to `new_rate` as resampy 0.2.2's
    `resample(x, rate, new_rate, filter='kaiser_best')` did: int(n * new_rate / rate) output
    samples at times 0, d, d + d, ... (a running float64 sum of d = 1 / (new_rate / rate)),
    each a band-limited interpolation with the 0.2.2 filter (scaled by the ratio when
    downsampling). The interpolation is the installed resampy's own kernel."""
    # resampy 0.4's kernel (x, t_out, win, delta, table, scale, y) keeps `scale` in float64
    # (0.3's typed it float32, which would round the downsampling ratio)
    try:
        from resampy.interpn import resample_f_s
    except ImportError as err:  # pragma: no cover - the pinned resampy 0.4.3 has it
        raise RuntimeError(f"the published resampling needs resampy 0.4 ({err})") from None
    x = np.ascontiguousarray(samples, np.float64)
    ratio = float(new_rate) / rate
    n_out = int(len(x) * ratio)
    if n_out < 1:
        raise ValueError(f"{len(x)} samples are too few to resample from {rate} to {new_rate} Hz")
    half, table, _ = published_kaiser_best()
    if ratio < 1:
        half = half * ratio
    delta = np.diff(half, append=half[-1])                 # the last difference is 0
    t_out = np.zeros(n_out)
    np.cumsum(np.full(n_out - 1, 1.0 / ratio), out=t_out[1:])  # sequential sum, as 0.2.2
    y = np.zeros(n_out)
    resample_f_s(x, t_out, half, delta, table, min(1.0, ratio), y)
    return y


def waveform_to_examples(samples: np.ndarray, rate: int, published: bool = False) -> np.ndarray:
    """Mono float samples at `rate` -> float32 examples [M, 96, 64] (M may be 0). The audio
    is resampled to 16 kHz with the installed resampy's kaiser_best, or with `published`,
    with resampy 0.2.2's (`resample_published`), as the released features were."""
    if rate != P.SAMPLE_RATE:
        if published:
            samples = resample_published(samples, rate)
        else:
            import resampy  # imported here: numba compiles on first import
            samples = resampy.resample(np.asarray(samples, np.float64), rate, P.SAMPLE_RATE,
                                       filter="kaiser_best")
    return frame_examples(log_mel(samples)).astype(np.float32)
