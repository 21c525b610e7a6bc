"""Build `word_embeddings_{dataset}_normed.npy`, a pickled dict `{manual name: float32[D]}` of
unit vectors, for the class names of a mapping csv (docs/features.md, "Word vectors").

    # as the released files were made: fastText wiki.en.bin, the whole name as one token
    python w2v_features/make_word_vectors.py --model wiki.en.bin \
        --names avgzsl_benchmark_datasets/UCF/class-split/ucf_w2v_class_names.csv \
        --output word_embeddings_ucf_normed.npy
    # alternative: a word2vec-format model, the mean of the words of each name
    python w2v_features/make_word_vectors.py --format word2vec --model GoogleNews.bin ...
"""
import argparse
import csv
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from src.errors import ArgumentParser, UserError  # noqa: E402
from src.extraction.cli import entry  # noqa: E402
from src.io_utils import atomic_path  # noqa: E402


def read_names(path) -> List[str]:
    """The `manual` column of a mapping csv (`original,manual`), or the lines of a .txt."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"class names not found: {path} (a *_w2v_class_names.csv or a .txt)")
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if "manual" not in (reader.fieldnames or []):
                raise UserError(f"{path}: expected a `manual` column, got {reader.fieldnames}")
            names = [r["manual"].strip() for r in reader]
    else:
        names = [line.strip() for line in path.read_text().splitlines()]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise UserError(f"{path} lists no class name")
    return names


def _unit(v: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(v, np.float64)
    norm = np.linalg.norm(v)
    if not np.isfinite(norm) or norm == 0:
        raise UserError(f"the vector of {name!r} is zero or not finite: cannot normalise it")
    return (v / norm).astype(np.float32)


def fasttext_vectors(model_path, names: List[str]) -> Dict[str, np.ndarray]:
    """Each whole name (spaces included) as one token of a fastText .bin: gensim builds the
    vector of an unseen string from its character n-grams."""
    from gensim.models.fasttext import load_facebook_vectors
    try:
        kv = load_facebook_vectors(str(model_path))
    except Exception as err:
        raise UserError(f"cannot read {model_path} as a fastText .bin model: {err}") from None
    return {n: _unit(kv[n], n) for n in names}


def word2vec_vectors(model_path, names: List[str], binary: bool) -> Tuple[Dict[str, np.ndarray], Dict[str, List[str]]]:
    """The mean of the vectors of each name's words; also the words the model lacks."""
    from gensim.models import KeyedVectors
    try:
        kv = KeyedVectors.load_word2vec_format(str(model_path), binary=binary)
    except Exception as err:
        raise UserError(f"cannot read {model_path} as a word2vec-format model "
                        f"({'binary' if binary else 'text'}): {err}") from None
    out, lacking = {}, {}
    for n in names:
        words = n.replace("_", " ").split()
        have = [w for w in words if w in kv.key_to_index]
        if len(have) < len(words):
            lacking[n] = [w for w in words if w not in kv.key_to_index]
        if not have:
            raise UserError(f"no word of {n!r} is in {model_path}: choose another model, or "
                            f"change its `manual` name in the csv")
        out[n] = _unit(np.mean([kv[w] for w in have], axis=0), n)
    return out, lacking


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description="Unit word vectors {name: float32[D]} for class names.")
    p.add_argument("--model", required=True,
                   help="fastText .bin (e.g. wiki.en.bin, as the released vectors) or a "
                        "word2vec-format file with --format word2vec")
    p.add_argument("--names", required=True,
                   help="mapping csv with a `manual` column (e.g. ucf_w2v_class_names.csv), or a "
                        ".txt with one name a line")
    p.add_argument("--output", required=True, help="the .npy to write (pickled dict)")
    p.add_argument("--format", choices=("fasttext", "word2vec"), default="fasttext",
                   help="fasttext: the whole name as one token (default, how the released files "
                        "were made); word2vec: the mean of the words of the name")
    p.add_argument("--text", action="store_true",
                   help="the word2vec file is in text format (default: binary)")
    return p


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    if not Path(args.model).is_file():
        raise UserError(f"model not found: {args.model}. The released vectors used fastText's "
                        f"wiki.en.bin (English Wikipedia, 300-d); pass its path with --model")
    names = read_names(args.names)
    if args.format == "fasttext":
        vectors = fasttext_vectors(args.model, names)
    else:
        vectors, lacking = word2vec_vectors(args.model, names, binary=not args.text)
        for n, words in lacking.items():
            print(f"{n!r}: not in the model: {', '.join(words)} (averaged the other words)",
                  file=sys.stderr)
    with atomic_path(args.output) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors, allow_pickle=True)
    dim = len(next(iter(vectors.values())))
    print(f"wrote {args.output}: {len(vectors)} names, {dim}-d unit vectors")
    return vectors


if __name__ == "__main__":
    entry("make_word_vectors.py", main)
