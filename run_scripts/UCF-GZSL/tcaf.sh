#!/usr/bin/env bash
# TCaF on UCF-GZSL: stage 1, stage 2 and get_evaluation.py on the temporal main and cls features (*_non_averaged).
# Extra arguments go to every main.py command; see run_scripts/common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
run_gzsl UCF tcaf "$@"
