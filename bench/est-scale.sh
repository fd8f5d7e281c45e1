#!/usr/bin/env bash
# make bench-est: EST enrollments per second on an empty CA and on one with N certificates on
# record, with curl + openssl as the devices (PAR at a time, a full TLS handshake each; keys
# and requests made beforehand, so key generation is not what is measured). The online CA
# should cost the same at 100,000 devices as at ten: the ratio is the figure.
# Usage: bench/est-scale.sh BIN_DIR   (BIN_DIR holds pki and ca; env: N=100000 E=200 PAR=4)
set -euo pipefail
bin=${1:?usage: est-scale.sh BIN_DIR (holding pki and ca)}
N=${N:-100000}
E=${E:-200}
PAR=${PAR:-4}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
now() { date +%s.%N; }

mkdir -p "$work/req"
for i in $(seq 1 "$E"); do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
    -subj "/CN=dev-$i" -outform DER 2>/dev/null | openssl base64 >"$work/req/dev-$i.b64"
done

# Enrolls E devices against a CA with `size` certificates on record; prints the rate.
rate_at() {
  local size=$1 dir=$work/ca-$1
  local pki=("$bin/pki" --dir "$dir")
  "${pki[@]}" init >/dev/null
  [ "$size" -eq 0 ] || "${pki[@]}" issue client --count "$size" --prefix fleet- >/dev/null
  mkdir -p "$work/tok-$size"
  for i in $(seq 1 "$E"); do
    "${pki[@]}" token create --name "dev-$i" --ttl 1h 2>/dev/null >"$work/tok-$size/dev-$i"
  done
  "$bin/ca" --pki-dir "$dir" --bind 127.0.0.1:0 >"$work/ca-$size.log" 2>&1 &
  local pid=$! port=
  for _ in $(seq 300); do
    port=$(sed -n 's|^listening on https://127.0.0.1:\([0-9]*\).*|\1|p' "$work/ca-$size.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "ca did not start:"; cat "$work/ca-$size.log"; exit 1; }
  export dir work size port
  local a b
  a=$(now)
  seq 1 "$E" | xargs -P "$PAR" -I{} sh -c 'curl -sS --max-time 30 --cacert "$dir/ca/ca.crt" \
    -u "dev-{}:$(cat "$work/tok-$size/dev-{}")" -H "Content-Type: application/pkcs10" \
    --data-binary @"$work/req/dev-{}.b64" -o /dev/null -w "%{http_code}\n" \
    "https://127.0.0.1:$port/.well-known/est/simpleenroll"' >"$work/codes-$size"
  b=$(now)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local ok
  ok=$(grep -c '^200$' "$work/codes-$size" || true)
  [ "$ok" -eq "$E" ] || { echo "only $ok of $E enrollments answered 200"; sort "$work/codes-$size" | uniq -c; exit 1; }
  echo "$E / ($b - $a)" | bc -l | xargs printf '%.1f'
}

echo "== EST simpleenroll, $E devices, $PAR at a time (load: $(cut -d' ' -f1-3 /proc/loadavg))"
empty=$(rate_at 0)
echo "empty CA:              $empty enrollments/s"
full=$(rate_at "$N")
echo "$N on record:    $full enrollments/s"
echo "ratio: $(echo "$full / $empty" | bc -l | xargs printf '%.2f')"
