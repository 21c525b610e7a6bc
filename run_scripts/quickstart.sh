#!/usr/bin/env bash
# The main job on a synthetic benchmark: generate a UCF-sized synthetic dataset, train AVCA
# stage 1 and stage 2 with the seed's flags (fewer epochs and batches: EPOCHS, N_BATCHES),
# and print the evaluation. Runs from the repository root; any extra arguments go to main.py.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-synthetic_benchmark}
EPOCHS=${EPOCHS:-8}
N_BATCHES=${N_BATCHES:-60}
[ -d "$DATA/UCF" ] || python -m src.synthetic --dataset UCF --out_dir "$DATA"
AVCA="--root_dir $DATA/UCF --feature_extraction_method main_features --input_size_audio 512 --input_size_video 512
  --epochs $EPOCHS --lr_scheduler --dataset_name UCF --zero_shot_split main_split --AVCA --lr 0.001
  --n_batches $N_BATCHES --embeddings_hidden_size 512 --decoder_hidden_size 512 --embedding_dropout 0.2
  --decoder_dropout 0.3 --additional_dropout 0.5 --depth_transformer 1 --additional_triplets_loss
  --first_additional_triplet 1 --second_additional_triplet 1 --momentum 0.1 --reg_loss"
python main.py $AVCA --exp_name quickstart_ucf_val_main --overwrite "$@"
python main.py $AVCA --retrain_all --save_checkpoints --exp_name quickstart_ucf_all_main --overwrite "$@"
python get_evaluation.py --load_path_stage_A runs/quickstart_ucf_val_main \
  --load_path_stage_B runs/quickstart_ucf_all_main --dataset_name UCF --AVCA
