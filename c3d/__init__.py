"""C3D (Tran et al. 2015), the Sports-1M model ported to PyTorch, and its pre-processing."""
from .model import C3D, load_c3d
from .preprocess import C3D_MEAN, C3D_STD, CLIP_LEN, c3d_frame, frames_to_clips, normalise_clips

__all__ = ["C3D", "load_c3d", "C3D_MEAN", "C3D_STD", "CLIP_LEN", "c3d_frame", "frames_to_clips",
           "normalise_clips"]
