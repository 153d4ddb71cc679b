#!/usr/bin/env bash
# The GPU run, on a bare host without network (the device tool's CUDA machines), from the repo root:
#
#   bash scripts/gpu_run.sh
#
# Needs .whl/ and .gpu/ from `python scripts/gpu_wheelhouse.py` (run where PyPI answers; carry both).
# Installs the carried wheels ONLY from .whl into $JOYGEN_GPU_SITE (no index, no dependencies), checks the
# environment, runs tests/test_gpu.py and the benchmark in fp16 and bf16 (and the generator alone in fp32),
# and writes 7 files into $OUT (default ./gpu-results): env.json, tests.json, bench-fp16.json,
# bench-bf16.json, bench-fp32-generator.json, summary.json, log.txt. Every step runs under `timeout`
# inside one overall budget, and a failing or stopped step does not stop the next.
#
# Settings (environment):
#   PYTHON                      the interpreter (default python3: the host's, with torch)
#   JOYGEN_GPU_RUN_DEVICE       cuda (default) or cpu: a dry run of the whole flow on a machine without a GPU
#   JOYGEN_GPU_RUN_SIZE         real (default) or tiny
#   JOYGEN_GPU_RUN_FRAMES       frames of the benchmark clip (default 250)
#   JOYGEN_GPU_RUN_BUDGET_S     seconds for everything (default 450); each step's limit scales with it
#   JOYGEN_GPU_SITE             where the wheels go (default /tmp/joygen-site)
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu-results}
DEVICE=${JOYGEN_GPU_RUN_DEVICE:-cuda}
SIZE=${JOYGEN_GPU_RUN_SIZE:-real}
FRAMES=${JOYGEN_GPU_RUN_FRAMES:-250}
BUDGET=${JOYGEN_GPU_RUN_BUDGET_S:-450}
SITE=${JOYGEN_GPU_SITE:-/tmp/joygen-site}
SCRATCH=$(mktemp -d /tmp/joygen-gpu-run.XXXXXX)
STEPS=$SCRATCH/steps.tsv
mkdir -p "$OUT"
LOG=$OUT/log.txt
: >"$LOG"
: >"$STEPS"

export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false
export JOYGEN_CACHE_DIR=$SCRATCH/cache NUMBA_CACHE_DIR=$SCRATCH/numba MPLCONFIGDIR=$SCRATCH/mpl
export JOYGEN_GOLDEN_DIR=$PWD/.gpu/golden JOYGEN_DATA_DIR=$PWD/.gpu/data
export JOYGEN_GPU_METRICS=$SCRATCH/metrics.jsonl
export PYTHONPATH=$SITE:$PWD
export PY OUT DEVICE SIZE FRAMES SITE SCRATCH

# Each step: its share of the budget (seconds at the default 450), in order; 10 s stay for the summary. A step
# may also use what the steps before it left unused; it never eats into the shares of the steps after it.
NAMES=(install env tests bench_fp16 bench_bf16 bench_fp32_generator)
SHARES=(40 35 100 115 115 35)
scaled() { echo $(($1 * BUDGET / 450)); }
later_shares() { # the scaled shares after step $1, and the summary's
    local i sum=$(scaled 10)
    for ((i = $1 + 1; i < ${#NAMES[@]}; i++)); do sum=$((sum + $(scaled "${SHARES[$i]}"))); done
    echo $sum
}

log() { echo "[gpu_run $(($(date +%s) - START))s] $*" | tee -a "$LOG"; }

# step INDEX COMMAND...: run under timeout (in a child bash, so COMMAND may be a function of this file),
# output to the log and stdout, status to $STEPS
step() {
    local idx=$1 name=${NAMES[$1]}
    shift
    local left=$((START + BUDGET - $(date +%s) - $(later_shares "$idx")))
    local cap=$left
    if ((cap < 5)); then
        log "$name: skipped, no time left"
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" -1 0 0 skipped >>"$STEPS"
        return 0
    fi
    log "$name: start (limit ${cap}s): $*"
    local t0 rc status
    t0=$(date +%s)
    set -o pipefail
    timeout -k 5 "$cap" bash -c '"$@"' step "$@" 2>&1 | tee -a "$LOG"
    rc=$?
    set +o pipefail
    case $rc in
        0) status=ok ;;
        124 | 137) status=timed_out ;;
        *) status=failed ;;
    esac
    log "$name: $status (exit $rc) after $(($(date +%s) - t0))s"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" "$cap" "$status" >>"$STEPS"
    return 0
}

install_wheels() {
    rm -rf "$SITE" && mkdir -p "$SITE" || return 1
    ls .whl/*.whl >/dev/null || { echo "no .whl/*.whl: run scripts/gpu_wheelhouse.py and carry .whl"; return 1; }
    [ -d .gpu/golden ] || echo "warning: no .gpu/golden (carry .gpu): the fixture tests will skip"
    if "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
            --target "$SITE" .whl/*.whl || return 1
    else
        echo "no pip: unpacking the wheels directly"
        "$PY" scripts/gpu_report.py unpack .whl "$SITE" || return 1
    fi
    "$PY" -m pip list --path "$SITE" 2>/dev/null || ls "$SITE"
}

run_tests() {
    local extra=()
    "$PY" -c "import pytest_timeout" 2>/dev/null && extra=(--timeout=90)  # the plugin loads itself
    "$PY" -m pytest tests/test_gpu.py -m gpu -p no:cacheprovider -rA \
        --junitxml="$SCRATCH/junit.xml" "${extra[@]}"
    local rc=$?
    "$PY" scripts/gpu_report.py tests --junit "$SCRATCH/junit.xml" --metrics "$JOYGEN_GPU_METRICS" --rc $rc \
        --out "$OUT/tests.json"
    return $rc
}

bench() { # DTYPE FILE [extra bench options]
    local dtype=$1 file=$2
    shift 2
    "$PY" -m joygen bench --device "$DEVICE" --size "$SIZE" --frames "$FRAMES" --dtype "$dtype" \
        --json "$OUT/$file" "$@"
}
export -f install_wheels run_tests bench

log "device $DEVICE, size $SIZE, $FRAMES frames, budget ${BUDGET}s, python $PY, out $OUT"
[ "$DEVICE" = cpu ] && log "dry run on the CPU: tests/test_gpu.py skips (no CUDA), the bench runs on the CPU"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$LOG"

step 0 install_wheels
step 1 "$PY" scripts/gpu_report.py env --wheels .whl --site "$SITE" --out "$OUT/env.json"
# Tests: on the CPU the gpu tests skip, unless JOYGEN_GPU_TEST_DEVICE is set by hand.
step 2 run_tests
step 3 bench float16 bench-fp16.json
step 4 bench bfloat16 bench-bf16.json
step 5 bench float32 bench-fp32-generator.json --only generator
timeout -k 5 30 "$PY" scripts/gpu_report.py summary --steps "$STEPS" --results "$OUT" --out "$OUT/summary.json" \
    2>&1 | tee -a "$LOG"
log "done in $(($(date +%s) - START))s; results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
rm -rf "$SCRATCH"
