"""VGGish post-processing: PCA, clipping to [-2, 2] and 8-bit quantisation (vggish_postprocess.py)."""
from pathlib import Path
from typing import Optional

import numpy as np

from src.errors import UserError
from src.extraction.weights import require_file

from . import params as P

PCA_SOURCE = ("vggish_pca_params.npz, AudioSet's VGGish PCA parameters, published beside "
              "vggish_model.ckpt in the TensorFlow models repository (research/audioset/vggish)")


class PCAQuantiser:
    """embeddings float [M, 128] -> uint8 [M, 128]: `(x - mean) @ eigenvectors.T`, clip to
    [-2, 2], truncate `(x + 2) * 63.75` (float64, as the numpy original)."""

    def __init__(self, eigen_vectors: np.ndarray, means: np.ndarray):
        self.eigen_vectors = np.asarray(eigen_vectors, np.float64)   # [128, 128]
        self.means = np.asarray(means, np.float64).reshape(-1)       # [128]
        assert self.eigen_vectors.shape == (P.EMBEDDING_SIZE, P.EMBEDDING_SIZE), self.eigen_vectors.shape
        assert self.means.shape == (P.EMBEDDING_SIZE,), self.means.shape

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        pca = (np.asarray(embeddings, np.float64) - self.means) @ self.eigen_vectors.T
        clipped = np.clip(pca, P.QUANTIZE_MIN, P.QUANTIZE_MAX)
        scale = 255.0 / (P.QUANTIZE_MAX - P.QUANTIZE_MIN)            # 63.75
        return ((clipped - P.QUANTIZE_MIN) * scale).astype(np.uint8)


def load_pca(path: Optional[str], random_init: bool = False) -> PCAQuantiser:
    """The PCA of `path`, or with `random_init` identity eigenvectors and zero means."""
    if random_init:
        return PCAQuantiser(np.eye(P.EMBEDDING_SIZE), np.zeros(P.EMBEDDING_SIZE))
    path = require_file(path, "VGGish PCA parameters (vggish_pca_params.npz)", "--vggish_pca",
                        PCA_SOURCE)
    try:
        with np.load(Path(path)) as f:
            return PCAQuantiser(f["pca_eigen_vectors"], f["pca_means"])
    except (KeyError, ValueError, OSError) as err:
        raise UserError(f"{path} is not a VGGish PCA file with pca_eigen_vectors and pca_means: "
                        f"{err}") from None
