#!/usr/bin/env bash
# ACME (RFC 8555) with clients we did not write: Debian's certbot, lego and Caddy (and,
# with ACME_ARI=1, certbot from PyPI) against an ACME server chosen by TARGET:
#   TARGET=pebble  Let's Encrypt's Pebble, the reference (the default for now)
#   TARGET=ours    our `ca` binary (start_ours below; needs cargo build -p pki -p ca)
# The client steps are the same for both; a target only has to export the variables that
# start_pebble and start_ours export (see "Targets"). pebble-challtestsrv is the DNS for
# both: every name is 127.0.0.1, and dns-01 TXT/CNAME records are set through its API.
# Everything listens on 127.0.0.1.
#
# Run with: TARGET=pebble bash tests/acme-interop.sh
# Knobs: HTTP01_PORT TLSALPN01_PORT DNS_PORT CHALL_MGMT_PORT ACME_PORT PEBBLE_MGMT_PORT
#        ACME_ARI=1 (certbot from PyPI: IP identifier, renewal info, profiles)
#        ACME_VENV (where that certbot goes) KEEP_WORK=1 (keep the temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD/tests/acme

TARGET=${TARGET:-pebble}
HTTP01_PORT=${HTTP01_PORT:-5002}
TLSALPN01_PORT=${TLSALPN01_PORT:-5001}
DNS_PORT=${DNS_PORT:-8053}
CHALL_MGMT_PORT=${CHALL_MGMT_PORT:-8055}
ACME_PORT=${ACME_PORT:-14000}
PEBBLE_MGMT_PORT=${PEBBLE_MGMT_PORT:-15000}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-300} # seconds, for any one client command
CHALLTESTSRV_URL=http://127.0.0.1:$CHALL_MGMT_PORT
export HTTP01_PORT TLSALPN01_PORT CHALLTESTSRV_URL

WORK=$(mktemp -d -t acme-interop.XXXXXX)
LOGS=$WORK/logs
mkdir -p "$LOGS"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------- helpers

step() { printf '\n== %s\n' "$*"; }
skip() { printf '\n== %s\nSKIP: %s\n' "$1" "$2"; }

# fail MESSAGE [LOG...]: the message, the tail of each log named and of the servers' logs.
fail() {
  local msg=$1 f; shift
  echo "FAIL: $msg" >&2
  for f in "$@" "$LOGS"/server-*.log; do
    [ -s "$f" ] || continue
    echo "--- tail of $f" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}

# run LOG CMD...: runs a client (bounded in time) with its output in LOG; fails loudly.
run() {
  local log=$1; shift
  printf '+ %s\n' "$*" >>"$log"
  local rc=0
  timeout "$CLIENT_TIMEOUT" "$@" >>"$log" 2>&1 || rc=$?
  [ $rc = 0 ] || fail "${log##*/}: '$1' exited $rc" "$log"
}

port_busy() { ss -Hltun "( sport = :$1 )" | grep -q .; }
need_free_ports() {
  local p
  for p in "$@"; do ! port_busy "$p" || fail "port $p is in use (set the *_PORT variables)"; done
}

# start NAME CMD...: a background server whose output goes to $LOGS/server-NAME.log.
start() {
  local name=$1; shift
  "$@" >"$LOGS/server-$name.log" 2>&1 &
  pids+=($!)
}
stop_last() {
  kill "${pids[-1]}" 2>/dev/null || true
  wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
}

# wait_tcp PORT SECONDS: until something accepts on 127.0.0.1:PORT and the last started
# server is still alive.
wait_tcp() {
  local port=$1 deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    kill -0 "${pids[-1]}" 2>/dev/null || fail "the server for port $port exited"
    [ $SECONDS -lt $deadline ] || fail "nothing listens on 127.0.0.1:$port after $2 s"
    sleep 0.2
  done
}

words() { paste -sd' ' <<<"$1"; } # lines to one line
pkg_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo '?'; }
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }

# check_cert CERT BUNDLE NAME...: CERT chains to $ISSUER_ROOT through BUNDLE (a full chain
# file: the leaf in it is harmless as an untrusted certificate) and names exactly NAMEs
# (DNS:x or IP Address:x).
check_cert() {
  local cert=$1 bundle=$2; shift 2
  openssl verify -CAfile "$ISSUER_ROOT" -untrusted "$bundle" "$cert" >/dev/null \
    || fail "$cert does not verify against ISSUER_ROOT: $(openssl verify -CAfile "$ISSUER_ROOT" -untrusted "$bundle" "$cert" 2>&1)"
  local want got
  want=$(printf '%s\n' "$@" | sort)
  got=$(openssl x509 -in "$cert" -noout -ext subjectAltName | tail -n +2 | tr ',' '\n' | sed 's/^ *//' | sort)
  [ "$want" = "$got" ] || fail "$cert names [$(words "$got")], not [$(words "$want")]"
  echo "ok: $(words "$got"), serial $(serial "$cert"), chains to ISSUER_ROOT"
}

# ---------------------------------------------------------------------------- DNS

start_challtestsrv() {
  need_free_ports "$DNS_PORT" "$CHALL_MGMT_PORT"
  # Mock DNS only: its own http-01/tls-alpn-01 servers are off so that the clients' solvers
  # can bind those ports. (This 2.4 build has no DoH server to turn off.) An empty IPv6
  # default leaves AAAA empty, so validators dial 127.0.0.1.
  start challtestsrv pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
    -dns01 "127.0.0.1:$DNS_PORT" -management "127.0.0.1:$CHALL_MGMT_PORT" \
    -http01 "" -https01 "" -tlsalpn01 ""
  wait_tcp "$CHALL_MGMT_PORT" 10
}
chall() { curl -sS --fail --max-time 5 -d "$2" "$CHALLTESTSRV_URL/$1" >/dev/null; }

# ---------------------------------------------------------------------------- targets
# A target starts an ACME server and exports:
#   ACME_DIR_URL    the directory URL
#   ACME_ROOT       PEM the clients trust for the ACME server's own TLS
#   ISSUER_ROOT     PEM of the root that issued certificates chain to
#   EAB_KID EAB_HMAC  the external account binding "web-1" (base64url HMAC key), required
#   HTTP01_PORT TLSALPN01_PORT  where the server validates http-01 and tls-alpn-01
#   WILDCARDS       1 if it issues for *.name, 0 if it refuses them (rejectedIdentifier)
# and defines, for TARGET=NAME:
#   NAME_eab BINDING [--mtls-client]  sets KID and HMAC to a new binding (one per account:
#                                     ours spends a binding on the first account it binds)
#   NAME_assert_revoked SERIAL        the server has SERIAL revoked as key-compromised
#   NAME_ari_make_due CERT            (ACME_ARI=1) brings CERT's renewal window to now
# Bindings: web-1 certbot (Debian), lego-1 lego, web-2 certbot (PyPI), caddy-1 Caddy.

start_pebble() {
  local d=$WORK/pebble
  mkdir -p "$d"
  need_free_ports "$ACME_PORT" "$PEBBLE_MGMT_PORT"
  # Debian's package ships no test certificates: a throwaway CA and a localhost certificate.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$d/tls-ca.key" -out "$d/tls-ca.crt" -subj "/CN=acme-interop TLS CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$d/tls.key" -subj /CN=localhost 2>/dev/null |
    openssl x509 -req -CA "$d/tls-ca.crt" -CAkey "$d/tls-ca.key" -set_serial 1 -days 2 \
      -out "$d/tls.crt" -extfile <(printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
        'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
        'extendedKeyUsage=serverAuth' 'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid') 2>/dev/null
  # One binding per client account, as with ours (Pebble would take one for all).
  local name keys=""
  for name in web-1 lego-1 web-2 caddy-1; do
    openssl rand 32 | openssl base64 -A | tr '+/' '-_' | tr -d '=' >"$d/eab-$name"
    keys+="${keys:+, }\"$name\": \"$(cat "$d/eab-$name")\""
  done
  cat >"$d/config.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$ACME_PORT",
    "managementListenAddress": "127.0.0.1:$PEBBLE_MGMT_PORT",
    "certificate": "$d/tls.crt",
    "privateKey": "$d/tls.key",
    "httpPort": $HTTP01_PORT,
    "tlsPort": $TLSALPN01_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": true,
    "externalAccountMACKeys": { $keys },
    "certificateValidityPeriod": 7776000
  }
}
EOF
  # No random sleeps before validation, no spurious badNonce, and no reuse of valid
  # authorizations, so that every order (renewals too) is validated again.
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    start pebble pebble -config "$d/config.json" -dnsserver "127.0.0.1:$DNS_PORT"
  wait_tcp "$ACME_PORT" 20
  wait_tcp "$PEBBLE_MGMT_PORT" 10
  ACME_DIR_URL=https://127.0.0.1:$ACME_PORT/dir
  ACME_ROOT=$d/tls-ca.crt
  PEBBLE_MGMT=https://127.0.0.1:$PEBBLE_MGMT_PORT
  # Pebble makes a new issuing root at every start; its management API hands it out.
  ISSUER_ROOT=$d/issuer-root.pem
  curl -sS --fail --max-time 5 --cacert "$ACME_ROOT" -o "$ISSUER_ROOT" "$PEBBLE_MGMT/roots/0"
  pebble_eab web-1
  EAB_KID=$KID EAB_HMAC=$HMAC WILDCARDS=1
  export ACME_DIR_URL ACME_ROOT ISSUER_ROOT EAB_KID EAB_HMAC WILDCARDS
}

# The bindings are in Pebble's config (all allow everything, profiles do not exist).
pebble_eab() {
  KID=$1
  HMAC=$(cat "$WORK/pebble/eab-$1") || fail "no Pebble binding $1"
}

# Pebble has no CRL; its management API tells a certificate's status and reason.
pebble_assert_revoked() {
  local hex status
  hex=$(tr 'A-F' 'a-f' <<<"$1")
  status=$(curl -sS --fail --max-time 5 --cacert "$ACME_ROOT" "$PEBBLE_MGMT/cert-status-by-serial/$hex")
  python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(not (s["Status"]=="Revoked" and s["Reason"]==1))' "$status" \
    || fail "Pebble says of $1: $status"
  echo "ok: Pebble has $1 revoked, reason 1 (keyCompromise)"
}

# Our `ca`. Contract (its ACME server is being written; this is not run yet):
#   pki --dir PKI init
#   pki --dir PKI acme eab create --name web-1 --allow-dns .test --allow-ip 127.0.0.0/8
#       its last stdout line: "KID HMAC" (HMAC base64url); the same for lego-1, web-2
#       (with --mtls-client, for the profile) and caddy-1, while the CA runs
#   ca --pki-dir PKI --bind 127.0.0.1:PORT --public-url https://127.0.0.1:PORT
#      --acme-resolver 127.0.0.1:DNS_PORT --acme-http-port HTTP01_PORT --acme-tls-port TLSALPN01_PORT
#   directory https://127.0.0.1:PORT/acme/directory, CRL (DER) https://127.0.0.1:PORT/crl,
#   the service's TLS certificate and issued certificates chaining to PKI/ca/ca.crt.
start_ours() {
  BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug}
  local b
  for b in pki ca; do
    [ -x "$BIN/$b" ] || fail "missing $BIN/$b: cargo build -p pki -p ca"
  done
  need_free_ports "$ACME_PORT"
  PKI=$WORK/pki
  "$BIN/pki" --dir "$PKI" init >"$LOGS/pki-init.log" 2>&1 || fail "pki init" "$LOGS/pki-init.log"
  ours_eab web-1
  EAB_KID=$KID EAB_HMAC=$HMAC
  # --public-url: certificates name https://127.0.0.1:PORT/crl as their CRL distribution point.
  start_ca
  ACME_DIR_URL=https://127.0.0.1:$ACME_PORT/acme/directory
  ACME_ROOT=$PKI/ca/ca.crt
  ISSUER_ROOT=$PKI/ca/ca.crt
  CRL_URL=https://127.0.0.1:$ACME_PORT/crl
  WILDCARDS=0 # "this CA issues no wildcard certificates; order each name"
  export ACME_DIR_URL ACME_ROOT ISSUER_ROOT EAB_KID EAB_HMAC CRL_URL PKI BIN WILDCARDS
}

# The ca on PKI; CA_PID is its process (restart_ca stops and starts it, after a CA switch).
start_ca() {
  start ca "$BIN/ca" --pki-dir "$PKI" --bind "127.0.0.1:$ACME_PORT" \
    --public-url "https://127.0.0.1:$ACME_PORT" --acme-resolver "127.0.0.1:$DNS_PORT" \
    --acme-http-port "$HTTP01_PORT" --acme-tls-port "$TLSALPN01_PORT"
  CA_PID=${pids[-1]}
  wait_tcp "$ACME_PORT" 30
}
restart_ca() {
  kill "$CA_PID" 2>/dev/null || true
  wait "$CA_PID" 2>/dev/null || true
  start_ca
}

# ours_eab NAME [--mtls-client]: a new binding for the names the clients order here.
ours_eab() {
  local name=$1 out log=$LOGS/pki-eab.log; shift
  out=$("$BIN/pki" --dir "$PKI" acme eab create --name "$name" --allow-dns .test \
    --allow-ip 127.0.0.0/8 "$@" 2>>"$log") || fail "pki acme eab create --name $name" "$log"
  read -r KID HMAC <<<"$(tail -n 1 <<<"$out")"
  [ -n "$KID" ] && [ -n "${HMAC:-}" ] || fail "no 'KID HMAC' line from pki acme eab create: $out"
}

# The renewal window of a revoked certificate is in the past: revoke it as an operator does,
# with pki on the CA's records (the running ca sees it at once).
ours_ari_make_due() {
  "$BIN/pki" --dir "$PKI" revoke "$(serial "$1")" --reason superseded >>"$LOGS/pki-revoke.log" 2>&1 \
    || fail "pki revoke $(serial "$1")" "$LOGS/pki-revoke.log"
}

# The CRL from the CA (DER, signed by ISSUER_ROOT) lists SERIAL with reason keyCompromise.
# Bounded wait: the CA may re-sign its CRL a moment after the revocation.
ours_assert_revoked() {
  local deadline=$((SECONDS + 30)) crl=$WORK/ours.crl
  while :; do
    curl -sS --fail --max-time 5 --cacert "$ACME_ROOT" -o "$crl" "$CRL_URL" || fail "GET $CRL_URL"
    openssl crl -inform DER -in "$crl" -CAfile "$ISSUER_ROOT" -noout 2>&1 | grep -q "verify OK" \
      || fail "the CRL at $CRL_URL does not verify against ISSUER_ROOT"
    # The entry of serial $1 (up to the next entry or the signature) has reason keyCompromise.
    if openssl crl -inform DER -in "$crl" -noout -text | awk -v s="$1" '
        /Serial Number:/ { entry = ($3 == s) } /Signature Algorithm/ { entry = 0 }
        entry && /Key Compromise/ { found = 1 } END { exit !found }'; then
      echo "ok: $1 is in the CA's CRL, reason keyCompromise"
      return 0
    fi
    [ $SECONDS -lt $deadline ] || fail "$1 is not in the CRL at $CRL_URL with reason keyCompromise after 30 s: $(openssl crl -inform DER -in "$crl" -noout -text)"
    sleep 1
  done
}

target_assert_revoked() { "${TARGET}_assert_revoked" "$@"; }
target_eab() { "${TARGET}_eab" "$@"; }

# The directory answers over TLS that ACME_ROOT verifies, and requires EAB.
check_directory() {
  curl -sS --fail --max-time 5 --cacert "$ACME_ROOT" -o "$WORK/directory.json" "$ACME_DIR_URL" \
    || fail "GET $ACME_DIR_URL"
  python3 - "$WORK/directory.json" <<'EOF' || fail "the directory at $ACME_DIR_URL: $(cat "$WORK/directory.json")"
import json, sys
d = json.load(open(sys.argv[1]))
if d.get("meta", {}).get("externalAccountRequired") is not True:
    sys.exit("meta.externalAccountRequired is not true")
print("directory:", " ".join(sorted(d)), "| meta:", " ".join(sorted(d["meta"])))
EOF
}

# ---------------------------------------------------------------------------- certbot (Debian)

certbot_debian() {
  local d=$WORK/certbot log=$LOGS/certbot.log
  mkdir -p "$d"
  CB=(certbot --config-dir "$d/config" --work-dir "$d/work" --logs-dir "$d/logs"
    --non-interactive --server "$ACME_DIR_URL")

  step "certbot $(certbot --version 2>&1 | cut -d' ' -f2): register with EAB"
  # KEY=VALUE: a base64url key may begin with "-", which argparse would take for an option.
  cb_run "$log" register --agree-tos -m admin@web1.test --eab-kid="$EAB_KID" --eab-hmac-key="$EAB_HMAC"
  echo "ok: account registered"

  step "certbot: certonly --standalone, http-01 on port $HTTP01_PORT, web1.test"
  cb_run "$log" certonly --standalone --preferred-challenges http-01 --http-01-address 127.0.0.1 \
    --http-01-port "$HTTP01_PORT" -d web1.test --cert-name web1
  local live=$d/config/live/web1
  check_cert "$live/cert.pem" "$live/fullchain.pem" DNS:web1.test
  local first
  first=$(serial "$live/cert.pem")

  step "certbot: renew --force-renewal gives a new serial"
  # --no-random-sleep-on-renew: without a terminal certbot renew sleeps up to 8 minutes first.
  cb_run "$log" renew --cert-name web1 --force-renewal --no-random-sleep-on-renew
  check_cert "$live/cert.pem" "$live/fullchain.pem" DNS:web1.test
  [ "$(serial "$live/cert.pem")" != "$first" ] || fail "the renewal kept serial $first" "$log"

  step "certbot: revoke --reason keycompromise"
  cb_run "$log" revoke --cert-path "$live/cert.pem" --reason keycompromise --no-delete-after-revoke
  target_assert_revoked "$(serial "$live/cert.pem")"
}

# cb_run LOG ARGS...: Debian's certbot; on failure its own log's tail too.
cb_run() {
  local log=$1; shift
  printf '+ certbot %s\n' "$*" >>"$log"
  # REQUESTS_CA_BUNDLE: certbot (python-requests) trusts the ACME server's TLS root.
  REQUESTS_CA_BUNDLE=$ACME_ROOT timeout "$CLIENT_TIMEOUT" "${CB[@]}" "$@" >>"$log" 2>&1 \
    || fail "certbot $1 exited $?" "$log" "$WORK/certbot/logs/letsencrypt.log"
}

# ---------------------------------------------------------------------------- lego

lego_all() {
  export LEGO_CA_CERTIFICATES=$ACME_ROOT # lego trusts the ACME server's TLS root
  # One account (one --path, one binding) for every lego scenario.
  target_eab lego-1
  LEGO=(lego --path "$WORK/lego" --server "$ACME_DIR_URL" --accept-tos --email admin@lego.test
    --eab --kid="$KID" --hmac="$HMAC")
  lego_tls_alpn
  lego_ip
  lego_dns
  lego_dns_wildcard
  lego_dns_cname
}

lego_certs() { echo "$WORK/lego/certificates"; }

lego_tls_alpn() {
  local log=$LOGS/lego-tls-alpn.log tls=(--tls --tls.port "127.0.0.1:$TLSALPN01_PORT")
  step "lego $(pkg_version lego): tls-alpn-01 on port $TLSALPN01_PORT, lego-alpn.test"
  run "$log" "${LEGO[@]}" "${tls[@]}" -d lego-alpn.test run
  local crt
  crt=$(lego_certs)/lego-alpn.test.crt
  check_cert "$crt" "$crt" DNS:lego-alpn.test
  local first
  first=$(serial "$crt")

  step "lego: renew (--days 3650: more than any certificate here lives, so it renews now)"
  run "$log" "${LEGO[@]}" "${tls[@]}" -d lego-alpn.test renew --days 3650 --no-random-sleep
  check_cert "$crt" "$crt" DNS:lego-alpn.test
  [ "$(serial "$crt")" != "$first" ] || fail "lego renew kept serial $first" "$log"
}

# lego 4.9 orders every -d as a "dns" identifier: IP identifiers (RFC 8738) came in lego
# 4.11 (read in lego's source: acme/api/order.go). IP identifiers are ordered by certbot from
# PyPI over http-01 (ACME_ARI=1) and by Caddy over tls-alpn-01 (where its answer must be refused).
lego_ip() {
  skip "lego: tls-alpn-01 for the IP address 127.0.0.1" \
    "lego $(pkg_version lego) orders every -d as a dns identifier (IP identifiers came in lego 4.11); see Caddy below and certbot from PyPI (ACME_ARI=1)"
}

# dns-01 through `--dns exec`: tests/acme/lego-dns-hook.sh sets the TXT record in
# challtestsrv. --dns.disable-cp: lego's propagation check asks the zone's authoritative
# servers, which the mock DNS does not model; it answers at once anyway.
lego_dns_env() {
  export EXEC_PATH=$HERE/lego-dns-hook.sh EXEC_POLLING_INTERVAL=1 EXEC_PROPAGATION_TIMEOUT=30 \
    EXEC_SEQUENCE_INTERVAL=1
  DNS=(--dns exec --dns.resolvers "127.0.0.1:$DNS_PORT" --dns.disable-cp)
}

lego_dns() {
  local log=$LOGS/lego-dns.log
  lego_dns_env
  step "lego: dns-01 with an exec hook, lego-dns.test"
  run "$log" "${LEGO[@]}" "${DNS[@]}" -d lego-dns.test run
  local crt
  crt=$(lego_certs)/lego-dns.test.crt
  check_cert "$crt" "$crt" DNS:lego-dns.test
}

# A wildcard and its base name (two dns-01 challenges on one TXT name): issued where the
# target has WILDCARDS=1, refused with rejectedIdentifier where it has 0.
lego_dns_wildcard() {
  local log=$LOGS/lego-dns-wildcard.log crt rc=0
  lego_dns_env
  crt=$(lego_certs)/lego-wild.test.crt
  if [ "$WILDCARDS" = 1 ]; then
    step "lego: dns-01, lego-wild.test and *.lego-wild.test"
    run "$log" "${LEGO[@]}" "${DNS[@]}" -d lego-wild.test -d '*.lego-wild.test' run
    check_cert "$crt" "$crt" DNS:lego-wild.test 'DNS:*.lego-wild.test'
    return 0
  fi
  step "lego: *.lego-wild.test is refused (this CA issues no wildcards)"
  timeout "$CLIENT_TIMEOUT" "${LEGO[@]}" "${DNS[@]}" -d lego-wild.test -d '*.lego-wild.test' run \
    >>"$log" 2>&1 || rc=$?
  [ $rc != 0 ] && grep -q "error:rejectedIdentifier" "$log" \
    || fail "a wildcard order: expected rejectedIdentifier, got exit $rc" "$log"
  [ ! -e "$crt" ] || fail "a wildcard certificate was issued" "$log"
  echo "ok: refused, $(grep -o 'error:rejectedIdentifier.*' "$log" | head -n 1 | cut -c1-120)"
}

# _acme-challenge.lego-cname.test is a CNAME to a name in another zone, whose TXT record
# holds the value: lego follows the CNAME (its hook gets the target) and the server must
# too. challtestsrv answers a TXT query for the alias with the CNAME and the target's TXT
# records, which Pebble reads, so this runs against both targets.
lego_dns_cname() {
  local log=$LOGS/lego-dns-cname.log target=lego-cname.delegated.test.
  lego_dns_env
  step "lego: dns-01 through a CNAME (_acme-challenge.lego-cname.test -> $target)"
  chall set-cname "{\"host\":\"_acme-challenge.lego-cname.test.\",\"target\":\"$target\"}"
  run "$log" "${LEGO[@]}" "${DNS[@]}" -d lego-cname.test run
  grep -q "present TXT $target" "$log" || fail "lego did not write the TXT record at the CNAME's target" "$log"
  local crt
  crt=$(lego_certs)/lego-cname.test.crt
  check_cert "$crt" "$crt" DNS:lego-cname.test
  chall clear-cname "{\"host\":\"_acme-challenge.lego-cname.test.\"}"
}

# ---------------------------------------------------------------------------- Caddy

caddy_site() {
  local d=$WORK/caddy log=$LOGS/server-caddy.log
  mkdir -p "$d"
  need_free_ports "$HTTP01_PORT" "$TLSALPN01_PORT"
  step "caddy $(caddy version | awk '{print $1}'): http_port $HTTP01_PORT, https_port $TLSALPN01_PORT, caddy1.test; 127.0.0.1 (tls-alpn-01, refused)"
  target_eab caddy-1
  # Caddy keeps its state under HOME/XDG dirs: all in the temp dir.
  HOME=$d XDG_DATA_HOME=$d/data XDG_CONFIG_HOME=$d/config CADDY_STORAGE=$d/storage \
    EAB_KID=$KID EAB_HMAC=$HMAC start caddy caddy run --adapter caddyfile --config "$HERE/Caddyfile"
  wait_tcp "$TLSALPN01_PORT" 20
  local bind
  # TCP and UDP (HTTP/3): every socket of Caddy's on 127.0.0.1.
  bind=$(ss -Hltunp | grep "pid=${pids[-1]}," | awk '{print $5}' | sort -u)
  echo "caddy listens on: $(words "$bind")"
  ! grep -qv '^127\.0\.0\.1:' <<<"$bind" || fail "caddy listens beyond 127.0.0.1: $(words "$bind")" "$log"

  caddy_get https://caddy1.test:"$TLSALPN01_PORT"/ "hello from caddy" \
    --resolve "caddy1.test:$TLSALPN01_PORT:127.0.0.1"
  caddy_ip_refused
  stop_last
}

# Caddy's tls-alpn-01 certificate for 127.0.0.1 names it as a dNSName (see tests/acme/Caddyfile):
# the server must have asked with the reverse name as SNI, and refused the answer.
caddy_ip_refused() {
  local log=$LOGS/server-caddy.log deadline=$((SECONDS + 90)) seen
  until seen=$(caddy_ip_events "$log") && grep -qE '^(refused|obtained)' <<<"$seen"; do
    [ $SECONDS -lt $deadline ] || fail "no answer to Caddy's tls-alpn-01 challenge for 127.0.0.1 after 90 s" "$log"
    sleep 1
  done
  sort -u <<<"$seen"
  grep -q "asked with SNI 1.0.0.127.in-addr.arpa" <<<"$seen" || fail "no tls-alpn-01 request with the reverse name as SNI" "$log"
  ! grep -q '^obtained' <<<"$seen" ||
    fail "the server accepted a tls-alpn-01 certificate naming 127.0.0.1 as a dNSName (RFC 8738 section 6: an iPAddress)" "$log"
  echo "ok: tls-alpn-01 for 127.0.0.1 with a dNSName certificate refused (Caddy 2.6.2's bug, not the server's)"
}

# caddy_ip_events LOG: what Caddy's JSON log says about the IP identifier 127.0.0.1.
caddy_ip_events() {
  python3 - "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("server_name") == "1.0.0.127.in-addr.arpa":
        print("asked with SNI 1.0.0.127.in-addr.arpa")
    if e.get("identifier") != "127.0.0.1":
        continue
    if e.get("msg") == "challenge failed" and e.get("challenge_type") == "tls-alpn-01":
        print("refused:", e.get("problem_type"), "-", e.get("error", "")[:160])
    if e.get("msg") == "certificate obtained successfully":
        print("obtained")
EOF
}

# caddy_get URL BODY [CURL ARGS]: bounded wait (90 s) for Caddy to obtain the certificate
# and serve BODY over a TLS connection that verifies against ISSUER_ROOT. Why 90 s: on its
# first start Caddy 2.6.2 registers an account for each name at once, each with a new key;
# where a binding is single-use (ours) all but one fail, and retry 60 s later with the
# account that was stored.
caddy_get() {
  local url=$1 body=$2 deadline=$((SECONDS + 90)) got; shift 2
  until got=$(curl -sS --max-time 5 --cacert "$ISSUER_ROOT" "$@" "$url" 2>"$WORK/curl.err"); do
    kill -0 "${pids[-1]}" 2>/dev/null || fail "caddy exited" "$LOGS/server-caddy.log"
    [ $SECONDS -lt $deadline ] || fail "no certificate from Caddy for $url after 90 s: $(cat "$WORK/curl.err")" "$LOGS/server-caddy.log"
    sleep 1
  done
  [ "$got" = "$body" ] || fail "$url answered '$got'" "$LOGS/server-caddy.log"
  echo "ok: $url -> $got"
}

# ---------------------------------------------------------------------------- certbot (PyPI)
# certbot from PyPI, in a venv in a cache dir (ACME_VENV): IP identifiers (--ip-address, certbot
# >= 5.1, hence the version installed), renewal information (ARI, RFC 9773; certbot >= 4.1) and
# profiles (--preferred-profile, certbot >= 4.1). Pebble 2.4 has neither renewalInfo nor
# profiles, so those two run for TARGET=ours only.

certbot_pypi() {
  if [ "${ACME_ARI:-0}" != 1 ]; then
    skip "certbot from PyPI: IP identifier, renewal info, profiles" "set ACME_ARI=1 to install and run it"
    return 0
  fi
  certbot_venv
  local d=$WORK/certbot-pypi
  mkdir -p "$d"
  CB=("$VENV/bin/certbot" --config-dir "$d/config" --work-dir "$d/work" --logs-dir "$d/logs"
    --non-interactive --server "$ACME_DIR_URL")
  step "certbot $("$VENV/bin/certbot" --version 2>&1 | cut -d' ' -f2) (PyPI): register with EAB"
  # --mtls-client: ours lets only such a binding's account order the mtls-client profile.
  target_eab web-2 --mtls-client
  cbp_run register --agree-tos -m admin@web2.test --eab-kid="$KID" --eab-hmac-key="$HMAC"
  echo "ok: account registered"
  certbot_pypi_ip
  if [ "$TARGET" = pebble ]; then
    skip "certbot (PyPI): early renewal driven by renewal info" "Pebble 2.4 has no renewalInfo"
    skip "certbot (PyPI): --preferred-profile mtls-client" "Pebble 2.4 has no profiles"
  else
    certbot_pypi_ari
    certbot_pypi_profile
    certbot_pypi_rotation
  fi
}

certbot_venv() {
  VENV=${ACME_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/acme-interop/certbot-venv}
  local ok
  ok=$("$VENV/bin/python" -c 'from importlib.metadata import version as v; print(tuple(map(int, v("certbot").split(".")[:2])) >= (5, 1))' 2>/dev/null || true)
  [ "$ok" = True ] && return 0
  echo "installing certbot >= 5.1 from PyPI into $VENV"
  run "$LOGS/venv.log" python3 -m venv "$VENV"
  run "$LOGS/venv.log" "$VENV/bin/pip" install --quiet 'certbot>=5.1'
}

cbp_run() {
  local log=$LOGS/certbot-pypi.log
  printf '+ certbot %s\n' "$*" >>"$log"
  REQUESTS_CA_BUNDLE=$ACME_ROOT timeout "$CLIENT_TIMEOUT" "${CB[@]}" "$@" >>"$log" 2>&1 \
    || fail "certbot (PyPI) $1 exited $?" "$log" "$WORK/certbot-pypi/logs/letsencrypt.log"
}
cbp_live() { echo "$WORK/certbot-pypi/config/live/$1"; }

certbot_pypi_ip() {
  local live log=$LOGS/certbot-pypi.log
  live=$(cbp_live ip)
  step "certbot (PyPI): an IP identifier, 127.0.0.1 over http-01 on port $HTTP01_PORT"
  if [ "$TARGET" != pebble ]; then
    cbp_ip_certonly || {
      grep -q "Requested name 127.0.0.1 is an IP address" "$log" &&
        fail "certbot refused the certificate: its subject CN is 127.0.0.1, and certbot reads a CN as a DNS name (leave the CN out when no DNS name is ordered)" "$log"
      fail "certbot (PyPI) certonly --ip-address 127.0.0.1" "$log" "$WORK/certbot-pypi/logs/letsencrypt.log"
    }
    check_cert "$live/cert.pem" "$live/fullchain.pem" "IP Address:127.0.0.1"
    return 0
  fi
  # Pebble 2.4 copies the IP into the subject CN; certbot >= 5.1 reads a CN as a DNS name
  # and stops after issuance ("is an IP address"), with the certificate in its archive.
  # (Pebble dropped the CN in 2.5.) So against Pebble: validation and issuance pass, then
  # certbot refuses, as expected.
  local rc=0
  cbp_ip_certonly || rc=$?
  [ $rc != 0 ] && grep -q "Requested name 127.0.0.1 is an IP address" "$log" \
    || fail "certbot and Pebble 2.4 on an IP: expected the CN refusal, got exit $rc" "$log"
  local archive=$WORK/certbot-pypi/config/archive/ip
  check_cert "$archive/cert1.pem" "$archive/fullchain1.pem" "IP Address:127.0.0.1"
  echo "ok: issued; certbot then refused Pebble 2.4's CN=127.0.0.1, as expected"
}

# certbot (PyPI) for 127.0.0.1, its exit status returned (not failing the script).
cbp_ip_certonly() {
  printf '+ certbot certonly --ip-address 127.0.0.1\n' >>"$LOGS/certbot-pypi.log"
  REQUESTS_CA_BUNDLE=$ACME_ROOT timeout "$CLIENT_TIMEOUT" "${CB[@]}" certonly --standalone \
    --preferred-challenges http-01 --http-01-address 127.0.0.1 --http-01-port "$HTTP01_PORT" \
    --ip-address 127.0.0.1 --cert-name ip >>"$LOGS/certbot-pypi.log" 2>&1
}

cbp_certonly() {
  cbp_run certonly --standalone --preferred-challenges http-01 --http-01-address 127.0.0.1 \
    --http-01-port "$HTTP01_PORT" "$@"
}

# ari_window CERT: prints "START END" (epoch seconds) of the certificate's suggested
# renewal window, from the directory's renewalInfo resource. The certificate ID is
# base64url(AKI keyIdentifier) "." base64url(DER serial number), RFC 9773 section 4.1.
ari_window() {
  "$VENV/bin/python" - "$1" "$ACME_DIR_URL" "$ACME_ROOT" <<'EOF'
import base64, datetime, json, ssl, sys, urllib.request
from cryptography import x509
cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
n = cert.serial_number
cert_id = b64(aki) + "." + b64(n.to_bytes(n.bit_length() // 8 + 1, "big"))
ctx = ssl.create_default_context(cafile=sys.argv[3])
get = lambda url: json.load(urllib.request.urlopen(url, context=ctx, timeout=10))
base = get(sys.argv[2]).get("renewalInfo")
if not base:
    sys.exit("the directory has no renewalInfo")
w = get(base.rstrip("/") + "/" + cert_id)["suggestedWindow"]
t = lambda s: int(datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp())
print(t(w["start"]), t(w["end"]))
EOF
}

certbot_pypi_ari() {
  local cert log=$LOGS/certbot-pypi.log start end first win
  step "certbot (PyPI): renewal info decides the renewal"
  cbp_certonly -d ari.test --cert-name ari
  cert=$(cbp_live ari)/cert.pem
  first=$(serial "$cert")
  win=$(ari_window "$cert") || fail "renewalInfo for $cert"
  read -r start end <<<"$win"
  [ -n "$end" ] && [ "$start" -lt "$end" ] || fail "suggestedWindow start $start end $end"
  echo "suggested window: $(date -ud "@$start" +%FT%TZ) .. $(date -ud "@$end" +%FT%TZ)"
  [ "$start" -gt "$(date +%s)" ] || fail "a fresh certificate is already due for renewal"
  # Not due: certbot renew (no --force-renewal) leaves it alone.
  cbp_run renew --cert-name ari --no-random-sleep-on-renew
  [ "$(serial "$cert")" = "$first" ] || fail "certbot renewed a certificate whose window has not started" "$log"
  echo "ok: not due, not renewed"

  "${TARGET}_ari_make_due" "$cert"
  win=$(ari_window "$cert") || fail "renewalInfo for $cert once due"
  read -r start end <<<"$win"
  [ "$start" -le "$(date +%s)" ] || fail "once due, the window still starts at $(date -ud "@$start" +%FT%TZ)"
  echo "suggested window now: $(date -ud "@$start" +%FT%TZ) .. $(date -ud "@$end" +%FT%TZ)"
  # certbot keeps the server's Retry-After for renewalInfo (hours) in the renewal conf and
  # asks again only after it: fast-forward past it.
  sed -i '/^ *ari_retry_after *=/d' "$WORK/certbot-pypi/config/renewal/ari.conf"
  # The certificate is as far from certbot's own expiry threshold as before, and has no
  # OCSP URL: only renewal info can make this renew.
  cbp_run renew --cert-name ari --no-random-sleep-on-renew
  [ "$(serial "$cert")" != "$first" ] || fail "certbot did not renew a certificate due by renewal info" "$log"
  check_cert "$cert" "$(cbp_live ari)/fullchain.pem" DNS:ari.test
  echo "ok: renewed early on renewal info"
}

# A CA rotation: once the new CA issues (pki ca rotate --switch, the ca restarted on it), the
# old CA's certificates are due by renewal info, and certbot renews onto the new CA.
certbot_pypi_rotation() {
  local cert first before after log=$LOGS/certbot-pypi.log rot=$LOGS/pki-rotate.log
  step "certbot (PyPI): pki ca rotate --switch makes renewal info say renew now"
  cbp_certonly -d rot.test --cert-name rot
  cert=$(cbp_live rot)/cert.pem
  first=$(serial "$cert")
  before=$(openssl x509 -in "$cert" -noout -issuer)
  { "$BIN/pki" --dir "$PKI" ca rotate && "$BIN/pki" --dir "$PKI" ca rotate --switch; } >>"$rot" 2>&1 \
    || fail "pki ca rotate --switch" "$rot"
  restart_ca
  read -r start _ <<<"$(ari_window "$cert")" || fail "renewalInfo for $cert after the switch"
  [ "$start" -le "$(date +%s)" ] || fail "after the switch, the window still starts at $(date -ud "@$start" +%FT%TZ)"
  sed -i '/^ *ari_retry_after *=/d' "$WORK/certbot-pypi/config/renewal/rot.conf"
  cbp_run renew --cert-name rot --no-random-sleep-on-renew
  [ "$(serial "$cert")" != "$first" ] || fail "certbot did not renew after the CA switch" "$log"
  after=$(openssl x509 -in "$cert" -noout -issuer)
  check_cert "$cert" "$(cbp_live rot)/fullchain.pem" DNS:rot.test
  [ "$(openssl x509 -in "$cert" -noout -ext authorityKeyIdentifier)" != "$(openssl x509 -in "$(cbp_live rot)/../../archive/rot/cert1.pem" -noout -ext authorityKeyIdentifier)" ] \
    || fail "the renewed certificate still comes from the old CA ($before)"
  echo "ok: renewed onto the new CA ($after)"
}

certbot_pypi_profile() {
  local cert profiles
  step "certbot (PyPI): --preferred-profile mtls-client"
  profiles=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1])).get("meta", {}).get("profiles", {})))' \
    "$WORK/directory.json") # saved by check_directory
  [[ " $profiles " == *" mtls-client "* ]] || fail "the directory's meta.profiles has no mtls-client: [$profiles]"
  cbp_certonly -d mtls.test --cert-name mtls --preferred-profile mtls-client
  cert=$(cbp_live mtls)/cert.pem
  check_cert "$cert" "$(cbp_live mtls)/fullchain.pem" DNS:mtls.test
  openssl x509 -in "$cert" -noout -ext extendedKeyUsage | grep -q "TLS Web Client Authentication" \
    || fail "the mtls-client certificate has no clientAuth: $(openssl x509 -in "$cert" -noout -ext extendedKeyUsage)"
  echo "ok: $(openssl x509 -in "$cert" -noout -ext extendedKeyUsage | tail -n 1 | sed 's/^ *//')"
  [ "$TARGET" = ours ] && mtls_login "$cert" "$(cbp_live mtls)/privkey.pem"
  return 0
}

# Our server, in mutual TLS on the same PKI, lets the mtls-client certificate in.
mtls_login() {
  local port=${SERVER_PORT:-14001} got
  [ -x "$BIN/server" ] || fail "missing $BIN/server: cargo build -p server"
  need_free_ports "$port"
  start server "$BIN/server" --pki-dir "$PKI" --bind "127.0.0.1:$port"
  wait_tcp "$port" 30
  got=$(curl -sS --max-time 10 --cacert "$ISSUER_ROOT" --cert "$1" --key "$2" "https://localhost:$port/login") \
    || fail "curl with the mtls-client certificate" "$LOGS/server-server.log"
  [ "$got" = "Hello World!" ] || fail "our server answered '$got'" "$LOGS/server-server.log"
  stop_last
  echo "ok: our server (mutual TLS) let the mtls-client certificate in: $got"
}

# ---------------------------------------------------------------------------- main

for t in certbot lego caddy pebble-challtestsrv openssl curl python3 ss; do
  command -v "$t" >/dev/null || { echo "missing $t"; exit 2; }
done
case $TARGET in
  pebble | ours) ;;
  *) echo "TARGET must be pebble or ours, not $TARGET"; exit 2 ;;
esac

step "start pebble-challtestsrv (DNS 127.0.0.1:$DNS_PORT) and the $TARGET ACME server"
need_free_ports "$HTTP01_PORT" "$TLSALPN01_PORT"
start_challtestsrv
"start_$TARGET"
echo "ACME_DIR_URL=$ACME_DIR_URL HTTP01_PORT=$HTTP01_PORT TLSALPN01_PORT=$TLSALPN01_PORT EAB_KID=$EAB_KID"
check_directory

certbot_debian
lego_all
certbot_pypi
# Last: Caddy takes both validation ports for as long as it runs.
caddy_site

printf '\nacme interop (%s) OK\n' "$TARGET"
