#!/usr/bin/env bash
# The CA's keys inside a PKCS#11 token (SoftHSM), through the real binaries and tools we did
# not write: a token made in a temporary directory (SOFTHSM2_CONF), `pki init --key-store` with
# one and two levels, pkcs11-tool reading the keys as never extractable, no key file under ca/,
# ../shared/checks/lint-certs.sh (and interop.sh) on the PKI, the server accepting its
# certificates in mutual TLS (curl), an EST enrollment by curl + openssl signed by the token
# through the `ca` service, a revocation whose CRL `openssl crl -verify` accepts, a rotation.
#
# Without softhsm2/opensc it prints SKIPPED and exits 0, or fails when REQUIRE_SOFTHSM is set.
# Run with: cargo build -p pki -p ca -p server && tests/hsm-interop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/debug
MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
[ -d "$SHARED/checks" ] || [ ! -d /work/shared/checks ] || SHARED=/work/shared

if ! command -v softhsm2-util >/dev/null || ! command -v pkcs11-tool >/dev/null || [ ! -f "$MODULE" ]; then
  echo "SKIPPED: tests/hsm-interop.sh needs softhsm2 and opensc (apt-get install softhsm2 opensc)"
  [ -z "${REQUIRE_SOFTHSM:-}" ] || { echo "REQUIRE_SOFTHSM is set: failing"; exit 1; }
  exit 0
fi
for b in pki ca server; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build -p pki -p ca -p server"; exit 2; }
done

WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "FAIL: $*"
  for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
  exit 1
}
start() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    PORT=$(sed -n 's|^listening on https://127.0.0.1:\([0-9]*\).*|\1|p' "$log" | head -1)
    [ -n "$PORT" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  fail "no start-up line in $log"
}
stop_last() { kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

step "a SoftHSM token in $WORK (SOFTHSM2_CONF)"
mkdir -p "$WORK/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK/tokens" >"$WORK/softhsm2.conf"
export SOFTHSM2_CONF=$WORK/softhsm2.conf
PIN=$(openssl rand -hex 4)
softhsm2-util --init-token --free --label ca --pin "$PIN" --so-pin "$(openssl rand -hex 8)" >/dev/null
# The PIN in a file outside the PKI folder, 0600; never on a command line of pki.
(umask 077; printf '%s\n' "$PIN" >"$WORK/pin")
P11=(pkcs11-tool --module "$MODULE" --token-label ca)

no_key_files() {
  local found
  found=$(find "$1/ca" -name '*.key' | head -1)
  [ -z "$found" ] || fail "a key file under ca/: $found"
  ! grep -rqF "$PIN" "$1" || fail "the PIN is written under $1"
}
never_extractable() {
  "${P11[@]}" --login --pin "$PIN" --list-objects 2>/dev/null >"$WORK/objects.txt"
  awk -v want="$1" '/^Private Key Object/{p=1; next} /Object;/{p=0} p && $1=="label:" && $2==want {f=1} f && /Access:/{print; exit}' \
    "$WORK/objects.txt" >"$WORK/access.txt"
  grep -q "never extractable" "$WORK/access.txt" || fail "private key $1 is not never-extractable: $(cat "$WORK/access.txt")"
  echo "private key $1: $(cat "$WORK/access.txt")"
}
crl_verifies() { openssl crl -in "$1" -CAfile "$2" -noout -verify 2>&1 | grep -q "verify OK" || fail "CRL $1 does not verify with $2"; }

step "one level: pki init --key-store (PIN from pin-source)"
ONE=$WORK/one
"$BIN/pki" --dir "$ONE" init --key-store "pkcs11:token=ca;object=one?module-path=$MODULE&pin-source=file:$WORK/pin"
no_key_files "$ONE"
never_extractable one
openssl verify -x509_strict -CAfile "$ONE/ca/ca.crt" "$ONE/server/server.crt" "$ONE/client/client.crt"
"$BIN/pki" --dir "$ONE" ca status | grep -A3 "key: token" | sed 's/^/  /'

step "two levels: root and issuing keys in objects of their own (PIN from PKI_PKCS11_PIN)"
TWO=$WORK/two
export PKI_PKCS11_PIN=$PIN
"$BIN/pki" --dir "$TWO" init --intermediate --permit-dns localhost --permit-ip 127.0.0.1 --permit-ip ::1 \
  --key-store "pkcs11:token=ca;object=issuing?module-path=$MODULE"
no_key_files "$TWO"
never_extractable issuing
never_extractable issuing-root
crl_verifies "$TWO/ca/root.crl" "$TWO/ca/ca.crt"

step "lint-certs.sh on both PKIs"
if [ -x "$SHARED/checks/lint-certs.sh" ]; then
  "$SHARED/checks/lint-certs.sh" "$ONE"
  "$SHARED/checks/lint-certs.sh" "$TWO"
else
  echo "SKIPPED: no $SHARED/checks/lint-certs.sh"
fi

step "the server accepts the token-signed certificates in mutual TLS"
start "$WORK/server.log" "$BIN/server" --pki-dir "$TWO" --bind 127.0.0.1:0 --client-auth required
SERVER_PORT=$PORT
curl -sS --fail --cacert "$TWO/ca/ca.crt" --cert "$TWO/client/client.crt" --key "$TWO/client/client.key" \
  "https://127.0.0.1:$SERVER_PORT/healthz" >/dev/null || fail "mutual TLS with a token-signed client"
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$TWO/ca/ca.crt" "https://127.0.0.1:$SERVER_PORT/healthz" 2>/dev/null || true)
[ "$code" != 200 ] || fail "the server let a client without a certificate in"
if [ -x "$SHARED/checks/interop.sh" ]; then
  "$SHARED/checks/interop.sh" 127.0.0.1 "$SERVER_PORT" "$TWO" mtls || fail "interop.sh mtls"
fi
stop_last

step "EST: curl + openssl enroll through the ca service, which signs with the token's key"
start "$WORK/ca.log" "$BIN/ca" --pki-dir "$TWO" --bind 127.0.0.1:0
EST=https://127.0.0.1:$PORT/.well-known/est
TOKEN=$("$BIN/pki" --dir "$TWO" token create --name dev-7 2>/dev/null)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/dev.key" \
  -subj /CN=dev-7 -outform DER 2>/dev/null | openssl base64 >"$WORK/dev.b64"
curl -sS --fail-with-body --cacert "$TWO/ca/ca.crt" -u "dev-7:$TOKEN" -H 'Content-Type: application/pkcs10' \
  --data-binary @"$WORK/dev.b64" "$EST/simpleenroll" | openssl base64 -d |
  openssl pkcs7 -inform DER -print_certs >"$WORK/dev.crt" || fail "simpleenroll"
openssl verify -x509_strict -purpose sslclient -CAfile "$TWO/ca/ca.crt" -untrusted "$TWO/ca/intermediate.crt" \
  "$WORK/dev.crt" || fail "the enrolled certificate does not verify"
stop_last

step "revoke: a CRL signed in the token that openssl crl -verify accepts, listing the serial"
SERIAL=$(openssl x509 -in "$TWO/client/client.crt" -noout -serial | cut -d= -f2)
"$BIN/pki" --dir "$TWO" revoke client --reason keyCompromise
crl_verifies "$TWO/ca/ca.crl" "$TWO/ca/intermediate.crt"
openssl crl -in "$TWO/ca/ca.crl" -noout -text | grep -q "$SERIAL" || fail "$SERIAL not in the CRL"

step "a rotation: new keys in the token, the old ones retired"
"$BIN/pki" --dir "$ONE" ca rotate >/dev/null
"$BIN/pki" --dir "$ONE" ca rotate --switch >/dev/null
"$BIN/pki" --dir "$ONE" renew --all
"$BIN/pki" --dir "$ONE" ca rotate --retire >/dev/null
no_key_files "$ONE"
NEW=$(sed -n 's/.*;object=\([^;?]*\).*/\1/p' "$ONE/ca/ca.key-store")
never_extractable "$NEW"
"$BIN/pki" --dir "$ONE" issue client --name after-rotation >/dev/null
openssl verify -x509_strict -CAfile "$ONE/ca/ca.crt" "$ONE/client/after-rotation.crt" "$ONE/server/server.crt"
crl_verifies "$ONE/ca/ca.crl" "$ONE/ca/ca.crt"

echo
echo "hsm-interop: OK"
