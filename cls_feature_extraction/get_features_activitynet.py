"""The seed's entry point for the activity C3D / VGGish features: `extract.py --dataset activity`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cls_feature_extraction.extract import main  # noqa: E402
from src.extraction.cli import entry  # noqa: E402

if __name__ == "__main__":
    entry("get_features_activitynet.py", lambda argv: main(argv, dataset="activity"))
