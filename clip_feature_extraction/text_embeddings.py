"""ClipClap's class text embeddings (docs/clipclap.md 2): per class, the class name in every prompt
template, each prompt encoded and L2-normalised, the mean over prompts L2-normalised again,
as float32; saved with np.save as a pickled dict {class name: vector}.

    names = read_class_names("class-split/ucf_clip_class_names.csv", "ucf")
    vectors = class_embeddings(names, templates("ucf", "clip"), encode)     # encode: prompts -> [P, D]
    save_embeddings(vectors, out / embedding_file("ucf", "clip"))

Files: `word_embeddings_{ucf,activitynet,vggsound}_normed.npy` (CLIP, 512-d) and
`wavcaps_word_embeddings_{ucf,activitynet,vggsound}_normed.npy` (WavCaps, 1024-d), the names of
`src.families.FAMILIES["clip"].text`. Class names: UCF from the `clip_class_name` column of
`ucf_clip_class_names.csv` (`ucf_clip_class_name` makes it from the class names), ActivityNet
and VGGSound from the `manual` column of their word2vec mapping csv.
"""
import csv
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from src.families import ALIASES, DATASETS, FAMILIES, clip_class_name
from src.errors import UserError
from src.io_utils import atomic_path

from . import clip_vit, wavcaps
from .family import clip_dataset
from .templates import MODELS

Encoder = Callable[[List[str]], torch.Tensor]   # P prompts -> [P, D]
UCF_CLIP_COLUMNS = ("original", "manual", "clip_class_name")


# ---------------------------------------------------------------------------- class names
def ucf_clip_class_name(name: str) -> str:
    """A UCF101 class name as ClipClap's prompts read it (`src.families.clip_class_name`): a
    space before every capital letter but the first (`ApplyEyeMakeup` -> `Apply Eye Makeup`,
    `YoYo` -> `Yo Yo`), except `HandstandPushups` -> `Hand Stand Pushups`."""
    return clip_class_name(name.strip())


def write_ucf_clip_class_names(source, output) -> Path:
    """Write `ucf_clip_class_names.csv` (columns original,manual,clip_class_name) for the UCF
    classes of `source`: a csv with an `original` column (its `manual` column is copied, e.g.
    ucf_w2v_class_names.csv) or a text file of one class name per line (all_class.txt; `manual`
    then left empty). Rows in the source's order, each class once."""
    source, output = Path(source), Path(output)
    if not source.is_file():
        raise UserError(f"UCF class names not found: {source} (give all_class.txt or ucf_w2v_class_names.csv)")
    if source.suffix.lower() == ".csv":
        with open(source, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "original" not in rows[0]:
            raise UserError(f"{source}: expected a csv with an `original` column (e.g. ucf_w2v_class_names.csv), "
                            f"or give a .txt of one class name per line")
        pairs = [((r["original"] or "").strip(), (r.get("manual") or "").strip()) for r in rows]
    else:
        pairs = [(line.strip(), "") for line in source.read_text().splitlines()]
    seen, table = set(), []
    for original, manual in pairs:
        if original and original not in seen:
            seen.add(original)
            table.append((original, manual, ucf_clip_class_name(original)))
    if not table:
        raise UserError(f"{source} lists no class name")
    with atomic_path(output) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(UCF_CLIP_COLUMNS)
            w.writerows(table)
    return output


def class_names_source(dataset: str):
    """(csv file name, column) of a dataset's CLIP/CLAP class names."""
    return DATASETS[ALIASES[clip_dataset(dataset)]].clip_names


def read_class_names(path, dataset: str) -> List[str]:
    """The class names of the dataset's column (UCF: clip_class_name, else manual) of `path`,
    in csv order, each once."""
    path = Path(path)
    file_name, column = class_names_source(dataset)
    fix = ("make it with --make_ucf_class_names all_class.txt" if column == "clip_class_name"
           else f"it is the class-split's {file_name}")
    if not path.is_file():
        raise UserError(f"class names not found: {path} (a csv with a `{column}` column: {fix})")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or column not in rows[0]:
        found = list(rows[0]) if rows else None
        raise UserError(f"{path}: no `{column}` column (found {found}): {fix}")
    empty = [i + 2 for i, r in enumerate(rows) if not (r[column] or "").strip()]
    if empty:
        raise UserError(f"{path}: line {empty[0]} has an empty `{column}` ({len(empty)} such lines)")
    return list(dict.fromkeys(r[column].strip() for r in rows))


# ---------------------------------------------------------------------------- embeddings
def embedding_file(dataset: str, model: str) -> str:
    """The file name of one model's class embeddings for `dataset`."""
    stem = dict(zip(MODELS, (name for name, _ in FAMILIES["clip"].text)))[model]
    return f"{stem}_{clip_dataset(dataset)}_normed.npy"


def class_embeddings(names: Sequence[str], templates: Sequence[str], encode: Encoder, *,
                     batch_size: int = 256, progress: bool = True, desc: str = "") -> Dict[str, np.ndarray]:
    """{name: float32 [D]}: per class, its T prompts `template.format(name)` encoded ([T, D]),
    each row divided by its L2 norm, the mean over the T rows divided by its L2 norm.
    Whole classes go to `encode` together, about `batch_size` prompts per call (at least one
    class: batch_size 1 encodes one class per call, as the original)."""
    names, templates = list(names), list(templates)
    per_call = max(1, batch_size // len(templates))
    out: Dict[str, np.ndarray] = {}
    with tqdm(total=len(names), unit="class", desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(names), per_call):
            group = names[start:start + per_call]
            prompts = [t.format(n) for n in group for t in templates]
            with torch.inference_mode():
                x = torch.as_tensor(encode(prompts)).float().cpu()                     # [c * T, D]
                if x.ndim != 2 or len(x) != len(prompts):
                    raise RuntimeError(f"the text encoder returned {tuple(x.shape)} for {len(prompts)} prompts")
                x = x.reshape(len(group), len(templates), -1)                            # [c, T, D]
                x = x / x.norm(dim=-1, keepdim=True)
                mean = x.mean(dim=1)                                                     # [c, D]
                mean = mean / mean.norm(dim=-1, keepdim=True)
            out.update(zip(group, mean.numpy().astype(np.float32)))
            bar.update(len(group))
    return out


def save_embeddings(vectors: Dict[str, np.ndarray], path) -> Path:
    """np.save of the pickled dict {class name: float32 [D]}, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, dict(vectors), allow_pickle=True)
    return path


def load_embeddings(path) -> Dict[str, np.ndarray]:
    return np.load(path, allow_pickle=True).item()


def encoders(models: Sequence[str], *, clip_weights=None, wavcaps_weights=None, bert_vocab=None,
             random_init: bool = False, seed: int = 0, device="cpu",
             bert_config: Optional[dict] = None) -> Dict[str, Encoder]:
    """{model: prompts -> [P, D] unit rows} of the CLIP and / or WavCaps text towers (`models`:
    some of clip, wavcaps). `bert_config`: a smaller BERT for tests (random weights only)."""
    out: Dict[str, Encoder] = {}
    # the loaders raise a UserError naming a missing file and its flag
    if "clip" in models:
        torch.manual_seed(seed)
        clip = clip_vit.load_clip(clip_weights, random_init=random_init, device=device)
        out["clip"] = lambda prompts: clip_vit.encode_text(clip, prompts)
    if "wavcaps" in models:
        tokenizer = wavcaps.load_bert_tokenizer(bert_vocab)
        torch.manual_seed(seed + 1)
        ase = wavcaps.load_wavcaps(wavcaps_weights, random_init=random_init, device=device, text=True,
                                   bert_config=bert_config)
        out["wavcaps"] = lambda prompts: ase.encode_text(prompts, tokenizer)
    return out
