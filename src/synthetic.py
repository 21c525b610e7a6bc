"""Synthetic benchmark generator: a complete dataset folder in the exact on-disk layout.

    python -m src.synthetic --dataset UCF --out_dir avgzsl_benchmark_datasets
    python -m src.synthetic --dataset VGGSound --from_real ../shared/data --out_dir /tmp/bench
    python -m src.synthetic --dataset UCF --preset tiny --temporal --out_dir /tmp/bench   # + TCaF's

It writes `class-split/` (all_class.txt, the mapping csv, main_split/ and cls_split/ with the
six stage_*.txt and .csv), and for each feature family `features/{main,cls}_features/` with
one `.h5` per class per split for audio and video, plus the word-vector `.npy` in `text/`.
`--temporal` also writes the temporal families of the chosen ones (docs/tcaf.md 1), next to them:
`features/{main,cls}_features_non_averaged/{audio,video}/{stage}/{Class}.pkl`, a token sequence
per video (SeLaVi: T tokens for both modalities; C3D/VGGish: T uint8 audio tokens and
round(T * 0.96 / 0.64) video tokens), T uniform in a preset's range (`TOKENS`); stage_2_train,
which TCaF never reads, is not written for them. A temporal family may also be named in
`--families` alone (e.g. `--families main_temporal`: the temporal SeLaVi features only).
`--families clip` writes the CLIP/CLAP family (docs/clipclap.md 3) into its own dataset folder,
`{out_dir}/ClipClap/{dataset}/` (class-split/ with ucf_clip_class_names.csv for UCF, and
`features/cls_features_non_averaged/`: one CLIP and one WavCaps vector per video, the two class-
embedding dicts in `text/`).

Features are class-conditional and built from the class's word vector, so zero-shot transfer
is learnable: a sample of class c draws a latent z = w_c + s * eps (eps ~ N(0, I/300)) and
its audio and video features are fixed random linear maps of z plus modality noise (a temporal
family: every token of the video is such a map of the video's z plus its own noise). Classes
and vectors are invented (sizes of the real benchmark, or `--preset tiny`), or taken from a
real dataset folder (`--from_real`: its class splits, video lists and word vectors).
"""
import argparse
import csv
import hashlib
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .data import find_class_split_dir
from .errors import ArgumentParser, UserError, exit_on_user_error
from .families import (AVERAGED_FAMILIES, DATASETS, FAMILIES, STAGES, TEMPORAL_OF, WORD_DIM, FeatureFamily,
                       clip_class_name, dataset_root)
from .storage import layout_of

log = logging.getLogger(__name__)

# Invented benchmarks: (all classes, train (= val seen) classes, val unseen, test unseen,
# samples per class of train, val seen, val unseen, test seen, test unseen) — the real
# benchmarks' class counts and mean class sizes (shared/data/README.md), `tiny` for tests.
PRESETS = {
    "UCF": (101, 30, 12, 9, 106, 12, 122, 13, 141),
    "ActivityNet": (200, 99, 51, 50, 93, 10, 84, 11, 84),
    "VGGSound": (309, 138, 69, 69, 60, 57, 45, 44, 50),
    "tiny": (24, 8, 4, 4, 24, 6, 10, 6, 10),
}
# Temporal families: tokens per video (SeLaVi length, C3D/VGGish audio length), uniform in [lo, hi]
# (the real ones: UCF clips of ~7 s, VGGSound 10 s, ActivityNet minutes, cut to 60 tokens in training).
TOKENS = {"UCF": (4, 20), "ActivityNet": (10, 70), "VGGSound": (4, 10), "tiny": (2, 6)}
SYLLABLES = ["ba", "ko", "ri", "su", "ten", "mal", "dor", "vi", "lu", "pe", "sha", "gon",
             "tri", "zem", "fa", "nok", "ul", "ira", "bo", "che", "dra", "wy", "xen", "qua"]


def invent_names(n: int, rng: np.random.Generator) -> List[str]:
    """n distinct two-word class names ("Koru Tenmal"), CamelCase for the dataset side."""
    names = set()
    while len(names) < n:
        words = ["".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))).capitalize() for _ in range(2)]
        names.add(" ".join(words))
    return sorted(names)


def write_lines(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


class Spec:
    """What to generate: classes, the mapping, word vectors, and per family the class lists
    and (class, video) rows of every stage."""

    def __init__(self):
        self.all_classes: List[str] = []
        self.mapping: Dict[str, str] = {}               # dataset name -> word2vec name
        self.w2v: Dict[str, np.ndarray] = {}
        self.lists: Dict[str, Dict[str, List[str]]] = {}  # split folder -> stage -> class names
        self.rows: Dict[str, Dict[str, List[tuple]]] = {}  # split folder -> stage -> [(class, video)]


def invented_spec(dataset: str, preset: str, rng: np.random.Generator, scale: float) -> Spec:
    n_all, n_train, n_val_u, n_test_u, *per_class = PRESETS[preset]
    spec = Spec()
    words = invent_names(n_all, rng)
    spec.all_classes = [w.replace(" ", "") for w in words]
    spec.mapping = dict(zip(spec.all_classes, words))
    # word vectors with cluster structure (semantic neighbours), unit norm
    centres = rng.standard_normal((max(4, n_all // 8), WORD_DIM))
    vecs = centres[rng.integers(len(centres), size=n_all)] + 0.8 * rng.standard_normal((n_all, WORD_DIM))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    spec.w2v = {w: v.astype(np.float32) for w, v in zip(words, vecs)}

    order = rng.permutation(n_all)
    train = [spec.all_classes[i] for i in order[:n_train]]
    val_u = [spec.all_classes[i] for i in order[n_train:n_train + n_val_u]]
    test_u = [spec.all_classes[i] for i in order[n_train + n_val_u:n_train + n_val_u + n_test_u]]
    stage2 = sorted(train + val_u)
    n_rows = [max(2, int(round(k * scale))) for k in per_class]
    for split, unseen in ((FAMILIES["main"].split, test_u),
                          (FAMILIES["cls"].split, test_u[:max(1, (2 * len(test_u)) // 3)])):
        lists = dict(zip(STAGES, (sorted(train), sorted(train), sorted(val_u), stage2, stage2, sorted(unseen))))
        rows = {}
        for stage, k in zip([s for s in STAGES if s != "stage_2_train"], n_rows):
            # the test-unseen videos of the classes cls_split leaves out stay listed (as in UCF)
            classes = test_u if stage == "stage_2_test_unseen" else lists[stage]
            rows[stage] = [(c, f"v_{c}_{stage[-4:]}_{j:04d}") for c in classes
                           for j in range(int(rng.integers(max(1, k // 2), k + k // 2 + 1)))]
        rows["stage_2_train"] = sorted(rows["stage_1_train"] + rows["stage_1_val_seen"] + rows["stage_1_val_unseen"])
        if DATASETS[dataset].case_insensitive and lists["stage_1_train"]:
            # UCF lists HandStandPushups where all_class.txt says HandstandPushups: keep one such
            # case difference so the case-insensitive matching is exercised.
            c = lists["stage_1_train"][0]
            odd = c[0] + c[1:].swapcase()
            for stage in lists:
                lists[stage] = [odd if x == c else x for x in lists[stage]]
        spec.lists[split], spec.rows[split] = lists, rows
    return spec


def real_spec(dataset: str, source: Path, rng: np.random.Generator) -> Spec:
    """Class splits, video lists and word vectors of a real dataset folder (features invented)."""
    info = DATASETS[dataset]
    candidates = [source / "avgzsl_benchmark_datasets" / dataset, source / dataset, source]
    ds_dir = next((c for c in candidates if (c / "class-split").is_dir() or (c / "class_split").is_dir()), None)
    if ds_dir is None:
        raise UserError(f"--from_real {source}: no {dataset} class-split/ found in "
                        f"{', '.join(str(c) for c in candidates)}")
    split_dir = find_class_split_dir(ds_dir)
    npy_name = info.word_vector_file
    npys = [source / "w2v_features" / npy_name] + [ds_dir / "features" / f.folder / "text" / npy_name
                                                  for f in FAMILIES.values()]
    npy = next((p for p in npys if p.is_file()), None)
    if npy is None:
        raise UserError(f"--from_real {source}: no {npy_name} in {', '.join(str(p) for p in npys)}")
    spec = Spec()
    spec.w2v = {k: np.asarray(v, np.float32) for k, v in np.load(npy, allow_pickle=True).item().items()}
    spec.all_classes = [l.strip() for l in (split_dir / "all_class.txt").read_text().splitlines() if l.strip()]
    with open(split_dir / info.mapping_csv, newline="") as f:
        spec.mapping = {r["original"].strip(): r["manual"].strip() for r in csv.DictReader(f)}
    for split in dict.fromkeys(f.split for f in FAMILIES.values()):       # main_split, cls_split
        lists, rows = {}, {}
        for stage in STAGES:
            lists[stage] = [l.strip() for l in (split_dir / split / f"{stage}.txt").read_text().splitlines() if l.strip()]
            csv_path = split_dir / split / f"{stage}.csv"
            if csv_path.is_file():
                with open(csv_path, newline="") as f:
                    rows[stage] = [(r["label"].strip(), r["filename"].strip()) for r in csv.DictReader(f)]
            else:  # VGGSound's train csvs are not published: invent video names
                rows[stage] = [(c, f"{c.replace(' ', '_')}_{j:04d}") for c in lists[stage]
                               for j in range(int(rng.integers(40, 80)))]
        spec.lists[split], spec.rows[split] = lists, rows
    return spec


def video_seed(name: str) -> int:
    """A stable 64-bit number of a video name (its temporal features' random stream)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def temporal_video(family: FeatureFamily, w: np.ndarray, proj_a: np.ndarray, proj_v: np.ndarray,
                   rng: np.random.Generator, tokens: Tuple[int, int], noise: float, spread: float):
    """(audio [T_a, D_a], video [T_v, D_v]) of one video of the class with word vector w: every
    token is the video's latent z = w + spread * eps projected, plus its own noise."""
    t_a = int(rng.integers(tokens[0], tokens[1] + 1))
    t_v = t_a if family.same_length else max(1, int(round(t_a * family.audio_rate / family.video_rate)))
    z = w + spread * rng.standard_normal(WORD_DIM, dtype=np.float32) / np.sqrt(WORD_DIM)
    a = (z @ proj_a)[None] + noise * rng.standard_normal((t_a, proj_a.shape[1]), dtype=np.float32)
    v = (z @ proj_v)[None] + noise * rng.standard_normal((t_v, proj_v.shape[1]), dtype=np.float32)
    if family.audio_dtype == "uint8":          # quantised VGGish: codes 0..255 around 128
        a = np.clip(np.round(128 + 32 * a), 0, 255).astype(np.uint8)
    return a.astype(family.audio_dtype, copy=False), v.astype(np.float32, copy=False)


def with_temporal(families: Sequence[str]) -> Tuple[str, ...]:
    """`families` and, after them, the temporal family of each averaged one (--temporal)."""
    extra = [TEMPORAL_OF[f] for f in families if f in TEMPORAL_OF]
    return tuple(dict.fromkeys(list(families) + extra))


def generate(out_root: Path, dataset: str, from_real: Optional[Path] = None, preset: Optional[str] = None,
             families=tuple(AVERAGED_FAMILIES), seed: int = 0, scale: float = 1.0, noise: float = 1.0,
             spread: float = 1.0, overwrite: bool = False, max_per_class: Optional[int] = None,
             temporal: bool = False, tokens: Optional[Tuple[int, int]] = None) -> Path:
    """Write `{out_root}/{dataset}/` and return that path (max_per_class: cap the videos of a
    class in each split, for quick tests on the real split files). temporal: also the temporal
    family of each averaged one in `families` (tokens: [lo, hi] tokens per video, default
    `TOKENS` of the preset); their numbers come from their own random streams, so the rest of
    the benchmark is the same with or without them."""
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise UserError(f"unknown feature famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                        f"known: {', '.join(FAMILIES)}")
    if temporal:
        families = with_temporal(families)
    tokens = tuple(tokens) if tokens else TOKENS[preset or dataset]
    if not 1 <= tokens[0] <= tokens[1]:
        raise UserError(f"tokens per video must be 1 <= min <= max, got {tokens[0]} {tokens[1]}")
    rng = np.random.default_rng(seed)
    spec = real_spec(dataset, Path(from_real), rng) if from_real else invented_spec(dataset, preset or dataset, rng, scale)
    t0 = time.perf_counter()
    roots = []
    for subdir in dict.fromkeys(FAMILIES[f].data_subdir for f in families):  # ClipClap's data: its own folder
        roots.append(dataset_root(out_root, dataset, FAMILIES[[f for f in families if FAMILIES[f].data_subdir == subdir][0]]))
        write_root(roots[-1], dataset, spec, [f for f in families if FAMILIES[f].data_subdir == subdir], seed, tokens,
                   noise, spread, overwrite, max_per_class)
    log.info("wrote %s in %.2fs", ", ".join(map(str, roots)), time.perf_counter() - t0)
    return roots[0]


def write_root(out: Path, dataset: str, spec: Spec, families: Sequence[str], seed: int, tokens: Tuple[int, int],
               noise: float, spread: float, overwrite: bool, max_per_class: Optional[int]) -> None:
    """One dataset folder: class-split/ and the features of `families` (all of one data folder)."""
    if out.exists():
        if not overwrite:
            raise UserError(f"{out} exists; pass --overwrite to replace it")
        shutil.rmtree(out)
    info = DATASETS[dataset]

    split_dir = out / "class-split"
    write_lines(split_dir / "all_class.txt", spec.all_classes)
    with open(split_dir / info.mapping_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["original", "manual"])
        w.writerows(spec.mapping.items())
    if any(FAMILIES[f].vectors for f in families) and info.clip_names[0] != info.mapping_csv:
        with open(split_dir / info.clip_names[0], "w", newline="") as f:     # UCF: ucf_clip_class_names.csv
            w = csv.writer(f)
            w.writerow(["original", "manual", info.clip_names[1]])
            w.writerows((c, m, clip_class_name(c)) for c, m in spec.mapping.items())
    label_code = {c.lower(): i for i, c in enumerate(sorted(spec.all_classes))}
    for split, lists in spec.lists.items():
        for stage, classes in lists.items():
            write_lines(split_dir / split / f"{stage}.txt", classes)
            with open(split_dir / split / f"{stage}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["filename", "label", "label_code"])
                w.writerows((video, c, label_code.get(c.lower(), -1)) for c, video in spec.rows[split][stage])

    # the vector each class's features are built from: its own (the correct pairing)
    by_lower = {c.lower() if info.case_insensitive else c: spec.mapping.get(c) for c in spec.all_classes}
    for fam in families:
        family = FAMILIES[fam]
        if family.temporal:
            write_temporal(out, dataset, spec, fam, by_lower, seed, tokens, noise, spread, max_per_class)
            continue
        if family.vectors:
            write_vectors(out, dataset, spec, fam, by_lower, seed, noise, spread, max_per_class)
            continue
        d_a, d_v = family.audio_width, family.video_width
        frng = np.random.default_rng([seed, 1 + list(FAMILIES).index(fam)])
        proj_a = frng.standard_normal((WORD_DIM, d_a)).astype(np.float32) / np.sqrt(WORD_DIM / 4)
        proj_v = frng.standard_normal((WORD_DIM, d_v)).astype(np.float32) / np.sqrt(WORD_DIM / 4)
        cache: Dict[str, tuple] = {}       # video name -> (audio, video): a video keeps its features
        feat_dir = out / "features" / family.folder
        for stage, canonical, manual, videos in class_videos(spec, family.split, by_lower, info.case_insensitive,
                                                             max_per_class):
            new = [v for v in videos if v not in cache]
            if new:
                eps = frng.standard_normal((len(new), WORD_DIM)).astype(np.float32)
                z = spec.w2v[manual][None] + spread * eps / np.sqrt(WORD_DIM)
                a = z @ proj_a + noise * frng.standard_normal((len(new), d_a)).astype(np.float32)
                v = z @ proj_v + noise * frng.standard_normal((len(new), d_v)).astype(np.float32)
                cache.update({name: (a[i], v[i]) for i, name in enumerate(new)})
            for modality, k in (("audio", 0), ("video", 1)):
                layout_of(family).write(feat_dir / modality / stage / f"{canonical}.h5",
                                        np.stack([cache[name][k] for name in videos]), videos, atomic=False)
        text = feat_dir / "text" / info.word_vector_file
        text.parent.mkdir(parents=True, exist_ok=True)
        np.save(text, spec.w2v, allow_pickle=True)


def class_videos(spec: Spec, split: str, by_lower: Dict[str, Optional[str]], case_insensitive: bool,
                 max_per_class: Optional[int], skip=()):
    """(stage, class name as in all_class.txt, word2vec name, its videos) of every class of a split's
    stages, in the csvs' order; a class without a word vector is skipped with a warning."""
    for stage, rows in spec.rows[split].items():
        if stage in skip:
            continue
        by_class: Dict[str, List[str]] = {}
        for c, video in rows:
            by_class.setdefault(c, []).append(video)
        for c, videos in by_class.items():
            key = c.lower() if case_insensitive else c
            manual = by_lower.get(key)
            if manual is None or manual not in spec.w2v:
                log.warning("class %r has no word vector: skipped", c)
                continue
            canonical = next((x for x in spec.all_classes if (x.lower() if case_insensitive else x) == key), c)
            yield stage, canonical, manual, videos[:max_per_class] if max_per_class else videos


def write_temporal(out: Path, dataset: str, spec: Spec, fam: str, by_lower: Dict[str, Optional[str]], seed: int,
                   tokens: Tuple[int, int], noise: float, spread: float, max_per_class: Optional[int]) -> None:
    """features/{family folder}/ of a temporal family: one .pkl per class and stage (docs/tcaf.md 1).
    A video's tokens come from a random stream of (seed, family, video name) alone."""
    family, info = FAMILIES[fam], DATASETS[dataset]
    case_insensitive = info.case_insensitive
    index = 1000 + list(FAMILIES).index(fam)          # streams apart from the averaged families' [seed, 1 + i]
    frng = np.random.default_rng([seed, index])
    proj_a = frng.standard_normal((WORD_DIM, family.audio_width)).astype(np.float32) / np.sqrt(WORD_DIM / 4)
    proj_v = frng.standard_normal((WORD_DIM, family.video_width)).astype(np.float32) / np.sqrt(WORD_DIM / 4)
    feat_dir = out / "features" / family.folder
    for stage, canonical, manual, videos in class_videos(spec, family.split, by_lower, case_insensitive,
                                                         max_per_class, skip=("stage_2_train",)):   # unread by TCaF
        pairs = [temporal_video(family, spec.w2v[manual], proj_a, proj_v,
                                np.random.default_rng([seed, index, video_seed(v)]), tokens, noise, spread)
                 for v in videos]
        for modality, k in (("audio", 0), ("video", 1)):
            layout_of(family).write(feat_dir / modality / stage / f"{canonical}.pkl", [p[k] for p in pairs], videos,
                                    atomic=False)
    text = feat_dir / "text" / info.word_vector_file
    text.parent.mkdir(parents=True, exist_ok=True)
    np.save(text, spec.w2v, allow_pickle=True)


def write_vectors(out: Path, dataset: str, spec: Spec, fam: str, by_lower: Dict[str, Optional[str]], seed: int,
                  noise: float, spread: float, max_per_class: Optional[int]) -> None:
    """features/cls_features_non_averaged/ of the CLIP/CLAP family (docs/clipclap.md 3): per class and
    stage a .pkl of one CLIP image vector (float16 [512]) and one WavCaps audio vector (float32
    [1024]) per video, and the two class-embedding dicts (unit vectors: fixed random maps of the
    class's word vector) under the names CLIP/CLAP use."""
    family, info = FAMILIES[fam], DATASETS[dataset]
    index = 2000 + list(FAMILIES).index(fam)
    frng = np.random.default_rng([seed, index])
    widths = {"audio": family.audio_width, "video": family.video_width}
    proj = {m: frng.standard_normal((WORD_DIM, d)).astype(np.float32) / np.sqrt(WORD_DIM / 4) for m, d in widths.items()}
    feat_dir = out / "features" / family.folder
    for stage, canonical, manual, videos in class_videos(spec, family.split, by_lower, info.case_insensitive,
                                                         max_per_class, skip=("stage_2_train",)):
        rng = [np.random.default_rng([seed, index, video_seed(v)]) for v in videos]
        z = np.stack([spec.w2v[manual] + spread * r.standard_normal(WORD_DIM, dtype=np.float32) / np.sqrt(WORD_DIM)
                      for r in rng])
        for m, dtype in (("audio", np.float32), ("video", np.float16)):
            x = z @ proj[m] + noise * np.stack([r.standard_normal(widths[m], dtype=np.float32) for r in rng])
            x /= np.linalg.norm(x, axis=1, keepdims=True)                  # unit vectors, as CLIP's and CLAP's
            layout_of(family).write(feat_dir / m / stage / f"{canonical}.pkl", list(x.astype(dtype)), videos,
                                    atomic=False)
    names = {manual: clip_class_name(c) if info.clip_names[1] == "clip_class_name" else manual
             for c, manual in spec.mapping.items() if manual in spec.w2v}
    for (stem, width), file in zip(family.text, family.text_files(info)):
        maps = frng.standard_normal((WORD_DIM, width)).astype(np.float32)
        vectors = {names[m]: spec.w2v[m] @ maps for m in names}
        path = feat_dir / "text" / file
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, {k: (v / np.linalg.norm(v)).astype(np.float32) for k, v in vectors.items()}, allow_pickle=True)


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m src.synthetic", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="UCF", choices=list(DATASETS), help="benchmark to imitate")
    p.add_argument("--out_dir", type=Path, default=Path("avgzsl_benchmark_datasets"),
                   help="writes {out_dir}/{dataset}/")
    p.add_argument("--from_real", type=Path, default=None,
                   help="take classes, splits, video lists and word vectors from a real data folder "
                        "(e.g. ../shared/data, or a dataset folder holding class-split/)")
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="sizes of invented classes (default: those of --dataset; tiny: for tests)")
    p.add_argument("--families", nargs="+", default=list(AVERAGED_FAMILIES), choices=list(FAMILIES),
                   help="feature families: " + " and/or ".join(f"{k} ({f.folder}, {f.widths})"
                                                                for k, f in FAMILIES.items()))
    p.add_argument("--temporal", action="store_true",
                   help="also write the temporal (TCaF) family of each averaged one in --families: "
                        + ", ".join(f"{FAMILIES[k].folder} -> {FAMILIES[t].folder}" for k, t in TEMPORAL_OF.items()))
    p.add_argument("--tokens", nargs=2, type=int, default=None, metavar=("MIN", "MAX"),
                   help="temporal families: tokens per video, uniform in [MIN, MAX] (default by preset: "
                        + ", ".join(f"{k} {lo}-{hi}" for k, (lo, hi) in TOKENS.items()) + ")")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the samples per class (invented classes)")
    p.add_argument("--noise", type=float, default=1.0, help="modality noise (higher: harder)")
    p.add_argument("--spread", type=float, default=1.0, help="within-class spread of the latent (higher: harder)")
    p.add_argument("--max_per_class", type=int, default=None,
                   help="at most this many videos per class and split (quick tests)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--overwrite", action="store_true", help="replace an existing {out_dir}/{dataset}")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error(p.prog):
        out = generate(args.out_dir, args.dataset, args.from_real, args.preset, tuple(args.families),
                       args.seed, args.scale, args.noise, args.spread, args.overwrite,
                       args.max_per_class, temporal=args.temporal, tokens=args.tokens)
    print(out)


if __name__ == "__main__":
    sys.exit(main())
