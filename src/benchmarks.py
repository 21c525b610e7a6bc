"""The benchmark as data: its datasets, feature families, class-list names and splits.

The only copy of these constants: data loading, the flags and their help, the run-script
recipes, the synthetic generator and the extraction/splitting CLIs all read them. A leaf
module: it imports nothing from the project.
"""
from dataclasses import dataclass
from typing import Dict, Tuple

WORD_DIM = 300      # word2vec class vectors


@dataclass(frozen=True)
class Dataset:
    npy_stem: str               # features/{folder}/text/word_embeddings_{npy_stem}_normed.npy
    mapping_csv: str            # class-split/{mapping_csv}, columns original,manual
    case_insensitive: bool      # class names matched case-insensitively across files
    run_tag: str                # run names: runs/{method}_{run_tag}_{val|all}_{family}
    aliases: Tuple[str, ...]    # --dataset of the extraction CLIs (lower case); the first is the one they use

    @property
    def word_vector_file(self) -> str:
        return f"word_embeddings_{self.npy_stem}_normed.npy"


DATASETS: Dict[str, Dataset] = {
    "UCF": Dataset("ucf", "ucf_w2v_class_names.csv", True, "ucf", ("ucf", "ucf101")),
    "ActivityNet": Dataset("activity", "activitynet_w2v_class_names.csv", True, "activity",
                           ("activity", "activitynet")),
    "VGGSound": Dataset("vggsound", "vggsound_w2v_class_names.csv", False, "vggsound", ("vggsound",)),
}
ALIASES: Dict[str, str] = {a: name for name, d in DATASETS.items() for a in d.aliases}   # alias -> name


@dataclass(frozen=True)
class Family:
    folder: str         # features/{folder}/ (--feature_extraction_method)
    split: str          # class-split/{split}/ (--zero_shot_split)
    audio_width: int    # --input_size_audio
    video_width: int    # --input_size_video
    networks: str       # the extractors, for help texts

    @property
    def widths(self) -> str:
        return f"{self.audio_width}/{self.video_width}"


FAMILIES: Dict[str, Family] = {
    "main": Family("main_features", "main_split", 512, 512, "SeLaVi"),
    "cls": Family("cls_features", "cls_split", 128, 4096, "VGGish/C3D"),
}

# The class lists of a split folder: class-split/{split}/{stage}.txt (and .csv), and the feature
# folders features/{folder}/{audio,video}/{stage}/.
STAGES = ("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen",
          "stage_2_train", "stage_2_test_seen", "stage_2_test_unseen")

# The training code's splits (dataset_split) -> (feature folders read, class lists of the seen
# classes, of the unseen classes).
SPLITS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[str, ...]]] = {
    "train": (("stage_1_train",), ("stage_1_train",), ()),
    "val": (("stage_1_val_seen", "stage_1_val_unseen"), ("stage_1_val_seen",), ("stage_1_val_unseen",)),
    "train_val": (("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen"),
                  ("stage_1_train", "stage_1_val_unseen"), ()),
    "test": (("stage_2_test_seen", "stage_2_test_unseen"), ("stage_2_test_seen",), ("stage_2_test_unseen",)),
}
