#!/usr/bin/env bash
# make bench-fleet: the ca's admin fleet page at fleet scale. Issues N client certificates in
# one batch and SOON more that end within 30 days (the page's list: SOON/50 pages of it),
# revokes REVOKED of the N, starts `ca --admin-allow-cn ops`, then times R separate curls (no
# keep-alive: each one a full mutual TLS handshake with the admin's certificate) of each page.
# Goal (the fleet page's issue): every page at most 200 ms at 100,000 certificates.
# Usage: bench/fleet-scale.sh BIN_DIR   (BIN_DIR holds pki and ca;
#        env: N=100000 SOON=5000 REVOKED=3000 R=20 Q=dev-4242 (the search, a device's name);
#        KEEP=1 keeps the PKI for a look with sqlite3; REUSE=DIR times a PKI kept so, without
#        issuing again; WRAP="env LD_PRELOAD=..." runs ca under a wrapper)
set -euo pipefail
bin=${1:?usage: fleet-scale.sh BIN_DIR (holding pki and ca)}
N=${N:-100000}
SOON=${SOON:-5000}
REVOKED=${REVOKED:-3000}
R=${R:-20}
Q=${Q:-dev-4242}
work=$(mktemp -d)
if [ -n "${KEEP:-}" ]; then
  trap 'kill $(jobs -p) 2>/dev/null || true; echo "kept: $work (PKI: $work/pki)"' EXIT
else
  trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
fi
dir=${REUSE:-$work/pki}
pki() { "$bin/pki" --dir "$dir" "$@"; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc | xargs printf '%.0f'; }

echo "== fleet page at $N + $SOON certificates, $REVOKED revoked, $R requests each (load: $(cut -d' ' -f1-3 /proc/loadavg))"
if [ -n "${REUSE:-}" ]; then
  echo "reusing $dir: $(sqlite3 "$dir/ca/ca.db" 'SELECT count(*) FROM certificates' 2>/dev/null || echo '?') certificates on record"
else
  pki init >/dev/null
  pki issue client --name ops >/dev/null
  a=$(now)
  pki issue client --count "$N" --prefix dev- >/dev/null
  b=$(now)
  pki issue client --count "$SOON" --prefix soon- --days 20 >/dev/null
  c=$(now)
  # Every (N/REVOKED)th device, spread over the batch.
  step=$((N / REVOKED))
  seq "$step" "$step" $((step * REVOKED)) | sed 's/^/dev-/' >"$work/revoke.txt"
  pki revoke --from "$work/revoke.txt" --reason cessationOfOperation >/dev/null
  d=$(now)
  echo "issued $N in $(secs "$a" "$b") s, $SOON in $(secs "$b" "$c") s; revoked $REVOKED in $(secs "$c" "$d") s; ca.db $(du -m "$dir/ca/ca.db" | cut -f1) MB"
fi

${WRAP:-} "$bin/ca" --pki-dir "$dir" --bind 127.0.0.1:0 --admin-allow-cn ops >"$work/ca.log" 2>&1 &
pid=$!
port=
for _ in $(seq 300); do
  port=$(sed -n 's|^listening on https://127.0.0.1:\([0-9]*\).*|\1|p' "$work/ca.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "ca did not start:"; cat "$work/ca.log"; exit 1; }

get() { # path [curl -w format] → body (or the -w output)
  curl -sS --max-time 30 --cacert "$dir/ca/ca.crt" --cert "$dir/client/ops.crt" \
    --key "$dir/client/ops.key" "https://127.0.0.1:$port$1" ${2:+-o /dev/null -w "$2"}
}
# Each page once, checked; this also warms the caches, so the timed runs are alike.
has() { get "$1" >"$work/body"; grep -q "$2" "$work/body" || { echo "$1: no $2 in the answer"; exit 1; }; }
has /fleet 'id="next"'
has '/fleet?page=50' '<td>soon-'
has "/fleet?q=$Q" "<td>$Q</td>"
has /fleet.json '"ending_30d":'"$SOON"

# median and max of a column of seconds, in ms
stats() { sort -n | awk '{v[NR]=$1*1000} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.1f %.1f\n", m, v[NR]}'; }
echo
echo "| page | median total (ms) | max total (ms) | median handshake (ms) | median total − handshake (ms) | bytes | ≤ 200 ms |"
echo "|---|---:|---:|---:|---:|---:|---|"
worst=0
for path in /fleet '/fleet?page=50' "/fleet?q=$Q" /fleet.json; do
  : >"$work/times"
  for _ in $(seq "$R"); do
    get "$path" '%{http_code} %{time_appconnect} %{time_total} %{size_download}\n' >>"$work/times"
  done
  bad=$(awk '$1 != 200' "$work/times" | wc -l)
  [ "$bad" -eq 0 ] || { echo "$path: $bad answers were not 200"; sort "$work/times" | head; exit 1; }
  read -r med max < <(awk '{print $3}' "$work/times" | stats)
  read -r hs _ < <(awk '{print $2}' "$work/times" | stats)
  read -r own _ < <(awk '{print $3 - $2}' "$work/times" | stats)
  bytes=$(awk 'NR==1 {print $4}' "$work/times")
  ok=$(awk -v m="$max" 'BEGIN {print (m <= 200) ? "yes" : "**no**"}')
  [ "$ok" = yes ] || worst=1
  echo "| \`$path\` | $med | $max | $hs | $own | $bytes | $ok |"
done
kill "$pid"; wait "$pid" 2>/dev/null || true
[ "$worst" -eq 0 ] && echo && echo "every page within 200 ms" || { echo; echo "some page is over 200 ms"; }
