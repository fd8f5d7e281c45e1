#!/usr/bin/env bash
# Profile one server under one load, as bench/README.md's breakdown was made.
#
#   bench/profile.sh SERVER MODE LOAD TOOL [N]
#     SERVER  ours | nginx
#     MODE    oneway | mutual
#     LOAD    hs (full handshakes, 8 connections) | ka (HTTP/1.1 keep-alive, 4) | h2 (HTTP/2, 4)
#     TOOL    callgrind: user-space instructions per operation, deterministic, unaffected by
#                        other load: the A/B measure of a lever. N operations (default 400 for
#                        hs, 4000 otherwise); the cost of a run of N/4 is subtracted, so
#                        start-up and the keep-alive connections' handshakes drop out.
#             perf:      perf record (cpu-clock, kernel included) for 6 s under 16 handshake
#                        or 64 keep-alive connections; prints CPU µs per operation by library.
#
# Needs a release build (`cargo build --release -p server -p bench -p pki`), valgrind or perf,
# and nginx (bench/install-nginx.sh). Servers listen on 127.0.0.1 only; every load is bounded.
# BIN=target/release by default; output in ${OUT:-/tmp/bench-profile}; PKI=DIR reuses a PKI.
set -euo pipefail
server=$1 mode=$2 load=$3 tool=$4
n=${5:-$([ "$load" = hs ] && echo 400 || echo 4000)}
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release}
out=${OUT:-/tmp/bench-profile}
mkdir -p "$out"
tag=$server-$mode-$load-$tool
pki=${PKI:-$out/pki}
[ -f "$pki/ca/ca.crt" ] || PKI_P12_PASSWORD=bench "$bin/pki" --dir "$pki" init >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
wrap=()
if [ "$tool" = callgrind ]; then
  wrap=(valgrind --tool=callgrind --callgrind-out-file="$out/$tag.cg.%p" --collect-atstart=yes)
fi
auth=none mutual=()
if [ "$mode" = mutual ]; then
  auth=required mutual=(--mutual)
fi
if [ "$server" = ours ]; then
  RUST_LOG=warn ${wrap[@]+"${wrap[@]}"} "$bin/server" --pki-dir "$pki" --bind "127.0.0.1:$port" \
    --client-auth "$auth" --workers 2 --watch-secs 0 >"$out/$tag.log" 2>&1 &
else
  mkdir -p "$out/nginx"
  # Under callgrind one process (no master) does the work: counts per operation are the same.
  master=(); [ "$tool" = callgrind ] && master=(--no-master)
  "$bin/bench" nginx-conf --pki "$pki" --port "$port" --dir "$out/nginx" ${mutual[@]+"${mutual[@]}"} \
    ${master[@]+"${master[@]}"} >"$out/nginx/nginx.conf"
  ${wrap[@]+"${wrap[@]}"} nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" -e "$out/nginx/nginx.log" \
    >"$out/$tag.log" 2>&1 &
fi
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
id=()
[ "$mode" = mutual ] && id=(--cert "$pki/client/client.crt" --key "$pki/client/client.key")
load() {
  "$bin/bench" load --url "https://127.0.0.1:$port" --ca "$pki/ca/ca.crt" ${id[@]+"${id[@]}"} \
    --timeout 60 -q --json "$@"
}
shape() { # connections
  case $load in
    hs) echo --mode new-conn -c "$1" ;;
    ka) echo --mode keepalive -c "$1" ;;
    h2) echo --mode keepalive --http h2 -c "$1" ;;
  esac
}
ops() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); \
print(r['handshakes_measured'] if r['mode'] != 'keepalive' else r['requests'])" "$1"; }

if [ "$tool" = callgrind ]; then
  # shellcheck disable=SC2046
  load $(shape 4) -n 100 >/dev/null # warm-up
  total() {
    local t=0 f
    for f in "$out/$tag".cg.*.[0-9]; do
      [ -f "$f" ] || continue
      t=$((t + $(awk '/^summary:/ {print $2; exit}' "$f")))
      mv "$f" "$f.counted" # for callgrind_annotate
    done
    echo $t
  }
  run() { # requests, json
    callgrind_control -z >/dev/null
    # shellcheck disable=SC2046
    load $(shape "$([ "$load" = hs ] && echo 8 || echo 4)") -n "$1" >"$2"
    callgrind_control -d >/dev/null
    sleep 0.5
    total
  }
  a=$(run $((n / 4)) "$out/$tag.a.json")
  b=$(run "$n" "$out/$tag.json")
  oa=$(ops "$out/$tag.a.json") ob=$(ops "$out/$tag.json")
  echo "$tag: $(( (b - a) / (ob - oa) )) instructions per operation (user space, $ob operations)"
else
  # shellcheck disable=SC2046
  load $(shape "$([ "$load" = hs ] && echo 16 || echo 64)") -d 8 >"$out/$tag.json" &
  lp=$!
  sleep 1
  pids=$( (pgrep -P $pid || true; echo $pid) | paste -sd,)
  perf record -F 1999 -g -p "$pids" -o "$out/$tag.perf" -- sleep 6 >/dev/null 2>&1
  wait $lp
  perf report -i "$out/$tag.perf" --no-children --sort dso --stdio -g none 2>/dev/null \
    >"$out/$tag.dso.txt"
  python3 - "$out/$tag.json" "$out/$tag.dso.txt" "$tag" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
rate = r['handshakes_per_s'] if r['mode'] != 'keepalive' else r['requests_per_s']
txt = open(sys.argv[2]).read()
cpu_s = int(re.search(r"Event count \(approx.\): (\d+)", txt).group(1)) / 1e9
per_op = cpu_s / (rate * 6) * 1e6
parts = re.findall(r"^\s+([\d.]+)%\s+(\S+)", txt, re.M)
print(f"{sys.argv[3]}: {rate:.0f}/s, {per_op:.1f} µs CPU per operation: " +
      ", ".join(f"{d} {float(p) * per_op / 100:.1f}" for p, d in parts if float(p) > 0.5))
PY
  echo "perf report -i $out/$tag.perf for the symbols"
fi
