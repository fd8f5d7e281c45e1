#!/usr/bin/env bash
# EST (RFC 7030) with clients we did not write: curl and the openssl CLI against the `ca`
# binary, byte for byte as the RFC puts it (base64 DER PKCS#10 posted as application/pkcs10,
# the answer read with `openssl base64 -d | openssl pkcs7 -inform DER -print_certs`). Then the
# fleet with the real binaries: a device with a token and the root enrolls (`client enroll`),
# calls two `server` replicas that poll the CA's CRL, renews, is revoked (`pki revoke`), and
# is refused by both; the time from revocation to refusal is printed.
#
# Run with: cargo build -p pki -p ca -p server -p client && tests/est-interop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/debug
for b in pki ca server client; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build -p pki -p ca -p server -p client"; exit 2; }
done
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "FAIL: $*"
  for f in "$WORK"/*.log; do echo "--- $f"; tail -20 "$f"; done
  exit 1
}
# Starts a binary on an ephemeral port; sets PORT from its start-up line.
start() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    PORT=$(sed -n 's|^listening on https://127.0.0.1:\([0-9]*\).*|\1|p' "$log" | head -1)
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  fail "no start-up line in $log"
}
status() { curl -sS -o "$WORK/body" -w '%{http_code}' --cacert "$PKI/ca/ca.crt" "$@"; }

PKI=$WORK/certs
"$BIN/pki" --dir "$PKI" init >/dev/null
# The CRL distribution point names the port: a first start finds a free one, the second uses it.
start "$WORK/ca.log" "$BIN/ca" --pki-dir "$PKI" --bind 127.0.0.1:0
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
CA_PORT=$PORT
start "$WORK/ca.log" "$BIN/ca" --pki-dir "$PKI" --bind "127.0.0.1:$CA_PORT" --public-url "https://127.0.0.1:$CA_PORT"
CA=https://127.0.0.1:$CA_PORT
EST=$CA/.well-known/est
CURL=(curl -sS --fail-with-body --cacert "$PKI/ca/ca.crt")
ORG="https Project Device Certificate"

step "cacerts: curl | openssl base64 -d | openssl pkcs7 -print_certs is the root"
"${CURL[@]}" "$EST/cacerts" | openssl base64 -d | openssl pkcs7 -inform DER -print_certs >"$WORK/cacerts.pem"
cmp <(openssl x509 -in "$WORK/cacerts.pem" -outform DER) <(openssl x509 -in "$PKI/ca/ca.crt" -outform DER) \
  || fail "cacerts is not ca/ca.crt"

step "simpleenroll: an openssl key and request, the token of pki token create over HTTP Basic"
TOKEN=$("$BIN/pki" --dir "$PKI" token create --name dev-42 2>/dev/null)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/dev.key" \
  -subj /CN=dev-42 -outform DER 2>/dev/null | openssl base64 >"$WORK/dev.b64"
"${CURL[@]}" -u "dev-42:$TOKEN" -H 'Content-Type: application/pkcs10' --data-binary @"$WORK/dev.b64" \
  "$EST/simpleenroll" | openssl base64 -d | openssl pkcs7 -inform DER -print_certs >"$WORK/dev.crt"
openssl verify -CAfile "$PKI/ca/ca.crt" -purpose sslclient -x509_strict "$WORK/dev.crt" || fail "not a client certificate of the CA"
cmp <(openssl x509 -in "$WORK/dev.crt" -pubkey -noout) <(openssl pkey -in "$WORK/dev.key" -pubout) || fail "not our key"
openssl x509 -in "$WORK/dev.crt" -noout -ext crlDistributionPoints | grep -q "URI:$CA/crl" || fail "no CRL distribution point"
openssl x509 -in "$WORK/dev.crt" -noout -subject

step "the online CA wrote records only: no file for the device; pki export brings index.txt up to date"
[ ! -e "$PKI/client/dev-42.crt" ] || fail "the CA wrote a file for the device"
SERIAL=$(openssl x509 -in "$WORK/dev.crt" -noout -serial | cut -d= -f2)
! grep -q "$SERIAL" "$PKI/ca/index.txt" || fail "the CA rewrote index.txt"
"$BIN/pki" --dir "$PKI" export
grep -qP "\t$SERIAL\tclient/dev-42.crt\t" "$PKI/ca/index.txt" || fail "pki export did not bring index.txt up to date"

step "the same token and request again (the answer was lost): the same certificate"
"${CURL[@]}" -u "dev-42:$TOKEN" -H 'Content-Type: application/pkcs10' --data-binary @"$WORK/dev.b64" \
  "$EST/simpleenroll" | openssl base64 -d | openssl pkcs7 -inform DER -print_certs >"$WORK/again.crt"
cmp <(openssl x509 -in "$WORK/dev.crt" -outform DER) <(openssl x509 -in "$WORK/again.crt" -outform DER) \
  || fail "a retry got another certificate"

step "the same token for another key: 401 and its reason"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
  -subj /CN=dev-42 -outform DER 2>/dev/null | openssl base64 >"$WORK/other.b64"
code=$(status -u "dev-42:$TOKEN" -H 'Content-Type: application/pkcs10' --data-binary @"$WORK/other.b64" "$EST/simpleenroll")
[ "$code" = 401 ] && grep -q "used already" "$WORK/body" || fail "reused token: $code $(cat "$WORK/body")"
cat "$WORK/body"

step "simplereenroll: curl --cert with the certificate being renewed, same subject, new key"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/dev2.key" \
  -subj "/O=$ORG/CN=dev-42" -outform DER 2>/dev/null | openssl base64 >"$WORK/re.b64"
"${CURL[@]}" --cert "$WORK/dev.crt" --key "$WORK/dev.key" -H 'Content-Type: application/pkcs10' \
  --data-binary @"$WORK/re.b64" "$EST/simplereenroll" | openssl base64 -d | openssl pkcs7 -inform DER -print_certs >"$WORK/dev2.crt"
openssl verify -CAfile "$PKI/ca/ca.crt" -purpose sslclient "$WORK/dev2.crt" || fail "renewed certificate"
[ "$(openssl x509 -in "$WORK/dev.crt" -noout -serial)" != "$(openssl x509 -in "$WORK/dev2.crt" -noout -serial)" ] || fail "same serial"
code=$(status -H 'Content-Type: application/pkcs10' --data-binary @"$WORK/re.b64" "$EST/simplereenroll")
[ "$code" = 401 ] || fail "simplereenroll without a certificate: $code"

step "the CRL: DER that openssl crl verifies, 304 to its ETag"
"${CURL[@]}" -D "$WORK/headers" -o "$WORK/crl.der" "$CA/crl"
openssl crl -inform DER -in "$WORK/crl.der" -CAfile "$PKI/ca/ca.crt" -noout 2>&1 | grep -q "verify OK" || fail "CRL signature"
etag=$(tr -d '\r' <"$WORK/headers" | sed -n 's/^etag: //Ip')
code=$(status -H "If-None-Match: $etag" "$CA/crl")
[ "$code" = 304 ] || fail "conditional GET: $code"

step "the fleet: enroll with the client, two server replicas polling the CRL, renew, revoke"
DEV=$WORK/device
mkdir -p "$DEV/ca" && cp "$PKI/ca/ca.crt" "$DEV/ca/"
T2=$("$BIN/pki" --dir "$PKI" token create --name sensor-1 2>/dev/null)
"$BIN/client" --pki-dir "$DEV" enroll --est "$CA" --token "$T2" --name sensor-1
POLL=2
ports=()
for i in 1 2; do
  start "$WORK/server$i.log" "$BIN/server" --pki-dir "$PKI" --bind 127.0.0.1:0 \
    --crl-url "$CA/crl" --crl-poll-secs "$POLL" --crl "$WORK/replica$i.crl"
  ports+=("$PORT")
done
who() { "$BIN/client" --pki-dir "$DEV" --url "https://127.0.0.1:$1" --timeout 3 whoami; }
for p in "${ports[@]}"; do who "$p" | grep -q '"common_name":"sensor-1"' || fail "replica $p refused sensor-1"; done
"$BIN/client" --pki-dir "$DEV" renew --est "$CA" --force
for p in "${ports[@]}"; do who "$p" >/dev/null || fail "replica $p refused the renewed certificate"; done
t0=$(date +%s%N)
"$BIN/pki" --dir "$PKI" revoke sensor-1 >/dev/null
for p in "${ports[@]}"; do
  while :; do
    rc=0; who "$p" >"$WORK/who.out" 2>&1 || rc=$?
    [ "$rc" = 17 ] && grep -q revoked "$WORK/who.out" && break
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt $((POLL * 3000)) ] || fail "replica $p still accepts a revoked device"
    sleep 0.05
  done
  echo "pki revoke -> refused by the replica on port $p after $(( ($(date +%s%N) - t0) / 1000000 )) ms (poll every ${POLL} s ± 10 %)"
done
curl -sS --cacert "$PKI/ca/ca.crt" --cert "$WORK/dev2.crt" --key "$WORK/dev2.key" "https://127.0.0.1:${ports[0]}/healthz"
echo
echo "est-interop: OK"
