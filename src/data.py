"""Benchmark data: one dataset class for UCF, ActivityNet and VGGSound (PROTOCOL.md 1-2).

    ds = AVGZSLDataset("avgzsl_benchmark_datasets/UCF", "UCF", "main_features", "main_split")
    train = ds.split("train")        # SplitData: audio [N, D_a], video [N, D_v], targets [N], ...

The three datasets differ only in the row of `DATASETS` (word-vector file stem, mapping csv,
whether names match case-insensitively). Features of each folder
(`features/{method}/{audio,video}/{folder}/*.h5`) are validated once and cached as one
tensor file under `{root_dir}/_features_processed/{method}/{folder}.pt`, written
atomically and rebuilt when any source `.h5` changes (name, size or mtime) or the cache is
unreadable.
"""
import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import UserError
from .features_cache import load_folder

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class DatasetInfo:
    npy_stem: str           # features/{method}/text/word_embeddings_{npy_stem}_normed.npy
    mapping_csv: str        # class-split/{mapping_csv}, columns original,manual
    case_insensitive: bool  # class names matched case-insensitively across files


DATASETS: Dict[str, DatasetInfo] = {
    "UCF": DatasetInfo("ucf", "ucf_w2v_class_names.csv", case_insensitive=True),
    "ActivityNet": DatasetInfo("activity", "activitynet_w2v_class_names.csv", case_insensitive=True),
    "VGGSound": DatasetInfo("vggsound", "vggsound_w2v_class_names.csv", case_insensitive=False),
}

# dataset_split -> (feature folders read, class lists of seen classes, of unseen classes)
SPLITS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[str, ...]]] = {
    "train": (("stage_1_train",), ("stage_1_train",), ()),
    "val": (("stage_1_val_seen", "stage_1_val_unseen"), ("stage_1_val_seen",), ("stage_1_val_unseen",)),
    "train_val": (("stage_1_train", "stage_1_val_seen", "stage_1_val_unseen"),
                  ("stage_1_train", "stage_1_val_unseen"), ()),
    "test": (("stage_2_test_seen", "stage_2_test_unseen"), ("stage_2_test_seen",), ("stage_2_test_unseen",)),
}

PAIRINGS = ("correct", "original")


@dataclass
class SplitData:
    """One split as the training code sees it (PROTOCOL.md section 2).

    audio [N, D_a], video [N, D_v] float32; targets [N] global class indices; labels [N]
    positions of the targets in `class_ids`; class_ids [C] sorted global indices of the
    split's classes (seen and unseen); seen_mask [C] bool; text [C, 300] their word vectors;
    word_vectors [K, 300] the vectors of all K classes, row = class index.
    """
    name: str
    audio: torch.Tensor
    video: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    class_ids: torch.Tensor
    seen_mask: torch.Tensor
    text: torch.Tensor
    word_vectors: torch.Tensor
    urls: List[str] = field(default_factory=list)
    class_names: List[str] = field(default_factory=list)   # all K classes, sorted

    @property
    def seen_class_ids(self) -> torch.Tensor:
        return self.class_ids[self.seen_mask]

    @property
    def unseen_class_ids(self) -> torch.Tensor:
        return self.class_ids[~self.seen_mask]

    def __len__(self) -> int:
        return self.targets.shape[0]

    def to(self, device) -> "SplitData":
        moved = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in self.__dict__.items()}
        return SplitData(**moved)


def find_class_split_dir(root: Path) -> Path:
    for name in ("class-split", "class_split"):
        if (root / name).is_dir():
            return root / name
    raise UserError(f"{root}: no class-split/ (or class_split/) folder; --root_dir must point at "
                    f"one dataset folder of the benchmark, e.g. avgzsl_benchmark_datasets/UCF")


def read_class_list(path: Path) -> List[str]:
    if not path.is_file():
        raise UserError(f"missing class list {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_word_vector_file(path: Path) -> Dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"missing word vectors {path} (a pickled dict {{name: float32[300]}})")
    try:
        d = np.load(path, allow_pickle=True).item()
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise UserError(f"cannot read word vectors {path}: {err}") from None
    if not isinstance(d, dict) or not d:
        raise UserError(f"{path}: expected a non-empty pickled dict {{name: vector}}")
    return d


class AVGZSLDataset:
    """The features, classes and word vectors of one benchmark dataset folder.

    pairing: "correct" pairs each class with its own word vector through the mapping csv;
    "original" keeps the original code's pairing (row c of the vectors sorted by word2vec
    name for class index c, PROTOCOL.md "Text embedding pairing" [original defect]).
    input_size_audio / input_size_video, when given, are checked against the files.
    """

    def __init__(self, root_dir, dataset_name: str, feature_method="main_features",
                 zero_shot_split="main_split", pairing="correct",
                 input_size_audio: Optional[int] = None, input_size_video: Optional[int] = None,
                 cache: bool = True):
        if dataset_name not in DATASETS:
            raise UserError(f"unknown dataset {dataset_name!r}; known: {', '.join(DATASETS)}")
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
        self.root = Path(root_dir)
        if not self.root.is_dir():
            raise UserError(f"--root_dir {self.root} does not exist")
        self.name = dataset_name
        self.info = DATASETS[dataset_name]
        self.feature_method = str(feature_method)
        self.zero_shot_split = str(zero_shot_split)
        self.pairing = pairing
        self.sizes = {"audio": input_size_audio, "video": input_size_video}
        self.cache = cache

        self.split_dir = find_class_split_dir(self.root)
        self.class_split_dir = self.split_dir / self.zero_shot_split
        if not self.class_split_dir.is_dir():
            raise UserError(f"missing split folder {self.class_split_dir} (--zero_shot_split "
                            f"{self.zero_shot_split}); expected main_split or cls_split")
        self.feature_dir = self.root / "features" / self.feature_method
        if not self.feature_dir.is_dir():
            raise UserError(f"missing feature folder {self.feature_dir} (--feature_extraction_method "
                            f"{self.feature_method}); expected main_features or cls_features")
        all_class = self.split_dir / "all_class.txt"
        # Class index = position in Python's case-sensitive sort of all_class.txt (PROTOCOL.md 1).
        self.class_names: List[str] = sorted(set(read_class_list(all_class)))
        if not self.class_names:
            raise UserError(f"{all_class} lists no class")
        self._index = {self.key(n): i for i, n in enumerate(self.class_names)}
        self.word_vectors = self._pair_word_vectors()
        self._folders: Dict[str, dict] = {}

    # -- names ---------------------------------------------------------------------------
    def key(self, name: str) -> str:
        """Matching key of a class name (lower-cased for UCF and ActivityNet, never for sorting)."""
        name = name.strip()
        return name.lower() if self.info.case_insensitive else name

    def class_index(self, name: str, source) -> int:
        try:
            return self._index[self.key(name)]
        except KeyError:
            raise UserError(f"class {name!r} of {source} is not in "
                            f"{self.split_dir / 'all_class.txt'}") from None

    def class_ids_of(self, list_names: Sequence[str]) -> List[int]:
        ids = set()
        for list_name in list_names:
            path = self.class_split_dir / f"{list_name}.txt"
            ids.update(self.class_index(n, path) for n in read_class_list(path))
        return sorted(ids)

    # -- word vectors --------------------------------------------------------------------
    @property
    def word_vector_path(self) -> Path:
        return self.feature_dir / "text" / f"word_embeddings_{self.info.npy_stem}_normed.npy"

    def _read_mapping(self) -> Dict[str, str]:
        path = self.split_dir / self.info.mapping_csv
        if not path.is_file():
            raise UserError(f"missing class-name mapping {path} (columns original,manual)")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"original", "manual"} <= set(rows[0]):
            raise UserError(f"{path}: expected the columns original,manual")
        return {self.key(r["original"]): r["manual"].strip() for r in rows}

    def _pair_word_vectors(self) -> torch.Tensor:
        """[K, 300] float32, row c = the vector of class c under the chosen pairing."""
        path = self.word_vector_path
        w2v = load_word_vector_file(path)
        if self.pairing == "original":
            # [original defect] rows sorted by word2vec name, taken by class index.
            names = sorted(w2v)
            if len(names) < len(self.class_names):
                raise UserError(f"{path} holds {len(names)} vectors for {len(self.class_names)} classes")
            rows = [w2v[n] for n in names[:len(self.class_names)]]
        else:
            mapping = self._read_mapping()
            rows = []
            for name in self.class_names:
                manual = mapping.get(self.key(name))
                if manual is None:
                    raise UserError(f"class {name!r} is missing from the mapping "
                                    f"{self.split_dir / self.info.mapping_csv}")
                if manual not in w2v:
                    raise UserError(f"class {name!r} (word2vec name {manual!r}) has no vector in {path}")
                rows.append(w2v[manual])
        vectors = torch.from_numpy(np.stack([np.asarray(r, dtype=np.float32).reshape(-1) for r in rows]))
        if not torch.isfinite(vectors).all():
            raise UserError(f"{path} holds NaN or Inf values")
        return vectors

    # -- features ------------------------------------------------------------------------
    def folder(self, folder: str) -> dict:
        """Validated features of one feature folder, from the cache when it is current."""
        if folder not in self._folders:
            self._folders[folder] = load_folder(self.root, self.feature_dir, folder, self.sizes,
                                                use_cache=self.cache)
        return self._folders[folder]

    def split(self, name: str) -> SplitData:
        if name not in SPLITS:
            raise ValueError(f"dataset_split must be one of {list(SPLITS)}, got {name!r}")
        folders, seen_lists, unseen_lists = SPLITS[name]
        seen = self.class_ids_of(seen_lists)
        unseen = sorted(set(self.class_ids_of(unseen_lists)) - set(seen))
        class_ids = sorted(set(seen) | set(unseen))
        if not class_ids:
            raise UserError(f"split {name!r} has no class: the lists "
                            f"{', '.join(f'{l}.txt' for l in seen_lists + unseen_lists)} in "
                            f"{self.class_split_dir} are empty")
        wanted = torch.zeros(len(self.class_names), dtype=torch.bool)
        wanted[class_ids] = True

        audio, video, targets, urls = [], [], [], []
        for folder in folders:
            data = self.folder(folder)
            file_ids = torch.tensor([self.class_index(s, self.feature_dir / "audio" / folder / f"{s}.h5")
                                     if self.key(s) in self._index else -1 for s in data["classes"]],
                                    dtype=torch.long)
            present = set(file_ids.tolist())
            for c in self.class_ids_of([folder]):
                if c not in present:
                    raise UserError(f"class {self.class_names[c]!r} is listed in "
                                    f"{self.class_split_dir / (folder + '.txt')} but has no "
                                    f"{self.feature_dir / 'audio' / folder / (self.class_names[c] + '.h5')}")
            row_ids = file_ids[data["row_class"]]                            # [n] global ids (-1 unknown)
            keep = (row_ids >= 0) & wanted[row_ids.clamp(min=0)]
            audio.append(data["audio"][keep])
            video.append(data["video"][keep])
            targets.append(row_ids[keep])
            urls.extend(u for u, k in zip(data["urls"], keep.tolist()) if k)
        targets_t = torch.cat(targets)
        if targets_t.numel() == 0:
            raise UserError(f"split {name!r} holds no sample in {self.feature_dir}")
        class_ids_t = torch.tensor(class_ids, dtype=torch.long)
        position = torch.full((len(self.class_names),), -1, dtype=torch.long)
        position[class_ids_t] = torch.arange(len(class_ids))
        seen_set = set(seen)
        seen_mask = torch.tensor([c in seen_set for c in class_ids], dtype=torch.bool)
        return SplitData(name=name, audio=torch.cat(audio), video=torch.cat(video), targets=targets_t,
                         labels=position[targets_t], class_ids=class_ids_t, seen_mask=seen_mask,
                         text=self.word_vectors[class_ids_t], word_vectors=self.word_vectors,
                         urls=urls, class_names=self.class_names)


def dataset_from_args(args, pairing: Optional[str] = None) -> AVGZSLDataset:
    """The dataset a main.py / args.pkl Namespace describes."""
    if pairing is None:
        pairing = "original" if getattr(args, "reproduce_original", False) else "correct"
    return AVGZSLDataset(args.root_dir, args.dataset_name, args.feature_extraction_method,
                         args.zero_shot_split, pairing=pairing,
                         input_size_audio=args.input_size_audio, input_size_video=args.input_size_video)


def count_mispaired(dataset: AVGZSLDataset) -> int:
    """How many classes the original pairing gives another class's vector."""
    other = AVGZSLDataset(dataset.root, dataset.name, dataset.feature_method, dataset.zero_shot_split,
                          pairing="original" if dataset.pairing == "correct" else "correct")
    return int((dataset.word_vectors != other.word_vectors).any(dim=1).sum())
