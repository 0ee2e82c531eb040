#!/usr/bin/env bash
# One prepared command for a session lent a GPU (the device tool's `run`): the paper's table
# cells for one method on CUDA, images of one size trained together (--batch_images), resuming
# from the rows committed here, stopped in time for the rows to come back. Here, first:
#     bash benchmarks/device_cells.sh prepare
# then through the device tool, with carry [".device_data"] and timeout_s 600:
#     METHOD=zsn2n CELLS="kodak_gauss25 kodak_gauss50" bash benchmarks/device_cells.sh run
# and back here, with the files_at folder the tool gives:
#     bash benchmarks/device_cells.sh land FILES_AT && python -m results.reproduce readme
# A second run resumes where the first stopped: commit the landed rows before it, so they travel.
set -euo pipefail
METHOD=${METHOD:-zsn2n}  # the method whose column is filled (--method)
CELLS=${CELLS:-all}  # results/reproduce.py's cell names
BATCH=${BATCH:-8}  # images trained together: a small network leaves a GPU idle one image at a time
CELL_SECONDS=${CELL_SECONDS:-420}  # no image starts that would end later: the rest of 600 s brings rows back
DEVICE=${DEVICE:-cuda}
case "${1:-}" in
prepare)
  bash benchmarks/device_sweep.sh prepare  # the baselines' wheels: the device machine has torch alone
  mkdir -p .device_data/data
  for dataset in kodak McMaster PolyU; do
    cp -r "../shared/data/$dataset" .device_data/data/
  done
  ;;
run)
  python3 -m pip install -q --no-index --find-links .device_data/wheels bm3d bm4d imagecodecs PyWavelets
  # The committed rows and run.json of every cell, so that finished images are skipped.
  mkdir -p "$OUT/tables"
  (cd results/tables && find . \( -name 'results*.csv' -o -name run.json \) -exec cp --parents {} "$OUT/tables/" \;)
  # shellcheck disable=SC2086  # CELLS is a list
  PYTHONUNBUFFERED=1 python3 -m results.reproduce run $CELLS --tables "$OUT/tables" --time_limit "$CELL_SECONDS" \
    --method "$METHOD" --device "$DEVICE" --batch_images "$BATCH" --data_path .device_data/data --no_progress \
    ${EXTRA:-} || true
  # Rows and provenance come back; the images stay (their number would pass the tool's limits).
  find "$OUT/tables" -type f ! -name 'results*.csv' ! -name run.json -delete
  ;;
land)
  cp -r --no-preserve=mode "${2:?the files_at folder}/tables/." results/tables/
  git status --short results/tables
  ;;
*)
  echo "usage: bash benchmarks/device_cells.sh prepare|run|land FILES_AT" >&2
  exit 2
  ;;
esac
