"""VGGish constants, as in AudioSet's vggish_params.py (docs/features.md, "Audio: VGGish")."""
SAMPLE_RATE = 16000
STFT_WINDOW_LENGTH = 400      # samples (25 ms)
STFT_HOP_LENGTH = 160         # samples (10 ms)
FFT_LENGTH = 512              # 2 ** ceil(log2(400))
NUM_MEL_BINS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01             # log(mel + 0.01)
EXAMPLE_FRAMES = 96           # 0.96 s of 10 ms frames per example, non-overlapping
EMBEDDING_SIZE = 128
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0
