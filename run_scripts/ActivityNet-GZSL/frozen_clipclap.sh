#!/usr/bin/env bash
# Frozen CLIP/CLAP (training-free) on ActivityNet-GZSL: stage 1, stage 2 and get_evaluation.py on the CLIP/CLAP features ($AVGZSL_DATA/ClipClap/ActivityNet).
# Extra arguments go to every main.py command; see run_scripts/common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
run_gzsl ActivityNet frozen_clipclap "$@"
