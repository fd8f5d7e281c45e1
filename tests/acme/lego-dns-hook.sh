#!/usr/bin/env bash
# lego `--dns exec` hook (EXEC_PATH=this file). lego runs it as
#   present FQDN VALUE    before validation (FQDN after lego followed any CNAME, with its dot)
#   cleanup FQDN VALUE    afterwards
# and it sets or clears the TXT record in pebble-challtestsrv's mock DNS through its
# management API at $CHALLTESTSRV_URL (e.g. http://127.0.0.1:8055).
set -euo pipefail
api=${CHALLTESTSRV_URL:?CHALLTESTSRV_URL is not set}
[ $# -eq 3 ] || { echo "usage: $0 present|cleanup FQDN VALUE" >&2; exit 2; }
post() { curl -sS --fail --max-time 5 -d "$2" "$api/$1"; }
case $1 in
  # challtestsrv keys TXT records by the exact name: fully qualified, with the final dot.
  present) post set-txt "{\"host\":\"$2\",\"value\":\"$3\"}" ;;
  # clear-txt drops every value of the name; lego solves one challenge at a time with exec.
  cleanup) post clear-txt "{\"host\":\"$2\"}" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
echo "challtestsrv: $1 TXT $2"
