"""The original's entry point for the vggsound CLIP / WavCaps features: `extract.py --dataset vggsound`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_feature_extraction.extract import main  # noqa: E402
from src.extraction.cli import entry  # noqa: E402

if __name__ == "__main__":
    entry("get_clip_features_vggsound.py", lambda argv: main(argv, dataset="vggsound"))
