"""VGGish (Hershey et al. 2017) ported from TensorFlow: log-mel front end, network, PCA.

    examples = waveform_to_examples(samples, rate)      # float32 [M, 96, 64]
    model = load_vggish(path)                           # [M, 1, 96, 64] -> [M, 128]
    post = load_pca(pca_path)                           # [M, 128] -> uint8 [M, 128]
"""
from .mel import log_mel, frame_examples, waveform_to_examples
from .model import VGGish, load_vggish
from .postprocess import PCAQuantiser, load_pca

__all__ = ["log_mel", "frame_examples", "waveform_to_examples", "VGGish", "load_vggish",
           "PCAQuantiser", "load_pca"]
