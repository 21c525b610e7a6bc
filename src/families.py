"""The benchmark as data: its datasets, feature families, class-list names and splits.

The only copy of these constants: data loading, the flags and their help, the run-script
recipes, the synthetic generator and the extraction/splitting CLIs all read them. A leaf
module: it imports only the project's UserError.

A feature family (`FeatureFamily`: its folder, split, widths, storage layout, token rates and
class vectors) is decided once per run, by `folder_family` (the one table from folder names to
families, and the one look at a folder's contents, for the name two families share), when the
run's arguments are finalised; it is recorded in them as `feature_family` (saved in args.pkl)
and handed on as the object (`family_of_args`) to the data layer, the cache and the builders.
"""
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Dict, NamedTuple, Optional, Tuple

from .errors import UserError

WORD_DIM = 300      # word2vec class vectors (the text width of every family but CLIP/CLAP's)


@dataclass(frozen=True)
class Dataset:
    npy_stem: str               # features/{folder}/text/word_embeddings_{npy_stem}_normed.npy
    mapping_csv: str            # class-split/{mapping_csv}, columns original,manual
    case_insensitive: bool      # class names matched case-insensitively across files
    run_tag: str                # run names: runs/{method}_{run_tag}_{val|all}_{family}
    aliases: Tuple[str, ...]    # --dataset of the extraction CLIs (lower case); the first is the one they use
    clip_stem: str = ""         # CLIP/CLAP class embeddings: text/{word_embeddings,wavcaps_word_embeddings}_{clip_stem}_normed.npy
    clip_names: Tuple[str, str] = ("", "manual")    # CLIP/CLAP class names: (class-split csv, column)

    @property
    def word_vector_file(self) -> str:
        return f"word_embeddings_{self.npy_stem}_normed.npy"


DATASETS: Dict[str, Dataset] = {
    "UCF": Dataset("ucf", "ucf_w2v_class_names.csv", True, "ucf", ("ucf", "ucf101"), "ucf",
                   ("ucf_clip_class_names.csv", "clip_class_name")),
    "ActivityNet": Dataset("activity", "activitynet_w2v_class_names.csv", True, "activity",
                           ("activity", "activitynet"), "activitynet", ("activitynet_w2v_class_names.csv", "manual")),
    "VGGSound": Dataset("vggsound", "vggsound_w2v_class_names.csv", False, "vggsound", ("vggsound",), "vggsound",
                        ("vggsound_w2v_class_names.csv", "manual")),
}
ALIASES: Dict[str, str] = {a: name for name, d in DATASETS.items() for a in d.aliases}   # alias -> name


@dataclass(frozen=True)
class FeatureFamily:
    key: str            # its FAMILIES key, recorded in a run's args.pkl as `feature_family` ("": a folder
                        # name no family has, told by its files each time, see `unnamed_family`)
    folder: str         # features/{folder}/ (--feature_extraction_method)
    split: str          # class-split/{split}/ (--zero_shot_split's default; "": none, the flag must say)
    audio_width: Optional[int]      # --input_size_audio (None: not known)
    video_width: Optional[int]      # --input_size_video
    networks: str       # the extractors, for help texts
    layout: str = "h5"  # how its folder stores the features (src/storage.py): "h5" one averaged vector per
                        # video in .h5 files; "sequences" one token sequence per video in .pkl files (docs/tcaf.md 1);
                        # "vectors" one vector per video in .pkl files (docs/clipclap.md 3), read as [N, D]
    audio_rate: float = 1.0         # seconds between two tokens (TCaF's time embedding; the extractors'
    video_rate: float = 1.0         # windows: one VGGish example, one C3D clip; SeLaVi's windows 1 s apart)
    audio_dtype: str = "float32"    # as stored on disk ("uint8": quantised VGGish, values 0..255)
    same_length: bool = False       # audio and video tokens are the same windows, so T_a = T_v is expected;
                                    # videos where they differ load with a warning (TCaF pads each modality
                                    # on its own)
    text: Tuple[Tuple[str, int], ...] = (("word_embeddings", WORD_DIM),)   # class vectors: (file stem, width),
                                    # concatenated in this order; text/{stem}_{dataset stem}_normed.npy
    data_subdir: str = ""           # its datasets' folder under the benchmark folder ("": the benchmark's own)
    selavi: bool = False            # SeLaVi's features (TCaF's --selavi True)

    @property
    def temporal(self) -> bool:
        """One token sequence per video (TCaF's features)."""
        return self.layout == "sequences"

    @property
    def vectors(self) -> bool:
        """One CLIP/CLAP vector per video in .pkl files (ClipClap's features)."""
        return self.layout == "vectors"

    @property
    def pickled(self) -> bool:
        """Features in one .pkl per class (temporal or CLIP/CLAP), not .h5 files."""
        return self.layout != "h5"

    @property
    def widths(self) -> str:
        return f"{self.audio_width}/{self.video_width}"

    @property
    def kind(self) -> str:
        """What its folder holds, for messages: e.g. "VGGish/C3D token sequences"."""
        what = "token sequences" if self.temporal else "vectors, one per video" if self.vectors else "averaged features"
        return f"{self.networks.split(',')[0]} {what}" if self.key else what

    @property
    def text_width(self) -> int:
        return sum(width for _, width in self.text)

    def text_files(self, dataset: Dataset) -> Tuple[str, ...]:
        stem = dataset.clip_stem if self.vectors else dataset.npy_stem
        return tuple(f"{name}_{stem}_normed.npy" for name, _ in self.text)


FAMILIES: Dict[str, FeatureFamily] = {f.key: f for f in (
    FeatureFamily("main", "main_features", "main_split", 512, 512, "SeLaVi", selavi=True),
    FeatureFamily("cls", "cls_features", "cls_split", 128, 4096, "VGGish/C3D", audio_rate=0.96, video_rate=0.64),
    # TCaF's temporal features (docs/tcaf.md 1): the same extractors and splits, not averaged over time
    FeatureFamily("main_temporal", "main_features_non_averaged", "main_split", 512, 512, "SeLaVi, temporal",
                  layout="sequences", same_length=True, selavi=True),
    FeatureFamily("cls_temporal", "cls_features_non_averaged", "cls_split", 128, 4096, "VGGish/C3D, temporal",
                  layout="sequences", audio_rate=0.96, video_rate=0.64, audio_dtype="uint8"),
    # ClipClap's features (docs/clipclap.md 3): WavCaps audio and CLIP image vectors in TCaF's folder name,
    # class vectors [CLIP 512 || WavCaps 1024]; their own data folder (the folder name is cls_temporal's)
    FeatureFamily("clip", "cls_features_non_averaged", "cls_split", 1024, 512, "WavCaps/CLIP", layout="vectors",
                  text=(("word_embeddings", 512), ("wavcaps_word_embeddings", 1024)), data_subdir="ClipClap"),
)}
# The averaged families of the benchmark (the eight averaged methods' tables, run scripts and
# reproduction grid), the temporal ones (TCaF) and CLIP/CLAP's (ClipClap; every averaged method too).
AVERAGED_FAMILIES: Dict[str, FeatureFamily] = {k: f for k, f in FAMILIES.items() if not f.pickled}
TEMPORAL_FAMILIES: Dict[str, FeatureFamily] = {k: f for k, f in FAMILIES.items() if f.temporal}
TEMPORAL_OF: Dict[str, str] = {"main": "main_temporal", "cls": "cls_temporal"}   # averaged key -> temporal key


def dataset_root(data_dir, dataset: str, family: FeatureFamily) -> Path:
    """A dataset's folder for a family: {data_dir}/{dataset}, or under the family's own data folder
    ({data_dir}/ClipClap/{dataset} for CLIP/CLAP: its folder name is a temporal family's)."""
    return Path(data_dir) / family.data_subdir / dataset


def clip_class_name(name: str) -> str:
    """ClipClap's UCF class name (`clip_class_name` of ucf_clip_class_names.csv, docs/clipclap.md 2): a
    space before every capital but the first (`ApplyEyeMakeup` -> `Apply Eye Makeup`), except
    `HandstandPushups` -> `Hand Stand Pushups`."""
    if name.lower() == "handstandpushups":
        return "Hand Stand Pushups"
    return "".join(f" {ch}" if ch.isupper() and i else ch for i, ch in enumerate(name))


# The one table from a feature folder's name to its families. Two families share one name: TCaF's C3D/VGGish
# token sequences and ClipClap's CLIP/CLAP vectors (its original layout) are both `cls_features_non_averaged`.
FOLDERS: Dict[str, Tuple[FeatureFamily, ...]] = {
    folder: tuple(f for f in FAMILIES.values() if f.folder == folder)
    for folder in dict.fromkeys(f.folder for f in FAMILIES.values())}


class FolderFamily(NamedTuple):
    """What a feature folder holds: its family and, when its contents chose it, what in them did
    (e.g. "text/wavcaps_word_embeddings_ucf_normed.npy is present")."""
    family: FeatureFamily
    evidence: str = ""


def folder_family(folder, root=None, dataset: Optional[str] = None) -> FolderFamily:
    """The one place that tells what a feature folder holds. `folder`: a name or a path ending in
    it. Its name tells the family (FOLDERS), except `cls_features_non_averaged`, which is TCaF's
    (C3D/VGGish token sequences) and ClipClap's (CLIP/CLAP vectors): with the dataset folder `root`
    (and its dataset name), the folder is ClipClap's when its contents look like ClipClap's data
    (`clipclap_evidence`), even where a file of it is missing (the data loader then names the file),
    and TCaF's otherwise. A name of no family is told by its files alone (`unnamed_family`: in
    {root}/features/, or the folder as given when there is no `root`). This is the only look at a folder's contents: the family is decided once, when a
    run's arguments are finalised (or a saved run's are read), and carried from there
    (`family_of_args`)."""
    name = PurePath(str(folder)).name
    matches = FOLDERS.get(name, ())
    if len(matches) > 1 and root is not None:
        evidence = clipclap_evidence(Path(root) / "features" / name, dataset)
        if evidence:
            return FolderFamily(FAMILIES["clip"], evidence)
    if not matches:
        # where the data loader reads it, {root}/features/{folder}; with no dataset folder, the folder as given
        return unnamed_family(name, Path(str(folder)) if root is None else Path(root) / "features" / str(folder))
    return FolderFamily(next((f for f in matches if not f.vectors), matches[0]))


NO_FAMILY = "features of no known family"     # an unnamed family's `networks`


def unnamed_family(name: str, feature_dir: Path) -> FolderFamily:
    """The family of a feature folder whose name no family has, from its class files (`folder_layout`):
    .h5 rows; .pkl token sequences (TCaF's layout); .pkl 1-d vectors (ClipClap's layout, and so its
    class vectors, [CLIP 512 || WavCaps 1024]). Nothing else is known: its split is --zero_shot_split's
    (split ""), its widths are the files' and its token rates 1 s apart. UserError when the folder
    holds no class files."""
    layout, evidence = folder_layout(feature_dir)
    text = FAMILIES["clip"].text if layout == "vectors" else FeatureFamily.text
    return FolderFamily(FeatureFamily("", name, "", None, None, NO_FAMILY, layout=layout, text=text), evidence)


def folder_layout(feature_dir: Path) -> Tuple[str, str]:
    """(layout, what in `feature_dir` shows it) of a feature folder, from its class files
    ({audio,video}/{split}/{Class}.h5 or .pkl): "h5"; "sequences" when a .pkl file's videos are
    [T, D] token sequences, "vectors" when they are 1-d vectors (the smallest files are looked at,
    up to one holding a video). UserError naming the folder and the fix when it is missing, holds
    both kinds of file, neither, or only .pkl files showing neither."""
    known = ", ".join(FOLDERS)
    fix = f"pass the --root_dir holding it, or a known --feature_extraction_method ({known})"
    if not feature_dir.is_dir():
        raise UserError(f"missing feature folder {feature_dir}, whose name is no feature family's: {fix}")
    files = {ext: sorted((p for m in ("audio", "video") for p in (feature_dir / m).glob(f"*/*{ext}") if p.is_file()),
                         key=lambda p: (p.stat().st_size, str(p))) for ext in (".h5", ".pkl")}
    h5, pkl = files[".h5"], files[".pkl"]
    if h5 and pkl:
        raise UserError(f"{feature_dir} holds both .h5 ({h5[0].relative_to(feature_dir)}) and .pkl "
                        f"({pkl[0].relative_to(feature_dir)}) class files: keep one kind in a feature folder")
    if h5:
        return "h5", f"{h5[0].relative_to(feature_dir)} is an .h5 class file"
    if not pkl:
        raise UserError(f"{feature_dir} holds no class file ({{audio,video}}/{{split}}/{{Class}}.h5 of averaged "
                        f"features, or .pkl of token sequences or vectors; src/storage.py): {fix}")
    for path in pkl:
        ndim = _pkl_feature_ndim(path)
        if ndim is not None:
            break
    else:
        raise UserError(f"none of the {len(pkl)} .pkl class files of {feature_dir} holds a readable video (the "
                        f"smallest: {pkl[0].relative_to(feature_dir)}): re-create them, or {fix}")
    where = path.relative_to(feature_dir)
    if ndim not in (1, 2):
        raise UserError(f"{path}: its videos' features are {ndim}-d, neither [T, D] token sequences nor 1-d "
                        f"vectors: re-create the file, or {fix}")
    if ndim == 2:
        return "sequences", f"{where} holds [T, D] token sequences"
    return "vectors", f"{where} holds one 1-d vector per video"


def family_of_args(args) -> FeatureFamily:
    """The feature family of a main.py or args.pkl Namespace: the one recorded in `feature_family`
    when its arguments were finalised (or its run's args.pkl was read); a Namespace built in code
    without it is told by its folder (`folder_family`)."""
    key = getattr(args, "feature_family", None)     # absent from Namespaces built in code (tests, benchmarks)
    if key:
        return FAMILIES[key]
    return folder_family(args.feature_extraction_method, getattr(args, "root_dir", None),
                         getattr(args, "dataset_name", None)).family


def clipclap_evidence(feature_dir: Path, dataset: Optional[str] = None) -> str:
    """What in `feature_dir` (a `cls_features_non_averaged` folder) shows ClipClap's CLIP/CLAP data,
    "" when nothing does (TCaF's data). In this order: WavCaps class embeddings in text/
    (`wavcaps_word_embeddings_{stem}_normed.npy`); CLIP class embeddings (512-d vectors) in
    text/'s `word_embeddings_{stem}_normed.npy`, a name word2vec's 300-d dict shares; class files
    holding one 1-d vector per video (TCaF's hold [T, D] sequences; the smallest audio file is
    looked at). Unreadable files show nothing (the loader reports them)."""
    clip = FAMILIES["clip"]
    infos = [DATASETS[dataset]] if dataset in DATASETS else list(DATASETS.values())
    text = feature_dir / "text"
    for info in infos:
        wavcaps = text / f"{clip.text[1][0]}_{info.clip_stem}_normed.npy"
        if wavcaps.is_file():
            return f"{wavcaps.relative_to(feature_dir)} is present"
    clip_width = clip.text[0][1]
    for info in infos:
        for stem in dict.fromkeys((info.clip_stem, info.npy_stem)):
            npy = text / f"{clip.text[0][0]}_{stem}_normed.npy"
            if _npy_width(npy) == clip_width:
                return f"{npy.relative_to(feature_dir)} holds {clip_width}-d CLIP class embeddings, not 300-d word2vec"
    files = [p for p in (feature_dir / "audio").glob("*/*.pkl") if p.is_file()]     # none: no audio/ folder
    if files:
        smallest = min(files, key=lambda p: (p.stat().st_size, p.name))
        if _pkl_feature_ndim(smallest) == 1:
            return f"{smallest.relative_to(feature_dir)} holds one 1-d vector per video, not [T, D] token sequences"
    return ""


def _read_cached(path: Path, reader):
    """`reader(path)`, cached by the file's name, size and mtime; None when the file is missing or
    `reader` fails (an unreadable file shows nothing here: the loader reports it)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _read_stamped((str(path), st.st_size, st.st_mtime_ns), reader)


@lru_cache(maxsize=128)
def _read_stamped(stamp, reader):
    try:
        return reader(stamp[0])
    except Exception:  # noqa: BLE001 - any unreadable file shows nothing here
        return None


def _npy_width(path: Path) -> Optional[int]:
    """The size of the first vector of a pickled `.npy` dict of class vectors (None: no such file,
    or not one)."""
    return _read_cached(path, _first_vector_size)


def _pkl_feature_ndim(path: Path) -> Optional[int]:
    """The number of dimensions of the first video's features in a class `.pkl` (None: unreadable)."""
    return _read_cached(path, _first_features_ndim)


# the readers: module functions, so that the cache above knows them again
def _first_vector_size(name: str) -> Optional[int]:
    import numpy as np
    d = np.load(name, allow_pickle=True).item()
    return int(np.asarray(next(iter(d.values()))).size) if isinstance(d, dict) and d else None


def _first_features_ndim(name: str) -> Optional[int]:
    import numpy as np
    with open(name, "rb") as f:
        feats = pickle.load(f)["features"]
    return int(np.asarray(feats[0]).ndim) if len(feats) else None


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
