#!/usr/bin/env bash
# The cross-check of `make bench` with load generators from outside the project: wrk (HTTP/1.1
# keep-alive GET /login and POST /login1) and h2load (HTTP/2 GET /login), one-way TLS, 64
# connections, our server and nginx taking turns on the same PKI, each started afresh per run.
#
#   bench/crosscheck.sh [REPS] [SECS]      (defaults: 3 runs of 5 s per server and load)
#
# Builds what it runs (release); needs nginx (bench/install-nginx.sh) and Debian's wrk and
# nghttp2-client (h2load). Loopback only; every run is bounded in time.
set -euo pipefail
reps=${1:-3} secs=${2:-5}
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release}
[ -n "${BIN:-}" ] || cargo build --quiet --release -p pki -p server -p bench
out=$(mktemp -d)
trap 'kill -TERM ${pid:-} 2>/dev/null || true; rm -rf "$out"' EXIT
for tool in wrk h2load nginx; do
  command -v $tool >/dev/null || { echo "crosscheck: $tool is missing (apt-get install wrk nghttp2-client; bench/install-nginx.sh)"; exit 1; }
done
PKI_P12_PASSWORD=bench "$bin/pki" --dir "$out/pki" init >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=https://127.0.0.1:$port
cat >"$out/login1.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "username=name&password=pwd1"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
EOF

start() { # ours | nginx
  if [ "$1" = ours ]; then
    RUST_LOG=warn "$bin/server" --pki-dir "$out/pki" --bind "127.0.0.1:$port" --client-auth none \
      --workers 2 --watch-secs 0 >"$out/ours.log" 2>&1 &
  else
    mkdir -p "$out/nginx"
    "$bin/bench" nginx-conf --pki "$out/pki" --port "$port" --dir "$out/nginx" >"$out/nginx/nginx.conf"
    nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" -e "$out/nginx/nginx.log" >"$out/nginx.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.1; done
  echo "crosscheck: $1 did not listen"; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; }

rate() { # load -> requests/s
  case $1 in
    wrk-get) wrk -t1 -c64 -d"${secs}s" "$url/login" | awk '/Requests\/sec/ {print $2}' ;;
    wrk-login1) wrk -t1 -c64 -d"${secs}s" -s "$out/login1.lua" "$url/login1" | awk '/Requests\/sec/ {print $2}' ;;
    h2load-get) h2load -D "$secs" -c 64 -t 1 -m 1 "$url/login" | awk '/^finished in/ {print $4}' ;;
  esac
}

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

printf '| load (one-way, 64 connections, %s s) | ours req/s | nginx req/s | ours/nginx |\n|---|---|---|---:|\n' "$secs"
for load in wrk-get wrk-login1 h2load-get; do
  declare -A got=([ours]="" [nginx]="")
  for rep in $(seq "$reps"); do
    order="ours nginx"; [ $((rep % 2)) -eq 0 ] && order="nginx ours"
    for server in $order; do
      start "$server"
      got[$server]+="$(rate "$load") "
      stop
    done
  done
  o=$(tr ' ' '\n' <<<"${got[ours]}" | grep . | median)
  n=$(tr ' ' '\n' <<<"${got[nginx]}" | grep . | median)
  printf '| %s | %s | %s | %.2f× |\n' "$load" "${got[ours]% }" "${got[nginx]% }" "$(awk -v o="$o" -v n="$n" 'BEGIN {print o / n}')"
done
