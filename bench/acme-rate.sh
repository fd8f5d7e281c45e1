#!/usr/bin/env bash
# make bench-acme: ACME (RFC 8555) certificates per second issued to certbot over http-01, by
# (a) one `ca` replica on SQLite, (b) one on PostgreSQL, (c) two replicas on one PostgreSQL
# (each with its own copy of ca/, as two hosts would have). N certificates are split over C
# certbot workers, each issuing its share one certonly after the other, all at once; the
# accounts are registered beforehand (one EAB binding each) and are not timed. certbot answers
# through --webroot: one static HTTP server serves the http-01 port for every worker, and
# pebble-challtestsrv is the DNS (every name is 127.0.0.1). Everything listens on 127.0.0.1.
# Every certificate is checked afterwards (file, openssl verify, its name) against the CA's
# records (pki list --json): the same serials, each once. Printed per case: certificates/s,
# and CPU per certificate of certbot, the ca and PostgreSQL with the share of the cores other
# work on the host took (a shared machine makes the rate noisy; CPU per certificate is not).
# Also `certbot --version`'s time (Python start-up) and the most C workers could do against an
# instant CA: certbot sleeps a fixed 1 s before polling the authorization and 1 s before
# polling the order, for every certificate.
# Usage: bench/acme-rate.sh BIN_DIR   (BIN_DIR holds pki and ca)
# env: N=40 C=4 CLIENT_TIMEOUT=120 (s, per certbot run) CA_WAIT=60 (s) KEEP_WORK=1 (keep the
#      temp dir: certbot's debug logs); PostgreSQL: PKI_TEST_POSTGRES=postgres://... (a role
#      that may create databases) or a throwaway cluster of the installed PostgreSQL;
#      REQUIRE_POSTGRES=1 fails instead of skipping (b) and (c) without one.
set -euo pipefail
bin=${1:?usage: acme-rate.sh BIN_DIR (holding pki and ca)}
bin=$(cd "$bin" && pwd)
N=${N:-40}
C=${C:-4}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-120}
CA_WAIT=${CA_WAIT:-60}
[ "$N" -ge 1 ] && [ "$C" -ge 1 ] || { echo "N and C must be at least 1"; exit 1; }
[ "$C" -le "$N" ] || C=$N
for b in pki ca; do [ -x "$bin/$b" ] || { echo "missing $bin/$b: cargo build --release -p pki -p ca"; exit 1; }; done
for t in certbot pebble-challtestsrv python3 openssl bc; do
  command -v "$t" >/dev/null || { echo "missing $t (certbot, pebble, python3, openssl, bc: apt-get install)"; exit 1; }
done
unset PKI_DB # (a) is SQLite whatever the caller's environment says
# The ca lets an account make 300 orders an hour (--acme-orders-per-hour); a worker's share
# above that would hear 429, so only then is the limit raised (an older ca ignores the variable).
share=$(((N + C - 1) / C))
[ "$share" -le 300 ] || export CA_ACME_ORDERS_PER_HOUR=$((share + 10))

work=$(mktemp -d -t acme-rate.XXXXXX)
pids=()         # servers: challtestsrv, the http-01 server, the ca replicas
workers=()      # certbot workers of the current run
pgdata=""       # a throwaway cluster, if this script started one
pg_admin=""     # the URL databases are created and dropped through
pg_dbs=()       # databases this script created
cleanup() {
  local p
  for p in "${workers[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${workers[@]}" "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$pg_admin" ] && [ -z "$pgdata" ]; then
    for p in "${pg_dbs[@]}"; do
      PGCONNECT_TIMEOUT=10 timeout 30 psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $p WITH (FORCE)" >/dev/null 2>&1 || true
    done
  fi
  if [ -n "$pgdata" ]; then
    pg_as "$pgbin/pg_ctl -D $pgdata -m immediate -t 30 stop" >/dev/null 2>&1 || true
    rm -rf "$pgdata"
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { date +%s.%N; }
# ticks PID...: CPU clock ticks of each (its threads and reaped children too), summed.
ticks() {
  local p t=0
  for p in "$@"; do
    t=$((t + $(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
# cpu CA_PID...: "busy total certbot ca postgres" in clock ticks: the machine's (all cores,
# /proc/stat), this script's reaped children (the certbot workers, once waited for), the
# replicas, and the throwaway PostgreSQL cluster (its postmaster and backends) if it is ours.
cpu() {
  local pg=0
  [ -z "$pgdata" ] || [ ! -s "$pgdata/postmaster.pid" ] || {
    local pm
    pm=$(head -1 "$pgdata/postmaster.pid")
    # shellcheck disable=SC2046 # one PID a word
    pg=$(ticks "$pm" $(pgrep -P "$pm"))
  }
  echo "$(awk '/^cpu /{t=0; for (i=2; i<=NF; i++) t+=$i; print t-$5-$6, t}' /proc/stat)" \
    "$(awk '{sub(/^.*\) /, ""); print $14 + $15}' /proc/$$/stat)" "$(ticks "$@")" "$pg"
}

# fail MESSAGE [LOG...]: the message and the tail of each log named, then exit 1.
fail() {
  local msg=$1 f; shift
  echo "FAIL: $msg" >&2
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "--- tail of $f" >&2
    tail -n 30 "$f" >&2
  done
  exit 1
}

# free_port VAR: sets VAR to a port the kernel just handed out on 127.0.0.1, and not to one
# this script took before. (Not in $(...): the list of those taken lives in this shell.)
taken=" "
free_port() {
  local p
  for _ in $(seq 20); do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    case $taken in *" $p "*) continue ;; esac
    taken+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  fail "no free port"
}

# wait_tcp PORT SECONDS PID: until something accepts on 127.0.0.1:PORT while PID lives.
wait_tcp() {
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || fail "the server for port $1 exited" "$work"/*.log
    [ $SECONDS -lt $deadline ] || fail "nothing listens on 127.0.0.1:$1 after $2 s"
    sleep 0.1
  done
}

# ------------------------------------------------------------------- DNS and the http-01 server
free_port DNS_PORT
free_port MGMT_PORT
free_port HTTP_PORT
free_port TLS_PORT # tls-alpn-01 is not used; nothing listens there
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$DNS_PORT" \
  -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$MGMT_PORT" >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
wait_tcp "$MGMT_PORT" 10 "${pids[-1]}"
webroot=$work/webroot
# Made here, so that no certbot makes it (and none removes it under another's feet).
mkdir -p "$webroot/.well-known/acme-challenge"
python3 -m http.server --bind 127.0.0.1 "$HTTP_PORT" --directory "$webroot" >"$work/http.log" 2>&1 &
pids+=($!)
wait_tcp "$HTTP_PORT" 10 "${pids[-1]}"

# ------------------------------------------------------------------- PostgreSQL
pg_as() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }
# Sets pg_admin (or returns 1 after saying why there is none).
pg_start() {
  if [ -n "${PKI_TEST_POSTGRES:-}" ]; then
    command -v psql >/dev/null || { echo "PKI_TEST_POSTGRES is set but psql is missing"; return 1; }
    pg_admin=$PKI_TEST_POSTGRES
    echo "PostgreSQL: PKI_TEST_POSTGRES ($(PGCONNECT_TIMEOUT=10 timeout 30 psql "$pg_admin" -Atc 'show server_version' 2>&1 | head -1))"
    return 0
  fi
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ] || ! command -v psql >/dev/null; then
    echo "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb or no psql) and PKI_TEST_POSTGRES is not set"
    return 1
  fi
  local port
  free_port port
  pgdata=$(mktemp -d -t acme-rate-pg.XXXXXX)
  [ "$(id -u)" != 0 ] || chown postgres "$pgdata"
  pg_as "$pgbin/initdb -D $pgdata -A trust -U postgres" >"$work/initdb.log" 2>&1 || fail "initdb" "$work/initdb.log"
  pg_as "$pgbin/pg_ctl -D $pgdata -l $pgdata/log -w -t 60 \
    -o '-k $pgdata -p $port -c listen_addresses=127.0.0.1' start" >/dev/null 2>&1 || fail "pg_ctl start" "$pgdata/log"
  pg_admin=postgres://postgres@127.0.0.1:$port/postgres
  echo "PostgreSQL: a throwaway cluster of $("$pgbin/postgres" --version | sed 's/.*) //') on 127.0.0.1:$port (default settings, fsync on)"
}
# pg_create NAME: a fresh database, its URL in DB_URL (not in $(...): pg_dbs lives here).
pg_create() {
  PGCONNECT_TIMEOUT=10 timeout 30 psql "$pg_admin" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $1" >/dev/null \
    || fail "CREATE DATABASE $1 through $pg_admin"
  pg_dbs+=("$1")
  case $pg_admin in
    postgres://* | postgresql://*)
      DB_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$pg_admin" "$1") ;;
    *) DB_URL="$pg_admin dbname=$1" ;;
  esac
}

# ------------------------------------------------------------------- one measurement
# run_case LABEL REPLICAS [DB_URL]: a fresh PKI (on DB_URL, else SQLite), REPLICAS ca processes,
# C registered certbot accounts, then the timed issuance; the wall time goes to $work/LABEL/wall.
run_case() {
  local label=$1 replicas=$2 db=${3:-} d=$work/$1 r w
  mkdir -p "$d"
  if [ -n "$db" ]; then export PKI_DB=$db; else unset PKI_DB; fi
  local pki=("$bin/pki" --dir "$d/host-a")
  "${pki[@]}" init >"$d/init.log" 2>&1 || fail "$label: pki init" "$d/init.log"
  # The second host: its own copy of ca/ (key, certificate), the same records.
  [ "$replicas" -eq 1 ] || { mkdir -p "$d/host-b"; cp -a "$d/host-a/ca" "$d/host-b/ca"; }
  local hosts=(host-a host-b) urls=() capids=()
  for r in $(seq 0 $((replicas - 1))); do
    local port log=$d/ca-${hosts[$r]}.log
    free_port port
    : >"$log" # there before the first grep, whenever the ca gets to run
    RUST_LOG=warn "$bin/ca" --pki-dir "$d/${hosts[$r]}" --bind "127.0.0.1:$port" \
      --public-url "https://127.0.0.1:$port" --acme-resolver "127.0.0.1:$DNS_PORT" \
      --acme-http-port "$HTTP_PORT" --acme-tls-port "$TLS_PORT" >"$log" 2>&1 &
    pids+=($!)
    capids+=($!)
    local deadline=$((SECONDS + CA_WAIT))
    until grep -q "listening on https://" "$log"; do
      kill -0 "${pids[-1]}" 2>/dev/null || fail "$label: ca on ${hosts[$r]} exited before listening" "$log"
      [ $SECONDS -lt $deadline ] || fail "$label: ca on ${hosts[$r]} did not say it listens within $CA_WAIT s (CA_WAIT=...)" "$log"
      sleep 0.1
    done
    urls+=("https://127.0.0.1:$port/acme/directory")
  done
  export REQUESTS_CA_BUNDLE=$d/host-a/ca/ca.crt # certbot trusts the CA's TLS through it

  # Worker w (1..C) talks to replica (w-1) % replicas, with an account of its own.
  local cb=()
  cbargs() { # WORKER: certbot's common arguments for that worker
    cb=(certbot --config-dir "$d/cb-$1/config" --work-dir "$d/cb-$1/work" --logs-dir "$d/cb-$1/logs"
      --non-interactive --agree-tos -m x@example.test --no-eff-email --server "${urls[$((($1 - 1) % replicas))]}")
  }
  for w in $(seq 1 "$C"); do
    local line kid hmac
    line=$("${pki[@]}" acme eab create --name "bench-$w" --allow-dns .test --allow-ip 127.0.0.0/8 2>"$d/eab.log" | tail -1) \
      || fail "$label: pki acme eab create" "$d/eab.log"
    read -r kid hmac <<<"$line"
    [ -n "$kid" ] && [ -n "$hmac" ] || fail "$label: no 'KID HMAC' from pki acme eab create (got '$line')"
    cbargs "$w"
    # KEY=VALUE: a base64url key may begin with "-", which argparse would take for an option.
    timeout "$CLIENT_TIMEOUT" "${cb[@]}" register --eab-kid="$kid" --eab-hmac-key="$hmac" >"$d/register-$w.log" 2>&1 \
      || fail "$label: certbot register (worker $w)" "$d/register-$w.log" "$d/cb-$w/logs/letsencrypt.log" "$d"/ca-*.log
  done

  # The timed part: C workers at once, each issuing certificates w, w+C, w+2C, ... in turn.
  local a b rc failed=0 c0 c1
  workers=()
  c0=$(cpu "${capids[@]}")
  a=$(now)
  for w in $(seq 1 "$C"); do
    cbargs "$w"
    (
      k=0
      for _ in $(seq "$w" "$C" "$N"); do
        k=$((k + 1))
        timeout "$CLIENT_TIMEOUT" "${cb[@]}" certonly --webroot -w "$webroot" --preferred-challenges http-01 \
          -d "b$w-$k.test" --cert-name "b$w-$k" || { echo "FAILED: certonly b$w-$k.test (exit $?)"; exit 1; }
      done
    ) >"$d/worker-$w.log" 2>&1 &
    workers+=($!)
  done
  for w in $(seq 1 "$C"); do
    rc=0
    wait "${workers[$((w - 1))]}" || rc=$?
    [ $rc -eq 0 ] || failed=$w
  done
  b=$(now)
  c1=$(cpu "${capids[@]}")
  workers=()
  [ "$failed" -eq 0 ] || fail "$label: certbot worker $failed failed" "$d/worker-$failed.log" "$d/cb-$failed/logs/letsencrypt.log" "$d"/ca-*.log

  # Stop the replicas (the records stay), then check every certificate against the records.
  for r in $(seq 1 "$replicas"); do
    kill "${pids[-1]}" 2>/dev/null || true
    wait "${pids[-1]}" 2>/dev/null || true
    unset 'pids[-1]'
  done
  verify "$label" "$d"
  echo "$b - $a" | bc -l >"$d/wall"
  # CPU per certificate in the window: certbot (the workers), the ca, PostgreSQL (ours), and
  # the share of the machine's cores that went to none of them (other work on the host).
  echo "$c0 $c1 $(getconf CLK_TCK) $N $db" | awk '{
    ms = 1000 / $11 / $12; others = ($6 - $1) - ($8 - $3) - ($9 - $4) - ($10 - $5)
    printf "CPU per certificate: certbot %.0f ms, ca %.0f ms, PostgreSQL %s; cores busy %.0f%%, %.0f%% with other work\n",
      ($8 - $3) * ms, ($9 - $4) * ms, ($13 == "" ? "-" : ($10 == $5 && $5 == 0 ? "n/a (not ours)" : sprintf("%.0f ms", ($10 - $5) * ms))),
      100 * ($6 - $1) / ($7 - $2), 100 * others / ($7 - $2) }' >"$d/cpu"
}

# verify LABEL DIR: each certbot certificate is there, chains to the CA, names what was ordered;
# the CA's records hold exactly those serials, each once (and no other b*-*.test).
verify() {
  local label=$1 d=$2 w k cert live san
  : >"$d/serials"
  for w in $(seq 1 "$C"); do
    k=0
    for _ in $(seq "$w" "$C" "$N"); do
      k=$((k + 1))
      live=$d/cb-$w/config/live/b$w-$k
      cert=$live/cert.pem
      [ -s "$cert" ] || fail "$label: no certificate for b$w-$k.test ($cert)" "$d/worker-$w.log"
      openssl verify -CAfile "$d/host-a/ca/ca.crt" -untrusted "$live/chain.pem" "$cert" >"$d/verify.log" 2>&1 \
        || fail "$label: openssl verify refuses b$w-$k.test" "$d/verify.log"
      san=$(openssl x509 -in "$cert" -noout -ext subjectAltName | tail -n +2 | sed 's/^ *//')
      [ "$san" = "DNS:b$w-$k.test" ] || fail "$label: b$w-$k.test's certificate names '$san'"
      openssl x509 -in "$cert" -noout -serial | cut -d= -f2 >>"$d/serials"
    done
  done
  [ "$(wc -l <"$d/serials")" -eq "$N" ] || fail "$label: $(wc -l <"$d/serials") certificates, not $N"
  "$bin/pki" --dir "$d/host-a" list --json >"$d/records.json" 2>"$d/list.log" || fail "$label: pki list --json" "$d/list.log"
  python3 - "$d/serials" "$d/records.json" "$N" <<'EOF' || fail "$label: the CA's records do not match certbot's certificates"
import json, re, sys
norm = lambda s: s.strip().upper().lstrip("0")
ours = [norm(s) for s in open(sys.argv[1]) if s.strip()]
records = json.load(open(sys.argv[2]))
n = int(sys.argv[3])
pattern = re.compile(r"\bb\d+-\d+\.test\b")
bench = [r for r in records if pattern.search(json.dumps(r.get("sans"))) or pattern.search(str(r.get("name")))]
on_record = [norm(str(r["serial"])) for r in bench]
problems = []
if len(set(ours)) != n: problems.append(f"certbot holds {len(set(ours))} distinct serials, not {n}")
if len(on_record) != n: problems.append(f"{len(on_record)} records name a b*-*.test, not {n}")
if len(set(on_record)) != len(on_record): problems.append("a serial is on record twice")
if set(on_record) != set(ours):
    problems.append(f"serials only at certbot: {sorted(set(ours) - set(on_record))[:5]}, "
                    f"only on record: {sorted(set(on_record) - set(ours))[:5]}")
if problems:
    print("\n".join(problems), file=sys.stderr); sys.exit(1)
print(f"  checked: {n} certificates verify against ca.crt, each names its b*-*.test, "
      f"{len(on_record)} records with the same serials ({len(records)} records in all)")
EOF
}

# ------------------------------------------------------------------- the runs
certbot --version >/dev/null 2>&1 # warm the page cache; the next one is timed
t0=$(now)
cbver=$(certbot --version 2>&1)
t1=$(now)
startup=$(echo "$t1 - $t0" | bc -l)
printf '== ACME http-01, %s: %s certificates, %s certbot workers at once, each issuing its share in turn\n' "$cbver" "$N" "$C"
printf '   (%s cores, load: %s)\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'certbot --version (Python start-up, once): %.2f s\n' "$startup"

report() { # LABEL TEXT
  local wall
  wall=$(cat "$work/$1/wall")
  printf '%-26s %s certificates in %6.2f s: %5.2f certificates/s (%.2f s per certificate per worker)\n' \
    "$2:" "$N" "$wall" "$(echo "$N / $wall" | bc -l)" "$(echo "$wall * $C / $N" | bc -l)"
  printf '%-26s %s\n' "" "$(cat "$work/$1/cpu")"
}

run_case sqlite 1
report sqlite "one replica, SQLite"
pg_ok=1
pg_start || pg_ok=0
if [ $pg_ok = 1 ]; then
  pg_create "acme_bench_$$_1"
  run_case pg1 1 "$DB_URL"
  report pg1 "one replica, PostgreSQL"
  pg_create "acme_bench_$$_2"
  run_case pg2 2 "$DB_URL"
  report pg2 "two replicas, PostgreSQL"
else
  echo "SKIPPED: one replica on PostgreSQL and two replicas on PostgreSQL (install postgresql, or set PKI_TEST_POSTGRES=postgres://...)"
  [ -z "${REQUIRE_POSTGRES:-}" ] || fail "REQUIRE_POSTGRES is set"
fi
# certbot sleeps 1 s before its first authorization poll and 1 s before its first order poll
# (Debian's 2.1: certbot/_internal/auth_handler.py, acme/client.py finalize_order): with an
# instant CA a worker still takes 2 s + its start-up per certificate.
printf 'certbot alone (its 2 s of fixed sleeps + start-up per certificate): at most %.2f certificates/s with %s workers\n' \
  "$(echo "$C / (2 + $startup)" | bc -l)" "$C"
