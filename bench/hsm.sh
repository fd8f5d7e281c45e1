#!/usr/bin/env bash
# make bench-hsm: the CA key inside a SoftHSM token against a key file.
# 1. signatures per second, per algorithm, through the SigningKey trait (TokenKey vs KeyFile:
#    the ignored test bench_signatures_per_second of crates/pki/tests/hsm.rs);
# 2. certificates per second of `pki issue client --count N` (a fresh P-256 key, the CA's
#    signature, the files and the record per certificate) on a CA of each kind.
# Usage: bench/hsm.sh BIN_DIR HSM_TEST_BINARY   (env: N=2000 SIGNATURES=2000)
set -euo pipefail
bin=${1:?usage: hsm.sh BIN_DIR HSM_TEST_BINARY}
hsm_test=${2:?usage: hsm.sh BIN_DIR HSM_TEST_BINARY}
N=${N:-2000}
SIGNATURES=${SIGNATURES:-2000}
MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
command -v softhsm2-util >/dev/null && [ -f "$MODULE" ] || { echo "bench-hsm needs softhsm2 (apt-get install softhsm2 opensc)"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }

echo "== signatures per second ($SIGNATURES per row; load: $(cut -d' ' -f1-3 /proc/loadavg))"
HSM_BENCH_SIGNATURES=$SIGNATURES "$hsm_test" --ignored --exact bench_signatures_per_second --nocapture 2>&1 |
  grep '^|'

echo
echo "== pki issue client --count $N, P-256 CA"
mkdir -p "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm2.conf
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 12345678 >/dev/null
(umask 077; echo 1234 >"$work/pin")
echo "| CA key | certificates | seconds | certificates/s |"
echo "|---|---:|---:|---:|"
for kind in file token; do
  dir=$work/$kind
  if [ "$kind" = token ]; then
    "$bin/pki" --dir "$dir" init --key-store "pkcs11:token=bench;object=ca?module-path=$MODULE&pin-source=file:$work/pin" >/dev/null
  else
    "$bin/pki" --dir "$dir" init >/dev/null
  fi
  a=$(now)
  "$bin/pki" --dir "$dir" issue client --count "$N" --prefix d >/dev/null
  b=$(now)
  secs=$(echo "$b - $a" | bc)
  printf '| %s | %d | %.2f | %.0f |\n' "$kind" "$N" "$secs" "$(echo "$N / $secs" | bc -l)"
done
