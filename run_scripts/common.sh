#!/usr/bin/env bash
# Shared by run_scripts/{UCF,ActivityNet,VGGSound}-GZSL/*.sh: for one method on one dataset and for
# each feature family (main: SeLaVi 512/512 on main_split; cls: VGGish/C3D 128/4096 on cls_split),
# stage 1 (main.py), stage 2 (main.py --retrain_all --save_checkpoints) and the evaluation
# (get_evaluation.py), with the original run scripts' flags and run names.
#
#   bash run_scripts/UCF-GZSL/avca.sh                            # the full runs
#   bash run_scripts/UCF-GZSL/avca.sh --epochs 2 --n_batches 5   # a smoke run: extra arguments go
#                                                                # to every main.py command
# Run it from the repository root: runs/{exp_name}/ are written under the current directory, and the
# evaluation lines find the authors' released models (model.zip) unpacked there under their names.
#
# Environment:
#   AVGZSL_DATA=DIR     folder holding UCF/, ActivityNet/, VGGSound/ (default avgzsl_benchmark_datasets)
#   PYTHON=EXE          the interpreter (default python3)
#   AVGZSL_FRESH=1      train every run from scratch (--overwrite) instead of continuing it
#   AVGZSL_DRY_RUN=1    print the commands instead of running them
#   AVGZSL_FAMILIES="main cls clip"   the feature families to run (default: the method's own; the
#                       CLIP/CLAP cell (clip) of the benchmark's methods only when named, it reads
#                       ClipClap's data from $AVGZSL_DATA/ClipClap/{UCF,ActivityNet,VGGSound}); one the
#                       method does not run on (main for tcaf.sh) stops the script before anything runs,
#                       with one line naming the method's families (exit 2)
#
# Running a script again continues its runs (main.py --resume --overwrite): an interrupted run goes
# on from its last finished epoch, a finished run has nothing left to do (a larger --epochs extends
# it), a run folder killed before its first epoch ended is started again. The evaluation is always
# redone. AVGZSL_FRESH=1 deletes and retrains instead.
#
# The commands come from the one table of src/recipes.py (`python -m src.recipes --table` prints it;
# python -m src.reproduce runs the same cells with seeds and tables), and so do the scripts that source
# this file: `python -m src.recipes --write_scripts` writes one per dataset and row of the table.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
AVGZSL_DATA=${AVGZSL_DATA:-avgzsl_benchmark_datasets}

run_gzsl() {       # DATASET METHOD [main.py arguments...]
  local dataset=$1 method=$2; shift 2
  local fresh=() families=() cmds line
  [[ ${AVGZSL_FRESH:-0} == 1 ]] && fresh=(--fresh)
  [[ -n ${AVGZSL_FAMILIES:-} ]] && read -r -a families <<< "--families $AVGZSL_FAMILIES"
  cmds=$(PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m src.recipes "$dataset" "$method" \
         --data_dir "$AVGZSL_DATA" --python "$PYTHON" "${fresh[@]}" "${families[@]}" -- "$@") || exit $?
  while IFS= read -r line; do
    if [[ ${AVGZSL_DRY_RUN:-0} == 1 ]]; then echo "$line"; else eval "$line"; fi
  done <<< "$cmds"
}
