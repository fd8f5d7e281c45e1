#!/usr/bin/env bash
# Soak: our server under mixed load for SOAK_SECS (default 120), loopback only, bounded.
# Full handshakes, resumptions, keep-alive GETs and logins at once; then checks zero errors,
# RSS growth after warm-up <= 10%, and open descriptors back to their baseline.
# Usage: bench/soak.sh BIN_DIR   (BIN_DIR holds server, pki and bench binaries)
set -euo pipefail
bin=${1:?usage: soak.sh BIN_DIR}
secs=${SOAK_SECS:-120}
warm=${SOAK_WARMUP_SECS:-10}
port=${SOAK_PORT:-18600}
dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT

"$bin/pki" --dir "$dir/certs" init >/dev/null
RUST_LOG=warn "$bin/server" --pki-dir "$dir/certs" --bind "127.0.0.1:$port" --watch-secs 0 \
  --login-max-failures 0 >"$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/server.log" && break; sleep 0.1; done
fds() { ls "/proc/$server/fd" | wc -l; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
base_fds=$(fds)

c=$dir/certs
args=(--url "https://127.0.0.1:$port" --ca "$c/ca/ca.crt" --cert "$c/client/client.crt" --key "$c/client/client.key" --json --threads 1)
load() { "$bin/bench" load "${args[@]}" "$@" 2>/dev/null; }

# The four kinds of load at once, for $1 seconds, results in $dir/$2-*.json.
mixed() {
  local pids=()
  load --mode new-conn -c 8 -d "$1" >"$dir/$2-full.json" & pids+=($!)
  load --mode resume -c 8 -d "$1" >"$dir/$2-resume.json" & pids+=($!)
  load --mode keepalive -c 128 -d "$1" >"$dir/$2-keepalive.json" & pids+=($!)
  load --mode keepalive -c 16 -d "$1" --request post-login1 >"$dir/$2-login.json" & pids+=($!)
  peak=0
  for _ in $(seq "$1"); do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 1; done
  wait "${pids[@]}"
}

echo "soak: warm-up ${warm}s (the same mix: every buffer and pool reaches its working size)"
mixed "$warm" warm
rss_warm=$(rss)

echo "soak: ${secs}s of full handshakes, resumptions, keep-alive GETs and logins at once"
mixed "$secs" soak
rss_end=$(rss)
sleep 2
end_fds=$(fds)

python3 - "$dir" "$rss_warm" "$rss_end" "$peak" "$base_fds" "$end_fds" <<'PY'
import json, sys
d, warm, end, peak, base, after = sys.argv[1], *map(int, sys.argv[2:])
total_req = total_hs = total_err = 0
for name in ("full", "resume", "keepalive", "login"):
    r = json.load(open(f"{d}/soak-{name}.json"))
    errs = sum(r["errors"].values())
    total_req += r["requests"]; total_hs += r["handshakes"]; total_err += errs
    print(f"  {name:<9} {r['requests']:>9} requests {r['handshakes']:>7} handshakes "
          f"({r['resumed']} resumed)  p99 {r['latency']['p99_us']} µs  errors {errs}")
growth = (end - warm) / warm * 100
print(f"  total     {total_req} requests, {total_hs} connections, {total_err} errors")
print(f"  RSS       after warm-up {warm/1024:.1f} MiB, peak {peak/1024:.1f} MiB, end {end/1024:.1f} MiB ({growth:+.1f}%)")
print(f"  fds       baseline {base}, after {after}")
ok = total_err == 0 and growth <= 10 and after <= base + 2
print("soak: OK" if ok else "soak: FAILED")
sys.exit(0 if ok else 1)
PY
