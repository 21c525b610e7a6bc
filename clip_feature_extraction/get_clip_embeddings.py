"""ClipClap's class text embeddings (docs/clipclap.md 2): CLIP (512-d) and WavCaps (1024-d) vectors of
every class name, averaged over the prompt templates.

    python clip_feature_extraction/get_clip_embeddings.py --dataset ucf \
        --class_names avgzsl_benchmark_datasets/UCF/class-split/ucf_clip_class_names.csv \
        --output_dir text/ --clip_weights ViT-B-32.pt --wavcaps_weights HTSAT_BERT_zero_shot.pt \
        --bert_vocab bert-base-uncased/vocab.txt
    # UCF's class-name csv, made from the class list first (then embedded, with --output_dir):
    python clip_feature_extraction/get_clip_embeddings.py --dataset ucf \
        --make_ucf_class_names avgzsl_benchmark_datasets/UCF/class-split/all_class.txt \
        --class_names avgzsl_benchmark_datasets/UCF/class-split/ucf_clip_class_names.csv

See docs/extraction.md.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from clip_feature_extraction.family import clip_dataset  # noqa: E402
from clip_feature_extraction.templates import MODELS, templates  # noqa: E402
from clip_feature_extraction.text_embeddings import (class_embeddings, class_names_source,  # noqa: E402
                                                     embedding_file, encoders, read_class_names,
                                                     save_embeddings, write_ucf_clip_class_names)
from src.errors import ArgumentParser, UserError  # noqa: E402
from src.extraction.cli import DATASET_HELP, dataset_name, entry  # noqa: E402
from src.extraction.pipeline import default_device  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        description="Class text embeddings of ClipClap (docs/clipclap.md 2): per class, CLIP and WavCaps encode "
                    "the class name in each prompt template; the unit rows are averaged and the mean "
                    "normalised. Writes word_embeddings_{ucf,activitynet,vggsound}_normed.npy (CLIP, "
                    "512-d) and wavcaps_word_embeddings_{...}_normed.npy (WavCaps, 1024-d), pickled dicts "
                    "{class name: float32 vector}, into --output_dir (the split dataset's "
                    "features/cls_features_non_averaged/text/, or give it to split_features.py "
                    "--clip_text).")
    p.add_argument("--dataset", type=dataset_name, required=True, help=f"{DATASET_HELP} (decides the templates)")
    p.add_argument("--class_names", required=True,
                   help="csv of the class names: UCF's ucf_clip_class_names.csv (column clip_class_name), "
                        "ActivityNet's activitynet_w2v_class_names.csv or VGGSound's "
                        "vggsound_w2v_class_names.csv (column manual), from the dataset's class-split/")
    p.add_argument("--output_dir", default=None,
                   help="folder for the .npy files (required unless only --make_ucf_class_names)")
    p.add_argument("--make_ucf_class_names", metavar="SOURCE", default=None,
                   help="UCF: first write --class_names from SOURCE (all_class.txt, one name a line, or "
                        "ucf_w2v_class_names.csv): a space before every capital but the first, "
                        "HandstandPushups -> Hand Stand Pushups")
    g = p.add_argument_group("networks")
    g.add_argument("--clip_weights", default=None, help="ViT-B-32.pt, OpenAI CLIP ViT-B/32")
    g.add_argument("--wavcaps_weights", default=None, help="HTSAT_BERT_zero_shot.pt from the WavCaps release")
    g.add_argument("--bert_vocab", default=None,
                   help="bert-base-uncased's vocab.txt (WordPiece, lower-casing), WavCaps' tokenizer")
    g.add_argument("--models", default="clip,wavcaps",
                   help="which embeddings to make: clip, wavcaps or clip,wavcaps (default)")
    g.add_argument("--batch_size", type=int, default=256,
                   help="prompts per forward pass, whole classes together (1: one class per pass, as the "
                        "original; default 256)")
    g.add_argument("--device", default=None, help="torch device (default: cuda when a GPU is visible, else cpu)")
    g.add_argument("--random_init", action="store_true",
                   help="random network weights instead of the pretrained files (tests, timing)")
    g.add_argument("--seed", type=int, default=0, help="seed of the random weights under --random_init")
    g.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    dataset = clip_dataset(args.dataset)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or set(models) - set(MODELS):
        raise UserError(f"--models {args.models!r}: give clip, wavcaps or clip,wavcaps")
    if args.batch_size < 1:
        raise UserError("--batch_size must be >= 1")
    written = []
    if args.make_ucf_class_names:
        if dataset != "ucf":
            raise UserError(f"--make_ucf_class_names is for UCF; {dataset}'s names are the `manual` column of "
                            f"{class_names_source(dataset)[0]}")
        written.append(write_ucf_clip_class_names(args.make_ucf_class_names, args.class_names))
        print(f"wrote {written[-1]}")
        if args.output_dir is None:
            return written
    if args.output_dir is None:
        raise UserError("--output_dir is required (the folder for the .npy files)")
    names = read_class_names(args.class_names, dataset)
    device = args.device or str(default_device())
    encode = encoders(models, clip_weights=args.clip_weights, wavcaps_weights=args.wavcaps_weights,
                      bert_vocab=args.bert_vocab, random_init=args.random_init, seed=args.seed, device=device)
    for model in models:
        vectors = class_embeddings(names, templates(dataset, model), encode[model], batch_size=args.batch_size,
                                   progress=not args.no_progress, desc=f"{model} {dataset}")
        written.append(save_embeddings(vectors, Path(args.output_dir) / embedding_file(dataset, model)))
        print(f"wrote {written[-1]} ({len(vectors)} classes)")
    return written


if __name__ == "__main__":
    entry("get_clip_embeddings.py", main)
