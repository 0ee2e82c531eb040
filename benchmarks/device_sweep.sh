#!/usr/bin/env bash
# One prepared command for a session lent a GPU (the device tool's `run`): the development
# sweep of issue #29 at 256 x 256 on CUDA, every variant of one (noise, image) before the next,
# rows into $OUT as they come, stopped in time for them to come back. The device machine has
# torch but not the baselines' packages, which travel as wheels. Here, first:
#     bash benchmarks/device_sweep.sh prepare
# then through the device tool, with carry [".device_data"] and timeout_s 600:
#     bash benchmarks/device_sweep.sh run
# and append the rows of $OUT/sweep256_cuda.csv (a CSV of its own: another device) to
# results/recipe/ here. A rerun resumes: the rows already in results/recipe/ travel with the tree.
set -euo pipefail
VARIANTS=${VARIANTS:-"plus faithful plus_impulses_out"}
NOISES=${NOISES:-"saltpepper0.1 bernoulli0.2 impulse0.1 boxgauss25"}  # those #29 still lacks on the CPU
case "${1:-}" in
prepare)
  pip download -q --dest .device_data/wheels --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --no-deps bm3d bm4d imagecodecs PyWavelets
  ;;
run)
  python3 -m pip install -q --no-index --find-links .device_data/wheels bm3d bm4d imagecodecs PyWavelets
  for name in sweep256_cuda curves256_cuda; do
    if [ -f "results/recipe/$name.csv" ]; then cp "results/recipe/$name.csv" "$OUT/"; fi
  done
  # shellcheck disable=SC2086  # VARIANTS and NOISES are lists
  PYTHONUNBUFFERED=1 timeout "${SWEEP_SECONDS:-480}" python3 -m benchmarks.recipe_sweep --side 256 --device cuda \
    --precision fp32 --variants $VARIANTS --noises $NOISES --out "$OUT/sweep256_cuda.csv" --curves "$OUT/curves256_cuda.csv" || true
  ;;
*)
  echo "usage: bash benchmarks/device_sweep.sh prepare|run" >&2
  exit 2
  ;;
esac
