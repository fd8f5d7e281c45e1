#!/usr/bin/env bash
# make bench-hsm: the CA key inside a SoftHSM token against a key file.
# 1. signatures per second, per algorithm, through the SigningKey trait (TokenKey vs KeyFile:
#    the ignored test bench_signatures_per_second of crates/pki/tests/hsm.rs);
# 2. certificates per second of `pki issue client --count N` (a fresh P-256 key, the CA's
#    signature, the files and the record per certificate) on a CA of each kind;
# 3. EST enrollments per second through the `ca` service on each CA (E devices, PAR at a time,
#    curl + openssl, requests made beforehand), when BIN_DIR holds `ca`.
# Usage: bench/hsm.sh BIN_DIR HSM_TEST_BINARY   (env: N=2000 SIGNATURES=2000 E=200 PAR=4)
set -euo pipefail
bin=${1:?usage: hsm.sh BIN_DIR HSM_TEST_BINARY}
hsm_test=${2:?usage: hsm.sh BIN_DIR HSM_TEST_BINARY}
N=${N:-2000}
SIGNATURES=${SIGNATURES:-2000}
E=${E:-200}
PAR=${PAR:-4}
MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
command -v softhsm2-util >/dev/null && [ -f "$MODULE" ] || { echo "bench-hsm needs softhsm2 (apt-get install softhsm2 opensc)"; exit 2; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
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

[ -x "$bin/ca" ] || { echo; echo "(no $bin/ca: EST enrollments not measured)"; exit 0; }
echo
echo "== EST simpleenroll through ca, $E devices, $PAR at a time (load: $(cut -d' ' -f1-3 /proc/loadavg))"
mkdir -p "$work/req"
for i in $(seq 1 "$E"); do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
    -subj "/CN=est-$i" -outform DER 2>/dev/null | openssl base64 >"$work/req/est-$i.b64"
done
echo "| CA key | enrollments | seconds | enrollments/s |"
echo "|---|---:|---:|---:|"
for kind in file token; do
  dir=$work/$kind
  mkdir -p "$work/tok-$kind"
  for i in $(seq 1 "$E"); do
    "$bin/pki" --dir "$dir" token create --name "est-$i" --ttl 1h 2>/dev/null >"$work/tok-$kind/est-$i"
  done
  "$bin/ca" --pki-dir "$dir" --bind 127.0.0.1:0 >"$work/ca-$kind.log" 2>&1 &
  pid=$! port=
  for _ in $(seq 300); do
    port=$(sed -n 's|^listening on https://127.0.0.1:\([0-9]*\).*|\1|p' "$work/ca-$kind.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "ca did not start:"; cat "$work/ca-$kind.log"; exit 1; }
  export dir work kind port
  a=$(now)
  seq 1 "$E" | xargs -P "$PAR" -I{} sh -c 'curl -sS --max-time 30 --cacert "$dir/ca/ca.crt" \
    -u "est-{}:$(cat "$work/tok-$kind/est-{}")" -H "Content-Type: application/pkcs10" \
    --data-binary @"$work/req/est-{}.b64" -o /dev/null -w "%{http_code}\n" \
    "https://127.0.0.1:$port/.well-known/est/simpleenroll"' >"$work/codes-$kind"
  b=$(now)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  ok=$(grep -c '^200$' "$work/codes-$kind" || true)
  [ "$ok" -eq "$E" ] || { echo "only $ok of $E enrollments answered 200"; sort "$work/codes-$kind" | uniq -c; exit 1; }
  secs=$(echo "$b - $a" | bc)
  printf '| %s | %d | %.2f | %.1f |\n' "$kind" "$E" "$secs" "$(echo "$E / $secs" | bc -l)"
done
