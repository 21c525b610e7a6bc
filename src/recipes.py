"""The original run scripts as data (docs/run_scripts.md): for every method, dataset and
feature family, the flags of its stage-1 `main.py` command (stage 2 adds `--retrain_all
--save_checkpoints` and `_all_` in the run name), its run names and its `get_evaluation.py` line.

This table is the only copy: the run scripts are written from it (`--write_scripts`),
`run_scripts/common.sh` prints and runs the commands through `python -m src.recipes DATASET
METHOD`, and `python -m src.reproduce` runs the same cells with seeds. A method's flags are
layered, later layers overriding earlier ones: the common flags, the method's, then per family,
per dataset, and per (dataset, family).

    python -m src.recipes VGGSound avca                       # the six commands, shell-quoted
    python -m src.recipes UCF ale --data_dir DIR -- --epochs 2  # extra main.py flags at the end
    python -m src.recipes --table                              # the whole table as Markdown
    python -m src.recipes --write_scripts                      # run_scripts/{Dataset}-GZSL/{script}.sh

Where this project runs something the original did not, the row says so (`extra_families`,
`note`): f-VAEGAN-D2 ran in its own script on main features only, with no run name and no
evaluation line; here it runs on both families, under `fvaegan_*` run names, with an evaluation.
"""
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .families import DATASETS, FAMILIES, dataset_root
from .errors import ArgumentParser, UserError, exit_on_user_error

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "run_scripts"

DATASET_TAGS = {name: d.run_tag for name, d in DATASETS.items()}      # run-name tags
FAMILY_FLAGS: Dict[str, str] = {      # the first layer of every training command
    name: f"--feature_extraction_method {f.folder} --input_size_audio {f.audio_width} "
          f"--input_size_video {f.video_width} --zero_shot_split {f.split}"
    for name, f in FAMILIES.items()}
COMMON = "--epochs 50 --lr_scheduler --lr 0.001 --n_batches 500"      # on every training command
STAGE_2 = ("--retrain_all", "--save_checkpoints")
RESUME = ("--resume", "--overwrite")     # continue an interrupted run; restart one with no resume state
BN = "--decoder_use_bn --embedding_use_bn --normalize_decoder_outputs"


@dataclass(frozen=True)
class Method:
    label: str                        # the row of the results tables
    script: str                       # run_scripts/{Dataset}-GZSL/{script}.sh
    run_prefix: str                   # runs/{run_prefix}_{dataset tag}_{val|all}_{family}
    model_flag: str                   # main.py's and get_evaluation.py's model flag ("" = AVGZSLNet)
    flags: str = ""                   # the method's main.py flags (after `common`)
    per_family: Dict[str, str] = field(default_factory=dict)
    per_dataset: Dict[str, str] = field(default_factory=dict)
    per_cell: Dict[Tuple[str, str], str] = field(default_factory=dict)      # (dataset, family)
    run_stems: Dict[str, str] = field(default_factory=dict)                 # dataset -> run-name stem
    original_families: Tuple[str, ...] = ("main", "cls")   # what the original scripts ran
    extra_families: Tuple[str, ...] = ()                   # run here only (not in the original)
    original_run_names: bool = True   # False: the original had none, these are the project's
    original_evaluation: bool = True  # False: the original had no get_evaluation.py line
    note: str = ""
    common: str = COMMON              # the first flags after the family's (TCaF has its own)

    @property
    def families(self) -> Tuple[str, ...]:
        return self.original_families + self.extra_families

    @property
    def script_families(self) -> Tuple[str, ...]:
        """What its run script runs by default: its families, but the CLIP/CLAP cell of a method the
        original ran on the benchmark's features (it needs ClipClap's data: AVGZSL_FAMILIES adds it)."""
        return tuple(f for f in self.families if f != ON_CLIP or not self.original_families)

    def family_flags(self, family: str) -> str:
        """The method's per-family flags; on CLIP/CLAP features, its main-feature ones unless it has its own."""
        if family == ON_CLIP and family not in self.per_family:
            return self.per_family.get("main", "")
        return self.per_family.get(family, "")


# TCaF (docs/tcaf.md §9): its own common flags (no --lr_scheduler for every config), the temporal feature
# folders, and the six best configurations as (dataset, family) cells.
TCAF_COMMON = ("--epochs 50 --n_batches 300 --bs 64 --seed 42 --distance_fn L2Loss --transformer_dim 300 "
               "--transformer_mlp_dim 128 --transformer_embedding_dim 64 --transformer_embedding_fourier_scale 10 "
               "--decoder_hidden_size 512 --embeddings_batch_norm True --rec_loss True --reg_loss "
               "--cross_entropy_loss True --batch_seqlen_train_maxlen 60 --batch_seqlen_train_trim random "
               "--batch_seqlen_test_maxlen 300 --batch_seqlen_test_trim center --eval_bs 64 "
               "--transformer_use_class_token True --transformer_use_embedding_net True --use_cross_attention True "
               "--use_self_attention False --transformer_embedding_time_embed_type sinusoid "
               "--transformer_embedding_modality True")


def _tcaf(hidden, emb_drop, dec_drop, add_drop, depth, heads, dim_head, tr_drop, tr_emb_drop, lr, sched, seqlen):
    return (f"--embeddings_hidden_size {hidden} --embedding_dropout {emb_drop} --decoder_dropout {dec_drop} "
            f"--additional_dropout {add_drop} --transformer_depth {depth} --transformer_heads {heads} "
            f"--transformer_dim_head {dim_head} --transformer_dropout {tr_drop} "
            f"--transformer_embedding_dropout {tr_emb_drop} --lr {lr} --batch_seqlen_train {seqlen} "
            f"--batch_seqlen_test {seqlen}" + (" --lr_scheduler" if sched else ""))


# ClipClap (docs/clipclap.md §6): config/clipclap.yaml over TCaF's defaults, and its command lines' flags.
CLIPCLAP_COMMON = ("--n_batches 300 --bs 64 --seed 42 --lr_scheduler --distance_fn L2Loss --decoder_hidden_size 512 "
                   "--decoder_dropout 0.1 --additional_dropout 0.1 --embeddings_batch_norm True --rec_loss True "
                   "--reg_loss --cross_entropy_loss True --eval_bs 64 --use_wavcaps_embeddings True --modality both "
                   "--word_embeddings both --best_model_criterion score")
# HSP-MoE's README recipe, the full model (docs/hspmoe.md §5.1): every one of its flags pinned, since
# the original script's defaults train another model.
# (tests/test_hspmoe.py: these are src/models/hspmoe.py's RECIPE)
HSPMOE_RECIPE = ("--semantic_hyperspherical True --semantic_hyperspherical_temperature 0.1 --semantic_radial_mode none "
                 "--semantic_radial_alpha 0.0 --semantic_distill_loss True --semantic_distill_weight 0.0 "
                 "--semantic_distribution_weight 0.001 --semantic_relation_weight 0.0002 --semantic_distill_mode both "
                 "--semantic_distill_temperature 2.0 --semantic_hup_loss True --semantic_hup_weight 0.0002 "
                 "--semantic_hup_mode uniformity --semantic_hup_temperature 2.0 --semantic_hup_margin 0.0 "
                 "--semantic_hup_cross_class_only True --semantic_far_fusion True --semantic_far_adapted_weight 0.5 "
                 "--semantic_far_scale_raw True --semantic_consensus_routing True --semantic_consensus_weight 0.5 "
                 "--semantic_consensus_temperature 1.0 --av_fusion_module False --av_fusion_dropout 0.1")
# ClipClap's epochs and learning rates per dataset (docs/clipclap.md §6); HSP-MoE's are the same
CLIPCLAP_SCHEDULE = {"UCF": "--epochs 20 --lr 0.00007", "ActivityNet": "--epochs 15 --lr 0.0001",
                     "VGGSound": "--epochs 15 --lr 0.0001"}
# The averaged methods on CLIP/CLAP features (this project): each method's own flags, the main
# family's where a method has per-family ones.
ON_CLIP = "clip"

# Row order of the paper's table. Values: docs/run_scripts.md, checked by tests/test_run_scripts.py.
METHODS: Dict[str, Method] = {m.script.replace("-", ""): m for m in (
    Method("ALE", "ale", "ale", "--ale", "--dropout_baselines 0.2", {"cls": "--norm_inputs"},
           {"VGGSound": "--dropout_baselines 0.0"}, extra_families=(ON_CLIP,)),
    Method("SJE", "sje", "sje", "--sje", "--dropout_baselines 0.2", {"cls": "--norm_inputs"},
           {"VGGSound": "--dropout_baselines 0.0"}, extra_families=(ON_CLIP,)),
    Method("DEVISE", "devise", "devise", "--devise", "--dropout_baselines 0.2", {"cls": "--norm_inputs"},
           {"VGGSound": "--dropout_baselines 0.0"}, extra_families=(ON_CLIP,)),
    Method("APN", "apn", "apn", "--apn", "", {"cls": "--norm_inputs"}, extra_families=(ON_CLIP,)),
    Method("f-VAEGAN-D2", "f-vaegan", "fvaegan", "--fvaegan", "--syn_num 1000",
           per_dataset={"VGGSound": "--reg_loss --syn_num 10000"},   # --reg_loss: no effect, as in the original
           original_families=("main",), extra_families=("cls", ON_CLIP), original_run_names=False,
           original_evaluation=False,
           note="the original ran vae_gan_d2_xu_fsl.py on main features only, with no run name and no "
                "get_evaluation.py line (it chose its epoch on the test set: --test_selection); here both "
                "families, fvaegan_* run names and the two-stage evaluation"),
    Method("CJME", "cjme", "cjme", "--cjme", f"{BN} --dropout_baselines 0.2",
           per_dataset={"VGGSound": "--dropout_baselines 0.0"}, extra_families=(ON_CLIP,)),
    Method("AVGZSLNet", "avgzslnet", "avgzslnet", "", BN, extra_families=(ON_CLIP,)),
    Method("AVCA", "avca", "attention", "--AVCA",
           "--embeddings_hidden_size 512 --decoder_hidden_size 512 --embedding_dropout 0.2 --decoder_dropout 0.3 "
           "--additional_dropout 0.5 --depth_transformer 1 --additional_triplets_loss --first_additional_triplet 1 "
           "--second_additional_triplet 1 --reg_loss",
           per_family={"main": "--momentum 0.1", "cls": "--momentum 0.99"},
           per_dataset={"ActivityNet": "--decoder_dropout 0.2 --additional_dropout 0.1 --momentum 0.99"},
           per_cell={("VGGSound", "main"): "--embedding_dropout 0.0 --decoder_dropout 0.0 --additional_dropout 0.1 "
                                           "--bs 64",
                     ("VGGSound", "cls"): "--embedding_dropout 0.0 --decoder_dropout 0.0 --additional_dropout 0.0"},
           run_stems={"VGGSound": "attention_vgg"}, extra_families=(ON_CLIP,)),
    Method("TCaF", "tcaf", "tcaf", "--new_model_sequence", common=TCAF_COMMON,
           per_family={"main_temporal": "--selavi True", "cls_temporal": "--selavi False"},
           per_cell={   # docs/tcaf.md §9: config/best/{best_main,best_cls}/best_{ucf,anet,vggsound}.yaml
               ("UCF", "main_temporal"): _tcaf(256, 0.4, 0.2, 0.1, 5, 8, 64, 0.3, 0.2, 5e-5, False, "max"),
               ("ActivityNet", "main_temporal"): _tcaf(128, 0.2, 0.1, 0.1, 8, 3, 128, 0.3, 0.2, 7e-5, True, "fixed"),
               ("VGGSound", "main_temporal"): _tcaf(128, 0.2, 0.2, 0.2, 8, 6, 128, 0.5, 0.2, 7e-5, False, "max"),
               ("UCF", "cls_temporal"): _tcaf(512, 0.3, 0.1, 0.1, 6, 8, 64, 0.3, 0.2, 7e-5, True, "max"),
               ("ActivityNet", "cls_temporal"): _tcaf(512, 0.3, 0.1, 0.1, 6, 8, 64, 0.4, 0.2, 7e-5, True, "fixed"),
               ("VGGSound", "cls_temporal"): _tcaf(512, 0.2, 0.2, 0.1, 8, 8, 64, 0.5, 0.1, 6e-5, False, "max")},
           original_families=(), extra_families=("main_temporal", "cls_temporal"), original_run_names=False,
           original_evaluation=False,
           note="TCaF (ECCV 2022) had its own code and no run scripts in the original; its best configurations "
                "(docs/tcaf.md §9) on the temporal features, under the two-stage protocol, tcaf_* run names"),
    Method("ClipClap", "clipclap", "clipclap", "--clipclap", common=CLIPCLAP_COMMON,
           per_dataset=CLIPCLAP_SCHEDULE,
           original_families=(), extra_families=(ON_CLIP,), original_run_names=False, original_evaluation=False,
           note="ClipClap (CVPRW 2024) had its own code (`main.py --cfg config/clipclap.yaml ... --run all`); its "
                "published settings (docs/clipclap.md §6) on the CLIP/CLAP features, under the two-stage protocol, "
                "clipclap_* run names"),
    Method("HSP-MoE", "hspmoe", "hspmoe", "--hspmoe", common=CLIPCLAP_COMMON, flags=HSPMOE_RECIPE,
           per_dataset=CLIPCLAP_SCHEDULE,
           original_families=(), extra_families=(ON_CLIP,), original_run_names=False, original_evaluation=False,
           note="HSP-MoE (XPX-LQL/HSP-MoE-AVGZSL) had its own code (ClipClap's `main.py --cfg config/clipclap.yaml "
                "... --run all` with its --semantic_* flags); its README recipe (the full model, docs/hspmoe.md §5.1, "
                "not its script's defaults) under the two-stage protocol, hspmoe_* run names"),
    Method("Frozen CLIP/CLAP (training-free)", "frozen_clipclap", "frozen_clipclap", "--frozen_clipclap", common="",
           original_families=(), extra_families=(ON_CLIP,), original_run_names=False, original_evaluation=False,
           note="no one reported it: the frozen CLIP/CLAP encoders' own zero-shot matching (docs/hspmoe.md §6), no "
                "training (stage 1 and stage 2 are one validation each; --epochs is ignored), beta chosen on val and "
                "applied on test as for every method, frozen_clipclap_* run names"),
)}


def merge_flags(*layers: str) -> List[str]:
    """Flags of `--flag [value]` strings, a later layer's value replacing an earlier one's in place."""
    out: Dict[str, Optional[str]] = {}
    for layer in layers:
        toks = layer.split()
        for i, tok in enumerate(toks):
            if tok.startswith("--"):
                has_value = i + 1 < len(toks) and not toks[i + 1].startswith("--")
                out[tok] = toks[i + 1] if has_value else None
    return [t for flag, value in out.items() for t in ((flag,) if value is None else (flag, value))]


def not_its_families(method: str, families: Sequence[str]) -> str:
    """'' when `method` runs on every one of `families`, else the one-line reason naming those it does
    not run on and its own: `tcaf does not run on main (its families: main_temporal, cls_temporal)`."""
    m = METHODS[method]
    wrong = [f for f in dict.fromkeys(families) if f not in m.families]
    return f"{method} does not run on {', '.join(wrong)} (its families: {', '.join(m.families)})" if wrong else ""


def training_flags(method: str, dataset: str, family: str) -> List[str]:
    """The stage-1 main.py flags of a cell, without --root_dir, --dataset_name and --exp_name."""
    m = METHODS[method]
    if family not in m.families:
        raise UserError(not_its_families(method, [family]))
    return merge_flags(FAMILY_FLAGS[family], m.common, m.model_flag, m.flags, m.family_flags(family),
                       m.per_dataset.get(dataset, ""), m.per_cell.get((dataset, family), ""))


def exp_names(method: str, dataset: str, family: str) -> Tuple[str, str]:
    """(stage-1, stage-2) run folder names, e.g. attention_vgg_val_main, attention_vgg_all_main."""
    m = METHODS[method]
    stem = m.run_stems.get(dataset, f"{m.run_prefix}_{DATASET_TAGS[dataset]}")
    return f"{stem}_val_{family}", f"{stem}_all_{family}"


def cell_commands(method: str, dataset: str, family: str, data_dir, dump_path=None, seed: Optional[int] = None,
                  extra: Sequence[str] = (), resume: Sequence[str] = RESUME) -> List[List[str]]:
    """The three commands of a cell: [script, args...] for main.py (stages 1 and 2) and get_evaluation.py."""
    val, full = exp_names(method, dataset, family)
    root = dataset_root(data_dir, dataset, FAMILIES[family]).as_posix()      # {data_dir}[/ClipClap]/{dataset}
    base = ["--root_dir", root, "--dataset_name", dataset, *training_flags(method, dataset, family)]
    if seed is not None:
        base += ["--seed", str(seed)]
    if dump_path is not None:
        base += ["--dump_path", str(dump_path)]
    runs = "runs" if dump_path is None else f"{dump_path}/runs"
    model_flag = METHODS[method].model_flag.split()
    return [["main.py", *base, "--exp_name", val, *resume, *extra],
            ["main.py", *base, *STAGE_2, "--exp_name", full, *resume, *extra],
            ["get_evaluation.py", "--load_path_stage_A", f"{runs}/{val}", "--load_path_stage_B", f"{runs}/{full}",
             "--dataset_name", dataset, *model_flag]]


def script_commands(method: str, dataset: str, data_dir: str, extra: Sequence[str] = (), fresh: bool = False,
                    python: str = "python3", families: Optional[Sequence[str]] = None) -> List[List[str]]:
    """What run_scripts/{dataset}-GZSL/{script}.sh runs: the cell of each family (default: the
    method's script families), with absolute script paths. Families asked for that the method does
    not run on are a UserError, also when others apply: a grid silently missing cells is refused."""
    resume = ("--overwrite",) if fresh else RESUME
    m = METHODS[method]
    if families and not_its_families(method, families):
        raise UserError(not_its_families(method, families))
    chosen = m.script_families if not families else list(dict.fromkeys(families))
    return [[python, str(REPO / cmd[0]), *cmd[1:]]
            for family in chosen
            for cmd in cell_commands(method, dataset, family, data_dir, extra=extra, resume=resume)]


def markdown_table() -> str:
    rows = ["| method | dataset | family | stage-1 run name | training flags (stage 1) |", "|---|---|---|---|---|"]
    for key, m in METHODS.items():
        for d in DATASET_TAGS:
            for f in m.families:
                extra = "" if f in m.original_families else " (this project only)"
                rows.append(f"| {m.label} | {d} | {f}{extra} | `{exp_names(key, d, f)[0]}` | "
                            f"`{' '.join(training_flags(key, d, f))}` |")
    notes = [f"- {m.label}: {m.note}" for m in METHODS.values() if m.note]
    return "\n".join(rows + [""] + notes) + "\n"


# -- the run scripts: run_scripts/{Dataset}-GZSL/{script}.sh, one per dataset and methods row ------

# How a script's first line names what it runs (its script families); other families: "on the {names} features".
SCRIPT_FAMILIES = {("main", "cls"): "for main and cls features",
                   ("main_temporal", "cls_temporal"): "on the temporal main and cls features (*_non_averaged)",
                   (ON_CLIP,): "on the CLIP/CLAP features ($AVGZSL_DATA/ClipClap/{dataset})"}
SCRIPT = """#!/usr/bin/env bash
# {label} on {dataset}-GZSL: stage 1, stage 2 and get_evaluation.py {families}.
# Extra arguments go to every main.py command; see run_scripts/common.sh.
source "$(dirname "${{BASH_SOURCE[0]}}")/../common.sh"
run_gzsl {dataset} {method} "$@"
"""
# A script this module wrote, whatever its row (a file that does not match is never removed)
GENERATED = re.compile(r"#!/usr/bin/env bash\n# .* on (\w+)-GZSL: stage 1, stage 2 and get_evaluation\.py .*\.\n"
                       r"# Extra arguments go to every main\.py command; see run_scripts/common\.sh\.\n"
                       r'source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)/\.\./common\.sh"\n'
                       r'run_gzsl (\w+) [\w-]+ "\$@"\n')


def script_text(method: str, dataset: str) -> str:
    """run_scripts/{dataset}-GZSL/{script}.sh of a methods row: common.sh's run_gzsl for it."""
    m = METHODS[method]
    families = SCRIPT_FAMILIES.get(m.script_families, f"on the {' and '.join(m.script_families)} features")
    return SCRIPT.format(label=m.label, dataset=dataset, families=families.format(dataset=dataset), method=method)


def scripts() -> Dict[str, str]:
    """{path under run_scripts/: text} of every run script."""
    return {f"{d}-GZSL/{m.script}.sh": script_text(method, d) for d in DATASET_TAGS for method, m in METHODS.items()}


def is_generated(path: Path) -> bool:
    """A run script as `write_scripts` writes it (of any row, in the folder of its dataset)."""
    match = GENERATED.fullmatch(path.read_text(errors="replace")) if path.is_file() else None
    return bool(match) and match.group(1) == match.group(2) and path.parent.name == f"{match.group(1)}-GZSL"


def write_executable(path: Path, text: str) -> None:
    """An executable file written atomically (a temp file beside it, then a rename): src/io_utils.py's
    way, without its torch import (the run scripts call this module for every command line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_scripts(folder: Path = SCRIPTS) -> Tuple[List[Path], List[Path]]:
    """Write the run scripts of the methods table into `folder` (run_scripts/), atomically and
    executable, leaving those already up to date alone; remove the generated scripts of rows that
    are gone. Returns (written, removed)."""
    written, removed = [], []
    wanted = scripts()
    for name, text in wanted.items():
        path = folder / name
        if path.is_file() and path.read_text() == text and path.stat().st_mode & 0o111 == 0o111:
            continue
        write_executable(path, text)
        written.append(path)
    for path in sorted(folder.glob("*-GZSL/*.sh")):
        if path.relative_to(folder).as_posix() not in wanted and is_generated(path):
            path.unlink()
            removed.append(path)
    return written, removed


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m src.recipes", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", nargs="?", choices=list(DATASET_TAGS))
    p.add_argument("method", nargs="?", choices=list(METHODS))
    p.add_argument("--data_dir", default="avgzsl_benchmark_datasets",
                   help="folder holding UCF/, ActivityNet/, VGGSound/ (and ClipClap/{UCF,...}/ for CLIP/CLAP features)")
    p.add_argument("--python", default="python3", help="the interpreter in the printed commands")
    p.add_argument("--fresh", action="store_true", help="--overwrite instead of --resume --overwrite")
    p.add_argument("--families", nargs="+", default=None, choices=list(FAMILIES),
                   help="feature families to run (default: the method's run-script families; the CLIP/CLAP "
                        "cell of the benchmark's methods only when named here); a family the method does not "
                        "run on is an error")
    p.add_argument("--table", action="store_true", help="print the whole table as Markdown")
    p.add_argument("--write_scripts", action="store_true",
                   help="write run_scripts/{Dataset}-GZSL/{script}.sh for every row of the table, and remove "
                        "the generated scripts of rows that are gone")
    p.epilog = "Arguments after -- go to every main.py command."
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = p.parse_args(argv[:cut]), argv[cut + 1:]
    if args.table:
        print(markdown_table(), end="")
        return 0
    if args.write_scripts:
        written, removed = write_scripts()
        for path in written:
            print(f"wrote {path.relative_to(REPO)}")
        for path in removed:
            print(f"removed {path.relative_to(REPO)}")
        if not written and not removed:
            print(f"{SCRIPTS.relative_to(REPO)}/ is up to date")
        return 0
    if args.dataset is None or args.method is None:
        p.error("give DATASET and METHOD, --table or --write_scripts")
    with exit_on_user_error(p.prog):     # a family the method does not run on: one line, exit 2
        cmds = script_commands(args.method, args.dataset, args.data_dir, extra, args.fresh, args.python,
                               args.families)
    for cmd in cmds:
        print(" ".join(shlex.quote(a) for a in cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
