#!/usr/bin/env bash
# Time .tflite models on an Android phone with TensorFlow Lite's official benchmark_model binary.
# Needs only adb (Android platform-tools). The binary is never downloaded: pass --binary PATH or set
# MOBILE_SR_BENCHMARK_MODEL to a prebuilt android_aarch64_benchmark_model. Run with --help.
set -euo pipefail

REMOTE_DIR=/data/local/tmp
REMOTE_BINARY=$REMOTE_DIR/benchmark_model
ADB_TIMEOUT=30   # seconds for devices, getprop, chmod
PUSH_TIMEOUT=300
RUN_TIMEOUT=420  # the tool caps warm-up and timed runs at 150 s each, plus initialization

usage() {
  cat <<'EOF'
Usage: run_benchmark.sh [options] MODEL.tflite [MODEL.tflite ...]

Pushes TFLite's benchmark_model and the models to /data/local/tmp on one or more Android phones, runs
  benchmark_model --graph=MODEL --num_threads=N --num_runs=R --warmup_runs=W <delegate flags> \
    --report_peak_memory_footprint=true
for every device, model and thread count, and prints each device and the tool's full output.

Options:
  --binary PATH            benchmark_model for the phone (default: $MOBILE_SR_BENCHMARK_MODEL),
                           e.g. TFLite's prebuilt android_aarch64_benchmark_model; never downloaded
  --serial LIST            device(s) to run on: a serial (see 'adb devices'), several
                           comma-separated, or all; needed when several are connected
  --delegate NAME          cpu (no XNNPACK), xnnpack, gpu or nnapi (default: cpu)
  --threads LIST           comma-separated thread counts, e.g. 1,4 (default: 1)
  --runs N                 timed runs (default: 50)
  --warmup-runs N          warm-up runs (default: 5)
  --nnapi-accelerator NAME NNAPI device, e.g. qti-dsp (with --delegate nnapi)
  --profile                per-operator profile (--enable_op_profiling=true)
  -h, --help               show this help

Exits non-zero with a one-line 'error: ...' on stderr when adb, the device, the binary, the
delegate or the model is the problem.
EOF
}

die() { echo "error: $*" >&2; exit 1; }

# Run a command with a time limit where coreutils' timeout exists (not on stock macOS).
limited() {
  local seconds=$1; shift
  if command -v timeout >/dev/null 2>&1; then timeout "$seconds" "$@"; else "$@"; fi
}

binary=${MOBILE_SR_BENCHMARK_MODEL:-}
serial=""
delegate=cpu
threads=1
runs=50
warmup_runs=5
accelerator=""
profile=0
models=()

need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --binary) need "$@"; binary=$2; shift 2 ;;
    --serial) need "$@"; serial=$2; shift 2 ;;
    --delegate) need "$@"; delegate=$2; shift 2 ;;
    --threads) need "$@"; threads=$2; shift 2 ;;
    --runs) need "$@"; runs=$2; shift 2 ;;
    --warmup-runs) need "$@"; warmup_runs=$2; shift 2 ;;
    --nnapi-accelerator) need "$@"; accelerator=$2; shift 2 ;;
    --profile) profile=1; shift ;;
    --) shift; models+=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) models+=("$1"); shift ;;
  esac
done

# --- arguments, checked before touching the phone -------------------------------------------
[ ${#models[@]} -gt 0 ] || die "no model given; pass one or more .tflite files (see --help)"
for model in "${models[@]}"; do
  [ -f "$model" ] || die "model $model not found"
  # a FlatBuffer's identifier sits at bytes 4..7; od prints a NUL as \0, which bash would drop
  [ "$(od -An -c -j 4 -N 4 "$model" | tr -d ' ')" = TFL3 ] \
    || die "$model is not a TFLite model (no 'TFL3' identifier at bytes 4..7); export one with 'mobile-sr export'"
done
case "$delegate" in
  cpu) delegate_flags=(--use_xnnpack=false) ;;  # the tool applies XNNPACK by default
  xnnpack) delegate_flags=(--use_xnnpack=true) ;;
  gpu) delegate_flags=(--use_gpu=true) ;;
  nnapi) delegate_flags=(--use_nnapi=true) ;;
  *) die "unknown delegate '$delegate'; choose cpu, xnnpack, gpu or nnapi" ;;
esac
if [ -n "$accelerator" ]; then
  [ "$delegate" = nnapi ] || die "--nnapi-accelerator only applies to --delegate nnapi"
  delegate_flags+=("--nnapi_accelerator_name=$accelerator")
fi
if [ "$profile" = 1 ]; then delegate_flags+=(--enable_op_profiling=true); fi
[[ "$threads" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--threads must be a comma-separated list of counts >= 1, e.g. 1,4"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a whole number >= 1"
[[ "$warmup_runs" =~ ^[0-9]+$ ]] || die "--warmup-runs must be a whole number >= 0"

[ -n "$binary" ] || die "no benchmark_model binary: pass --binary PATH or set MOBILE_SR_BENCHMARK_MODEL to TFLite's prebuilt android_aarch64_benchmark_model (it is never downloaded)"
[ -f "$binary" ] || die "benchmark binary $binary not found; point --binary (or MOBILE_SR_BENCHMARK_MODEL) to TFLite's prebuilt android_aarch64_benchmark_model"
# the ELF header as decimal bytes: magic at 0..3, byte order at 5 (2: big-endian), e_machine at 18..19
read -r -a elf <<<"$(od -An -v -tu1 -N 20 "$binary" | tr '\n' ' ')"
[ "${#elf[@]}" -eq 20 ] && [ "${elf[*]:0:4}" = "127 69 76 70" ] \
  || die "$binary is not an executable (no ELF header); use TFLite's prebuilt android_aarch64_benchmark_model binary, not the .apk"
if [ "${elf[5]}" = 2 ]; then machine=$((elf[18] * 256 + elf[19])); else machine=$((elf[19] * 256 + elf[18])); fi
case "$machine" in  # ELF e_machine -> the Android ABIs that run it
  183) binary_abis="arm64-v8a" ;;
  40) binary_abis="armeabi-v7a armeabi" ;;
  62) binary_abis="x86_64" ;;
  3) binary_abis="x86" ;;
  *) binary_abis="" ;;
esac

# --- adb and the device ----------------------------------------------------------------------
command -v adb >/dev/null 2>&1 || die "adb not found on PATH; install Android platform-tools (https://developer.android.com/tools/releases/platform-tools) and add them to PATH"

# "SERIAL<tab>STATE" per device; the state may have spaces ("no permissions (...)"). Skip the
# header and the server's start-up notices ("* daemon started successfully").
devices=$(limited "$ADB_TIMEOUT" adb devices | tr -d '\r' \
  | awk '/^\*/ || /^List of devices/ || NF < 2 {next} {serial = $1; sub(/^[^ \t]+[ \t]+/, ""); print serial "\t" $0}') \
  || die "'adb devices' failed or timed out; run 'adb kill-server' and retry"
no_device="no Android device found: connect the phone by USB, enable USB debugging (Settings > Developer options) and check that 'adb devices' lists it"
serials=()
if [ -z "$serial" ] || [ "$serial" = all ]; then
  [ -n "$devices" ] || die "$no_device"
  while IFS= read -r name; do serials+=("$name"); done < <(printf '%s\n' "$devices" | cut -f 1)  # bash 3 has no mapfile
  [ -n "$serial" ] || [ "${#serials[@]}" -eq 1 ] \
    || die "several devices connected ($(printf '%s\n' "${serials[@]}" | paste -sd, - | sed 's/,/, /g')); choose one with --serial SERIAL, several with --serial SERIAL1,SERIAL2, or every one with --serial all"
else
  IFS=, read -r -a listed <<<"$serial"
  for name in "${listed[@]}"; do [ -z "$name" ] || serials+=("$name"); done
  [ "${#serials[@]}" -gt 0 ] || die "--serial '$serial' names no device; give a serial from 'adb devices', several separated by commas, or all"
fi
for serial in "${serials[@]}"; do  # every device must be ready before the first run
  state=$(printf '%s\n' "$devices" | awk -F '\t' -v s="$serial" '$1 == s {print $2; exit}')
  case "$state" in
    device) ;;
    unauthorized) die "device $serial is unauthorized: unlock the phone and accept the 'Allow USB debugging?' prompt (tick 'Always allow'), then retry" ;;
    offline) die "device $serial is offline: reconnect the USB cable or run 'adb reconnect', then retry" ;;
    "no permissions"*) die "adb has no permission to open device $serial ('$state'): set up udev rules (https://developer.android.com/studio/run/device), replug it and run 'adb kill-server'" ;;
    "") die "device '$serial' not found; check the serial with 'adb devices'" ;;
    *) die "device $serial is '$state', not ready; wait until 'adb devices' shows it as 'device'" ;;
  esac
done

adb_s() { local seconds=$1; shift; limited "$seconds" adb -s "$serial" "$@"; }
prop() {  # first non-empty of the given properties
  local name value
  for name in "$@"; do
    value=$(printf '%s\n' "$props" | sed -n "s/^\[$name\]: \[\(.*\)\]\$/\1/p" | head -n 1)
    [ -n "$value" ] && { printf '%s' "$value"; return; }
  done
  return 0  # none set: an empty answer, not a failure (set -e)
}

# --- the runs, device by device ----------------------------------------------------------------
for serial in "${serials[@]}"; do
  props=$(adb_s "$ADB_TIMEOUT" shell getprop | tr -d '\r') || die "'adb -s $serial shell getprop' failed; check that the device is still connected"
  # the device line names only what getprop said
  name="$(prop ro.product.manufacturer) $(prop ro.product.model)"
  name=${name# }; name=${name% }
  release=$(prop ro.build.version.release)
  sdk=$(prop ro.build.version.sdk)
  soc=$(prop ro.soc.model ro.board.platform ro.hardware)
  abi=$(prop ro.product.cpu.abi)
  if [ -n "$release" ]; then android="Android $release${sdk:+ (SDK $sdk)}"; else android=${sdk:+SDK $sdk}; fi
  description=${name:-unknown model}
  for part in "$android" "${soc:+SoC $soc}" "${abi:+ABI $abi}"; do
    [ -z "$part" ] || description="$description, $part"
  done
  echo "device: $serial $description"

  abilist=$(prop ro.product.cpu.abilist ro.product.cpu.abi)
  if [ -n "$abilist" ]; then
    runs_here=0
    for binary_abi in $binary_abis; do
      case ",$abilist," in *",$binary_abi,"*) runs_here=1 ;; esac
    done
    built_for=${binary_abis%% *}
    [ "$runs_here" = 1 ] || die "$binary is built for ${built_for:-ELF machine $machine} but $serial runs ${abilist//,/, }; use the android_aarch64 (arm64-v8a) build of benchmark_model"
  fi

  adb_s "$PUSH_TIMEOUT" push "$binary" "$REMOTE_BINARY" >/dev/null || die "pushing $binary to $serial failed; check the USB connection and free space"
  adb_s "$ADB_TIMEOUT" shell chmod +x "$REMOTE_BINARY" || die "'chmod +x $REMOTE_BINARY' failed on $serial"

  for model in "${models[@]}"; do
    name=$(basename "$model" | sed 's/[^A-Za-z0-9._-]/_/g')  # the device shell splits on spaces
    adb_s "$PUSH_TIMEOUT" push "$model" "$REMOTE_DIR/$name" >/dev/null || die "pushing $model to $serial failed; check the USB connection and free space"
    for count in ${threads//,/ }; do
      echo "=== $serial $model: $delegate, $count thread(s), $runs runs ==="
      status=0
      output=$(adb_s "$RUN_TIMEOUT" shell "$REMOTE_BINARY" "--graph=$REMOTE_DIR/$name" "--num_threads=$count" \
        "--num_runs=$runs" "--warmup_runs=$warmup_runs" "${delegate_flags[@]}" --report_peak_memory_footprint=true 2>&1) \
        || status=$?
      output=${output//$'\r'/}
      printf '%s\n' "$output"
      [ "$status" -ne 124 ] || die "benchmark_model did not finish within ${RUN_TIMEOUT} s on $serial; keep the phone unlocked and retry"
      if ! grep -qE 'Inference timings in us|Average inference timings in us' <<<"$output"; then
        reason=$(grep -m 1 -E 'not executable|Exec format error|Permission denied' <<<"$output" || true)
        [ -z "$reason" ] || die "benchmark_model does not run on $serial ($reason); use the android_aarch64 build for a 64-bit phone"
        reason=$(grep -m 1 -E '^(ERROR: |Failed|Error|nnapi error)' <<<"$output" || true)
        reason=${reason#ERROR: }
        if [ -n "$reason" ] && grep -qiE 'Failed to apply .* delegate|Created TensorFlow Lite delegate for (GPU|NNAPI)|(GPU|NNAPI) delegate created|nnapi error' <<<"$output"; then
          die "the $delegate delegate failed on $serial for $model: $reason; try another --delegate (cpu or xnnpack always work)"
        fi
        [ -z "$reason" ] || die "benchmark_model rejected $model on $serial: $reason"
        die "benchmark_model printed no timings for $model on $serial (exit status $status); see its output above"
      fi
    done
  done
done
