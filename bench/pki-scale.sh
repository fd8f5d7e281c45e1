#!/usr/bin/env bash
# make bench-pki: the CA's records at fleet scale. Issues N client certificates in one batch,
# revokes R of them, then times the everyday commands on that CA, and the server's start-up,
# reload and full-handshake rate with the R-entry CRL against an empty one.
# Usage: bench/pki-scale.sh BIN_DIR   (env: N=100000 R=10000 SECS=8 OUT=bench/results)
set -euo pipefail
bin=${1:?usage: pki-scale.sh BIN_DIR (holding pki, server, bench)}
N=${N:-100000}
R=${R:-10000}
SECS=${SECS:-8}
OUT=${OUT:-bench/results}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
dir=$work/certs
pki() { "$bin/pki" --dir "$dir" "$@"; }
now() { date +%s.%N; }
# Median wall time in ms of 5 runs of a command.
ms() {
  local t=()
  for _ in 1 2 3 4 5; do
    local a b
    a=$(now); "$@" >/dev/null; b=$(now)
    t+=("$(echo "($b - $a) * 1000" | bc)")
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 3p | xargs printf '%.0f'
}

echo "== $N certificates, $R revoked (load: $(cut -d' ' -f1-3 /proc/loadavg))"
pki init >/dev/null
a=$(now)
pki issue client --count "$N" --prefix dev- >/dev/null
b=$(now)
issue_secs=$(echo "$b - $a" | bc)
rate=$(echo "$N / $issue_secs" | bc)
seq 1 "$R" | sed 's/^/dev-/' >"$work/revoke.txt"
a=$(now)
pki revoke --from "$work/revoke.txt" --reason cessationOfOperation >/dev/null
b=$(now)
revoke_many=$(echo "($b - $a) * 1000" | bc | xargs printf '%.0f')

list_ms=$(ms pki list --expiring-within 30d)
# Revoke a different certificate each run: a repeat would be refused as already revoked.
i=$((R + 1))
t=()
for _ in 1 2 3 4 5; do
  a=$(now); pki revoke "dev-$i" >/dev/null; b=$(now); i=$((i + 1))
  t+=("$(echo "($b - $a) * 1000" | bc)")
done
revoke_ms=$(printf '%s\n' "${t[@]}" | sort -n | sed -n 3p | xargs printf '%.0f')
crl_ms=$(ms pki crl)
revoked_now=$(pki list --status revoked --json | grep -c '"serial"')
db_mb=$(du -m "$dir/ca/ca.db" | cut -f1)
crl_kb=$(du -k "$dir/ca/ca.crl" | cut -f1)

# The server: start-up and reload with the big CRL, then full mutual handshakes with it and
# with an empty CRL (the same CA and certificates), alternating.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
serve() { # crl-file log → pid; waits for the start-up line
  local p=$1 crl=$2 log=$3
  RUST_LOG=warn "$bin/server" --pki-dir "$dir" --crl "$crl" --bind "127.0.0.1:$p" --workers 2 \
    --watch-secs 0 >"$log" 2>&1 &
  echo $!
}
wait_line() { for _ in $(seq 600); do grep -q "$2" "$1" && return 0; sleep 0.01; done; return 1; }

cp "$dir/ca/ca.crl" "$work/big.crl"
# An empty CRL of the same CA: a scratch copy of the CA signs one.
mkdir -p "$work/empty/ca"
cp "$dir/ca/ca.crt" "$dir/ca/ca.key" "$work/empty/ca/"
"$bin/pki" --dir "$work/empty" crl >/dev/null
cp "$work/empty/ca/ca.crl" "$work/empty.crl"

p=$(port)
a=$(now)
pid=$(serve "$p" "$work/big.crl" "$work/server.log")
wait_line "$work/server.log" "listening on"
b=$(now)
startup_ms=$(echo "($b - $a) * 1000" | bc | xargs printf '%.0f')
a=$(now)
kill -HUP "$pid"
# The reload logs at info; time the next handshake that succeeds after the signal instead.
"$bin/bench" load --url "https://127.0.0.1:$p" --ca "$dir/ca/ca.crt" \
  --cert "$dir/client/client.crt" --key "$dir/client/client.key" --mode new-conn -c 1 -n 1 -q >/dev/null
b=$(now)
reload_ms=$(echo "($b - $a) * 1000" | bc | xargs printf '%.0f')
kill "$pid"; wait "$pid" 2>/dev/null || true

rate_of() { # crl → handshakes/s
  local p pid
  p=$(port)
  pid=$(serve "$p" "$1" "$work/s.log")
  wait_line "$work/s.log" "listening on"
  "$bin/bench" load --url "https://127.0.0.1:$p" --ca "$dir/ca/ca.crt" \
    --cert "$dir/client/client.crt" --key "$dir/client/client.key" --mode new-conn \
    -c 16 -d "$SECS" --json -q | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["handshakes_per_s"]))'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
big=(); empty=()
for _ in 1 2 3; do
  empty+=("$(rate_of "$work/empty.crl")")
  big+=("$(rate_of "$work/big.crl")")
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
hs_empty=$(med "${empty[@]}"); hs_big=$(med "${big[@]}")
ratio=$(echo "scale=3; $hs_big / $hs_empty" | bc)

mkdir -p "$OUT"
report="$OUT/pki-$(date -u +%Y-%m-%dT%H-%M-%SZ).md"
cat >"$report" <<EOF
# pki at fleet scale ($(date -u +%F), $(nproc) cores, load before the run $(cut -d' ' -f1-3 /proc/loadavg))

$N client certificates issued in one batch, $R of them revoked; SQLite in ca/ca.db (${db_mb} MB),
CRL ${crl_kb} KiB. Times are wall clock, median of 5 unless said.

| figure | value |
|---|---:|
| issue, one batch (\`pki issue client --count $N\`) | ${issue_secs%.*} s, **$rate certificates/s** |
| revoke $R at once (\`pki revoke --from FILE\`, one transaction, one CRL) | ${revoke_many} ms |
| \`pki list --expiring-within 30d\` | **${list_ms} ms** |
| \`pki revoke NAME\` (one more, CRL re-signed) | **${revoke_ms} ms** |
| \`pki crl\` ($revoked_now entries) | **${crl_ms} ms** |
| server start-up with that CRL (until its start-up line) | ${startup_ms} ms |
| server reload (SIGHUP until a handshake succeeds) | ${reload_ms} ms |
| full mutual handshakes/s, empty CRL (median of 3 × ${SECS} s) | $hs_empty (${empty[*]}) |
| full mutual handshakes/s, $revoked_now-entry CRL | $hs_big (${big[*]}) |
| ratio | **${ratio}×** |
EOF
cat "$report"
echo "wrote $report"
