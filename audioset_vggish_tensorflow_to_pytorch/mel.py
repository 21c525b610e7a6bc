"""VGGish log-mel examples from a waveform (AudioSet's mel_features.py / vggish_input.py).

`waveform_to_examples(samples, rate)`: float mono samples in [-1, 1] at `rate` -> resampled
to 16 kHz with resampy's kaiser_best (when `rate` differs) -> log-mel `[T, 64]` -> complete
non-overlapping examples `[M, 96, 64]` (the tail is dropped).
"""
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


def waveform_to_examples(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mono float samples at `rate` -> float32 examples [M, 96, 64] (M may be 0)."""
    if rate != P.SAMPLE_RATE:
        import resampy  # imported here: numba compiles on first import
        samples = resampy.resample(np.asarray(samples, np.float64), rate, P.SAMPLE_RATE,
                                   filter="kaiser_best")
    return frame_examples(log_mel(samples)).astype(np.float32)
