"""The seed's entry point for splitting the vggsound features: `split_features.py --dataset vggsound`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splitting_scripts.split_features import main  # noqa: E402
from src.extraction.cli import entry  # noqa: E402

if __name__ == "__main__":
    entry("vggsound_split_features.py", lambda argv: main(argv, dataset="vggsound"))
