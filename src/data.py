"""Benchmark data: one dataset class for UCF, ActivityNet and VGGSound (docs/protocol.md 1-2).

    ds = AVGZSLDataset("avgzsl_benchmark_datasets/UCF", "UCF", "main_features", "main_split")
    train = ds.split("train")        # SplitData: audio [N, D_a], video [N, D_v], targets [N], ...
    ds = AVGZSLDataset(root, "UCF", "cls_features_non_averaged", "cls_split")     # temporal (TCaF)
    train = ds.split("train")        # the same, with audio and video as Sequences of [T_i, D] tokens

The three datasets differ only in their row of `src.families.DATASETS` (word-vector file
stem, mapping csv, whether names match case-insensitively). Features of each folder
(`features/{method}/{audio,video}/{folder}/*.h5`) are validated once and cached as one
tensor file under `{root_dir}/_features_processed/{method}/{folder}.pt`, written
atomically and rebuilt when any source `.h5` changes (name, size or mtime) or the cache is
unreadable. A temporal family's folder (`features/*_non_averaged`, docs/tcaf.md 1) holds one `.pkl`
per class instead, with a [T_i, D] token sequence per video: the same splits, class lists and
checks, its audio and video read as `Sequences` (float32; uint8 VGGish codes keep their values
0..255; each modality keeps its own token counts, which may differ for SeLaVi, as TCaF accepts,
with a warning). Bad input (an empty or contradictory class list, a class without a sample, a
class mapped twice, word vectors that are not 300-d, broken `.h5` files) is a `UserError`
naming the file and the fix, raised before any training starts.
"""
import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .errors import UserError
from .families import DATASETS, FAMILIES, SPLITS, WORD_DIM, FeatureFamily, FolderFamily, family_of_args, folder_family
from .features_cache import load_folder
from .sequences import Sequences
from .storage import layout_of

log = logging.getLogger(__name__)
PAIRINGS = ("correct", "original")


@dataclass
class SplitData:
    """One split as the training code sees it (docs/protocol.md section 2).

    audio [N, D_a], video [N, D_v] float32 (for a temporal family: `Sequences`, sample i's
    tokens [T_i, D_a] and [T_j, D_v]); targets [N] global class indices; labels [N]
    positions of the targets in `class_ids`; class_ids [C] sorted global indices of the
    split's classes (seen and unseen); seen_mask [C] bool; text [C, 300] their word vectors;
    word_vectors [K, 300] the vectors of all K classes, row = class index.
    """
    name: str
    audio: Union[torch.Tensor, Sequences]
    video: Union[torch.Tensor, Sequences]
    targets: torch.Tensor
    labels: torch.Tensor
    class_ids: torch.Tensor
    seen_mask: torch.Tensor
    text: torch.Tensor
    word_vectors: torch.Tensor
    urls: List[str] = field(default_factory=list)         # video names; '{split}/{Class}.pkl#row{i}' for the
                                                           # videos of a CLIP/CLAP class file listing more names
                                                           # than rows (its names are not theirs, docs/clipclap.md 1.4)
    class_names: List[str] = field(default_factory=list)   # all K classes, sorted

    def __len__(self) -> int:
        return self.targets.shape[0]

    def to(self, device) -> "SplitData":
        moved = {k: (v.to(device) if callable(getattr(v, "to", None)) else v) for k, v in self.__dict__.items()}
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


def load_word_vector_file(path: Path, width: int = WORD_DIM) -> Dict[str, np.ndarray]:
    """{class name: float32 [width]} of a pickled `.npy` dict (word2vec: 300-d), every vector checked."""
    kind = "word2vec" if width == 300 else "class-embedding"
    if not path.is_file():
        raise UserError(f"missing word vectors {path} (a pickled dict {{name: float32[{width}]}})")
    try:
        d = np.load(path, allow_pickle=True).item()
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise UserError(f"cannot read word vectors {path}: {err}") from None
    if not isinstance(d, dict) or not d:
        raise UserError(f"{path}: expected a non-empty pickled dict {{name: vector}}")
    vectors, by_width = {}, {}
    for name, v in d.items():
        try:
            arr = np.asarray(v, dtype=np.float32)
        except (TypeError, ValueError):
            raise UserError(f"{path}: the vector of {name!r} is not numeric ({type(v).__name__}); "
                            f"expected float32[{width}] vectors") from None
        squeezed = arr.squeeze()
        got = str(squeezed.shape[0]) if squeezed.ndim == 1 else "x".join(map(str, arr.shape)) or "scalar"
        by_width.setdefault(got, []).append(str(name))
        vectors[name] = squeezed.reshape(-1)
    if set(by_width) != {str(width)}:
        shown = "; ".join(f"{w}-d: {len(n)} vector(s), e.g. {n[0]!r}"
                          for w, n in sorted(by_width.items(), key=lambda kv: -len(kv[1])))
        what = "have different widths" if len(by_width) > 1 else f"are not {width}-d"
        raise UserError(f"{path}: the word vectors {what} ({shown}); every vector must be "
                        f"{width}-d {kind}: use the benchmark's {path.name.rsplit('_', 2)[0]}_*_normed.npy")  # noqa: E501
    return vectors


class AVGZSLDataset:
    """The features, classes and word vectors of one benchmark dataset folder.

    pairing: "correct" pairs each class with its own word vector through the mapping csv;
    "original" keeps the original code's pairing (row c of the vectors sorted by word2vec
    name for class index c, docs/protocol.md "Text embedding pairing" [original defect]).
    input_size_audio / input_size_video, when given, are checked against the files.
    family: the feature folder's family (a run's, decided when its arguments were finalised); by
    default told by the folder (`folder_family`).
    """

    def __init__(self, root_dir, dataset_name: str, feature_method="main_features",
                 zero_shot_split="main_split", pairing="correct",
                 input_size_audio: Optional[int] = None, input_size_video: Optional[int] = None,
                 cache: bool = True, family: Optional[FeatureFamily] = None):
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
            known = " or ".join(dict.fromkeys(f.split for f in FAMILIES.values()))
            raise UserError(f"missing split folder {self.class_split_dir} (--zero_shot_split "
                            f"{self.zero_shot_split}); expected {known}")
        self.feature_dir = self.root / "features" / self.feature_method
        # the family and, when the folder's contents chose it here, what did
        self.family, self.family_evidence = (folder_family(self.feature_method, self.root, dataset_name)
                                             if family is None else FolderFamily(family))
        self.layout = layout_of(self.family)    # .h5 rows, .pkl token sequences (TCaF), .pkl vectors (CLIP/CLAP)
        self.temporal, self.vectors, self.ext = self.family.temporal, self.family.vectors, self.layout.ext
        if not self.feature_dir.is_dir():
            known = " or ".join(dict.fromkeys(f.folder for f in FAMILIES.values()))
            raise UserError(f"missing feature folder {self.feature_dir} (--feature_extraction_method "
                            f"{self.feature_method}); expected {known}")
        all_class = self.split_dir / "all_class.txt"
        # Class index = position in Python's case-sensitive sort of all_class.txt (docs/protocol.md 1).
        self.class_names: List[str] = sorted(set(read_class_list(all_class)))
        if not self.class_names:
            raise UserError(f"{all_class} lists no class")
        self._index = {self.key(n): i for i, n in enumerate(self.class_names)}
        self.word_vectors = self._pair_word_vectors()
        self._folders: Dict[str, dict] = {}     # the folders read into memory (no cache)
        self._loaded: set = set()               # the folders loaded once (their warnings logged)

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

    # -- word vectors --------------------------------------------------------------------
    @property
    def text_family(self) -> FeatureFamily:
        """The family whose class vectors this dataset uses (word2vec unless CLIP/CLAP's)."""
        return self.family if self.vectors else FAMILIES["main"]

    @property
    def text_dim(self) -> int:
        return self.text_family.text_width

    @property
    def word_vector_paths(self) -> List[Path]:
        return [self.feature_dir / "text" / f for f in self.text_family.text_files(self.info)]

    @property
    def mapping(self) -> Tuple[str, str]:
        """(class-split csv, column) naming each class's vector: word2vec's `manual` column, or
        CLIP/CLAP's names (UCF: `clip_class_name` of ucf_clip_class_names.csv)."""
        return self.info.clip_names if self.vectors else (self.info.mapping_csv, "manual")

    def _read_mapping(self) -> Dict[str, str]:
        """{matching key of a dataset class name: vector name}; a class mapped twice to
        different names is an error (the same row repeated is accepted)."""
        csv_name, column = self.mapping
        path = self.split_dir / csv_name
        if not path.is_file():
            raise UserError(f"missing class-name mapping {path} (columns original,{column})")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"original", column} <= set(rows[0]):
            raise UserError(f"{path}: expected the columns original,{column}")
        mapping: Dict[str, Tuple[str, str, int]] = {}       # key -> (original, manual, csv line)
        for line, r in enumerate(rows, start=2):
            original, manual = (r["original"] or "").strip(), (r[column] or "").strip()
            seen = mapping.setdefault(self.key(original), (original, manual, line))
            if seen[1] != manual:
                raise UserError(f"{path}: class {original!r} is mapped twice: line {seen[2]} maps {seen[0]!r} "
                                f"to {seen[1]!r}, line {line} maps {original!r} to {manual!r}; keep one row "
                                f"per class, with its word2vec name")
        return {k: v[1] for k, v in mapping.items()}

    def _pair_word_vectors(self) -> torch.Tensor:
        """[K, text_dim] float32, row c = the vector of class c under the chosen pairing; a family
        with several class-vector files (CLIP/CLAP) concatenates their rows, each paired alike."""
        self._check_text_files()
        mapping = self._read_mapping() if self.pairing == "correct" else None
        widths = [width for _, width in self.text_family.text]
        return torch.cat([self._pair_file(path, width, mapping)
                          for path, width in zip(self.word_vector_paths, widths)], dim=1)

    def _check_text_files(self) -> None:
        """A UserError naming the first missing class-vector file, what the family's class vectors
        are made of and where the file comes from."""
        missing = [p for p in self.word_vector_paths if not p.is_file()]
        if not missing:
            return
        family, text = self.text_family, self.feature_dir / "text"
        if len(family.text) > 1:            # CLIP/CLAP: [CLIP 512 || WavCaps 1024]
            model = {"word_embeddings": "clip", "wavcaps_word_embeddings": "wavcaps"}   # get_clip_embeddings' --models
            label = {"clip": "CLIP", "wavcaps": "WavCaps"}
            vectors = " || ".join(f"{label[model[stem]]} {width}" for stem, width in family.text)
            files = " and ".join(f"text/{f.name}" for f in self.word_vector_paths)
            models = ",".join(model[stem] for (stem, _), f in zip(family.text, self.word_vector_paths) if f in missing)
            evidence = self.family_evidence or folder_family(self.feature_method, self.root, self.name).evidence
            why = f" ({evidence})" if evidence else ""
            raise UserError(f"missing class embeddings {missing[0]}: {self.feature_dir} holds ClipClap's "
                            f"{family.networks} data{why}, whose class vectors are [{vectors}], {files} (pickled "
                            f"dicts {{class name: float32 vector}}): copy the file from ClipClap's data, or make it "
                            f"with clip_feature_extraction/get_clip_embeddings.py --dataset {self.info.clip_stem} "
                            f"--models {models} --output_dir {text}")
        raise UserError(f"missing word vectors {missing[0]} (a pickled dict {{name: float32[{family.text_width}]}}): "
                        f"copy the benchmark's text/{missing[0].name} (every word2vec family's text/ folder holds "
                        f"the same file)")

    def _pair_file(self, path: Path, width: int, mapping: Optional[Dict[str, str]]) -> torch.Tensor:
        w2v = load_word_vector_file(path, width)
        if mapping is None:
            # [original defect] rows sorted by word2vec name, taken by class index.
            names = sorted(w2v)
            if len(names) < len(self.class_names):
                raise UserError(f"{path} holds {len(names)} vectors for {len(self.class_names)} classes")
            rows = [w2v[n] for n in names[:len(self.class_names)]]
        else:
            rows = []
            for name in self.class_names:
                manual = mapping.get(self.key(name))
                if manual is None:
                    raise UserError(f"class {name!r} is missing from the mapping "
                                    f"{self.split_dir / self.mapping[0]}")
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
        if folder in self._folders:
            return self._folders[folder]
        data = load_folder(self.root, self.feature_dir, folder, self.sizes, self.family, use_cache=self.cache,
                           quiet=folder in self._loaded)        # its warnings once per dataset
        if folder not in self._loaded:
            self._loaded.add(folder)
            self._warn_unknown_classes(folder, data["classes"])
        if not data["mapped"]:      # read into memory: kept; memory-mapped: loaded again when needed, so
            self._folders[folder] = data    # that its pages leave memory with the splits made from it
        return data

    def _warn_unknown_classes(self, folder: str, stems: Sequence[str]) -> None:
        """One warning naming a folder's class files of no class of all_class.txt (their videos are
        never read; a class of all_class.txt left out of the split lists is dropped silently, as the
        real UCF cls_split test-unseen folder needs, docs/protocol.md 1)."""
        unknown = [f"{s}{self.ext}" for s in stems if self.key(s) not in self._index]
        if unknown:
            shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
            log.warning("%s: %s of no class of %s (%s): their videos are not read; rename such a file to its "
                        "class's name in all_class.txt, or remove it", self.feature_dir / "audio" / folder,
                        "1 file is" if len(unknown) == 1 else f"{len(unknown)} files are",
                        self.split_dir / "all_class.txt", shown)

    def _list_ids(self, list_name: str, role: str) -> List[int]:
        """Sorted class indices of one non-empty stage_*.txt list."""
        path = self.class_split_dir / f"{list_name}.txt"
        names = read_class_list(path)
        if not names:
            raise UserError(f"{path} lists no class, but {role} come from it; write its class names "
                            f"one per line (as in all_class.txt)")
        return sorted({self.class_index(n, path) for n in names})

    def _split_lists(self, name: str) -> Dict[str, List[int]]:
        """{list name: class ids} of every class list split `name` reads: none empty, and no
        class both in a seen and an unseen list."""
        folders, seen_lists, unseen_lists = SPLITS[name]
        ids: Dict[str, List[int]] = {}
        for lists, role in ((seen_lists, "the seen classes"), (unseen_lists, "the unseen classes"),
                            (folders, "the classes read from a feature folder")):
            for list_name in lists:
                if list_name not in ids:
                    ids[list_name] = self._list_ids(list_name, f"{role} of split {name!r}")
        for s_list in seen_lists:
            for u_list in unseen_lists:
                both = sorted(set(ids[s_list]) & set(ids[u_list]))
                if both:
                    shown = ", ".join(repr(self.class_names[c]) for c in both[:5])
                    more = f" and {len(both) - 5} more" if len(both) > 5 else ""
                    which = f"class {shown} is" if len(both) == 1 else f"{len(both)} classes ({shown}{more}) are"
                    raise UserError(f"{which} listed both in "
                                    f"{self.class_split_dir / (s_list + '.txt')} (seen) and in "
                                    f"{self.class_split_dir / (u_list + '.txt')} (unseen); a class of "
                                    f"split {name!r} is either seen or unseen: remove it from one list")
        return ids

    def split(self, name: str) -> SplitData:
        if name not in SPLITS:
            raise ValueError(f"dataset_split must be one of {list(SPLITS)}, got {name!r}")
        folders, seen_lists, unseen_lists = SPLITS[name]
        ids = self._split_lists(name)
        seen = sorted(set().union(*(ids[l] for l in seen_lists)))
        unseen = sorted(set().union(*(ids[l] for l in unseen_lists)))
        class_ids = sorted(set(seen) | set(unseen))
        wanted = torch.zeros(len(self.class_names), dtype=torch.bool)
        wanted[class_ids] = True

        audio, video, targets, urls = [], [], [], []
        whole = False
        files: Dict[int, List[str]] = {}          # class id -> ["{folder}/{stem}.h5"] read for it
        ext = self.ext
        for folder in folders:
            data = self.folder(folder)
            file_ids = torch.tensor([self.class_index(s, self.feature_dir / "audio" / folder / f"{s}{ext}")
                                     if self.key(s) in self._index else -1 for s in data["classes"]],
                                    dtype=torch.long)
            present = set(file_ids.tolist())
            if not data["classes"]:
                listed = [self.class_names[c] for c in ids[folder]]
                raise UserError(f"{self.feature_dir / 'audio' / folder} and video/{folder} hold no {ext} file, but "
                                f"{self.class_split_dir / (folder + '.txt')} lists {len(listed)} "
                                f"class{'es' if len(listed) > 1 else ''} (first: {listed[0]!r}); put one {ext} file "
                                f"per listed class ({{Class}}{ext}) in both folders")
            for c in ids[folder]:
                if c not in present:
                    raise UserError(f"class {self.class_names[c]!r} is listed in "
                                    f"{self.class_split_dir / (folder + '.txt')} but has no "
                                    f"{self.feature_dir / 'audio' / folder / (self.class_names[c] + ext)}")
            for stem, c in zip(data["classes"], file_ids.tolist()):
                if c >= 0 and wanted[c]:
                    files.setdefault(c, []).append(f"{folder}/{stem}{ext}")
            row_ids = file_ids[data["row_class"]]                            # [n] global ids (-1 unknown)
            keep = (row_ids >= 0) & wanted[row_ids.clamp(min=0)]
            # the token sequences of a memory-mapped folder read whole by a split of one folder (stage 1's train)
            # are the folder's as they are: no copy, a page read when a batch touches it (the same tensors as a
            # packed copy); rows ([N, D], a few MB) are copied as before
            whole = (data["mapped"] and len(folders) == 1 and isinstance(data["audio"], Sequences)
                     and bool(keep.all()))
            audio.append(data["audio"] if whole else data["audio"][keep])
            video.append(data["video"] if whole else data["video"][keep])
            targets.append(row_ids[keep])
            urls.extend(u for u, k in zip(data["urls"], keep.tolist()) if k)
        targets_t = torch.cat(targets)
        counts = torch.bincount(targets_t, minlength=len(self.class_names))
        empty = [c for c in class_ids if counts[c] == 0]
        if empty:
            self._no_sample_error(name, empty, files, ids)
        class_ids_t = torch.tensor(class_ids, dtype=torch.long)
        position = torch.full((len(self.class_names),), -1, dtype=torch.long)
        position[class_ids_t] = torch.arange(len(class_ids))
        seen_set = set(seen)
        seen_mask = torch.tensor([c in seen_set for c in class_ids], dtype=torch.bool)
        return SplitData(name=name, audio=_concat(audio, whole), video=_concat(video, whole), targets=targets_t,
                         labels=position[targets_t], class_ids=class_ids_t, seen_mask=seen_mask,
                         text=self.word_vectors[class_ids_t], word_vectors=self.word_vectors,
                         urls=urls, class_names=self.class_names)

    def _no_sample_error(self, name: str, empty: List[int], files: Dict[int, List[str]],
                         ids: Dict[str, List[int]]):
        """UserError naming the classes of split `name` without a sample and their .h5 (.pkl) files."""
        _, seen_lists, unseen_lists = SPLITS[name]

        def where(c: int) -> str:
            h5 = ", ".join(f"{self.feature_dir / 'audio' / f} and video/{f}" for f in files.get(c, []))
            lists = ", ".join(f"{l}.txt" for l in seen_lists + unseen_lists if c in ids[l])
            return f"{h5} hold 0 {'videos' if self.temporal else 'rows'}, and {lists} lists it"

        fix = (f"add the class's videos to its {self.ext} files or remove the class from the class lists in "
               f"{self.class_split_dir}")
        if len(empty) == 1:
            raise UserError(f"class {self.class_names[empty[0]]!r} of split {name!r} has no sample: "
                            f"{where(empty[0])}; {fix}")
        shown = "; ".join(f"{self.class_names[c]!r}: {where(c)}" for c in empty[:3])
        more = f"; and {len(empty) - 3} more" if len(empty) > 3 else ""
        raise UserError(f"{len(empty)} classes of split {name!r} have no sample ({shown}{more}); {fix}")


def _concat(parts: List[Union[torch.Tensor, Sequences]], whole: bool = False) -> Union[torch.Tensor, Sequences]:
    """The rows (or sequences, packed anew: one copy of the kept tokens) of several folders; whole: the
    one part is a memory-mapped folder's features, all of them (compact, as cached), returned as they are."""
    if whole:
        return parts[0]
    return Sequences.packed(parts) if isinstance(parts[0], Sequences) else torch.cat(parts)


def dataset_from_args(args, pairing: Optional[str] = None) -> AVGZSLDataset:
    """The dataset a main.py / args.pkl Namespace describes."""
    if pairing is None:
        pairing = "original" if args.reproduce_original else "correct"
    return AVGZSLDataset(args.root_dir, args.dataset_name, args.feature_extraction_method,
                         args.zero_shot_split, pairing=pairing,
                         input_size_audio=args.input_size_audio, input_size_video=args.input_size_video,
                         family=family_of_args(args))
