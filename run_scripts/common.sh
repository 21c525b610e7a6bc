#!/usr/bin/env bash
# Shared by run_scripts/{UCF,ActivityNet,VGGSound}-GZSL/*.sh: for one method on one dataset and for
# both feature families (main: SeLaVi 512/512 on main_split; cls: VGGish/C3D 128/4096 on cls_split),
# stage 1 (main.py), stage 2 (main.py --retrain_all --save_checkpoints) and the evaluation
# (get_evaluation.py), with the seed's hyper-parameters.
#
#   bash run_scripts/UCF-GZSL/avca.sh                            # the full runs
#   bash run_scripts/UCF-GZSL/avca.sh --epochs 2 --n_batches 5   # a smoke run: extra arguments go
#                                                                # to every main.py command
# Run it from the repository root: runs/{exp_name}/ are written under the current directory.
#
# Environment:
#   AVGZSL_DATA=DIR     folder holding UCF/, ActivityNet/, VGGSound/ (default avgzsl_benchmark_datasets)
#   PYTHON=EXE          the interpreter (default python3)
#   AVGZSL_FRESH=1      train every run from scratch (--overwrite) instead of continuing it
#   AVGZSL_DRY_RUN=1    print the commands instead of running them
#
# Running a script again continues its runs (main.py --resume --overwrite): an interrupted run goes
# on from its last finished epoch, a finished run has nothing left to do (a larger --epochs extends
# it), a run folder killed before its first epoch ended is started again. The evaluation is always
# redone. AVGZSL_FRESH=1 deletes and retrains instead.
#
# The flags are those of METHODS in src/reproduce.py (python -m src.reproduce runs the same grid
# with seeds and tables); tests/test_run_scripts.py checks that both give the same commands.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
AVGZSL_DATA=${AVGZSL_DATA:-avgzsl_benchmark_datasets}

COMMON=(--epochs 50 --n_batches 500)
AVCA=(--lr_scheduler --embeddings_hidden_size 512 --decoder_hidden_size 512 --embedding_dropout 0.2
      --decoder_dropout 0.3 --additional_dropout 0.5 --depth_transformer 1 --additional_triplets_loss
      --first_additional_triplet 1 --second_additional_triplet 1 --reg_loss)
BN=(--embedding_use_bn --decoder_use_bn --normalize_decoder_outputs)

family_flags() {   # FAMILY
  case $1 in
    main) echo --feature_extraction_method main_features --zero_shot_split main_split --input_size_audio 512 --input_size_video 512 ;;
    cls)  echo --feature_extraction_method cls_features --zero_shot_split cls_split --input_size_audio 128 --input_size_video 4096 ;;
  esac
}

model_flag() {     # METHOD -> the model flag of main.py and get_evaluation.py (none: AVGZSLNet)
  case $1 in
    avca) echo --AVCA ;;
    avgzslnet) ;;
    *) echo "--$1" ;;
  esac
}

method_flags() {   # METHOD FAMILY -> the method's main.py flags after its model flag
  case $1 in
    ale|sje|devise|apn) echo --lr 0.001; [[ $2 == cls ]] && echo --norm_inputs || true ;;
    fvaegan) echo --lr 0.0001 --bs 64 --syn_num 1000 --critic_iter 5 --cls_epochs 30 ;;
    cjme) echo --lr 0.001 "${BN[@]}" --dropout_baselines 0.2 ;;
    avgzslnet) echo --lr 0.001 "${BN[@]}" ;;
    avca) echo --lr 0.001 "${AVCA[@]}" --momentum "$([[ $2 == main ]] && echo 0.1 || echo 0.99)" ;;
    *) echo "run_scripts/common.sh: unknown method $1" >&2; return 1 ;;
  esac
}

run() {
  if [[ ${AVGZSL_DRY_RUN:-0} == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

run_gzsl() {       # DATASET METHOD [main.py arguments...]
  local dataset=$1 method=$2; shift 2
  local tag prefix family val all
  case $dataset in UCF) tag=ucf ;; ActivityNet) tag=activity ;; VGGSound) tag=vggsound ;; esac
  case $method in avca) prefix=attention ;; *) prefix=$method ;; esac
  local resume=(--resume --overwrite)
  [[ ${AVGZSL_FRESH:-0} == 1 ]] && resume=(--overwrite)
  for family in main cls; do
    val=${prefix}_${tag}_val_${family}
    all=${prefix}_${tag}_all_${family}
    # shellcheck disable=SC2046  # the flag lists hold no spaces
    local base=(--root_dir "$AVGZSL_DATA/$dataset" --dataset_name "$dataset" $(family_flags "$family")
                "${COMMON[@]}" $(model_flag "$method") $(method_flags "$method" "$family"))
    run "$PYTHON" "$ROOT/main.py" "${base[@]}" --exp_name "$val" "${resume[@]}" "$@"
    run "$PYTHON" "$ROOT/main.py" "${base[@]}" --retrain_all --save_checkpoints --exp_name "$all" "${resume[@]}" "$@"
    run "$PYTHON" "$ROOT/get_evaluation.py" --load_path_stage_A "runs/$val" --load_path_stage_B "runs/$all" \
        --dataset_name "$dataset" $(model_flag "$method")
  done
}
