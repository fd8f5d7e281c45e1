#!/usr/bin/env bash
# Installs Debian's nginx for `make bench` when it is missing, WITHOUT starting it.
#
# Debian's package starts nginx at install time with its default site on port 80 of every
# interface. The benchmark must only ever listen on 127.0.0.1, and it runs nginx itself with a
# config of its own, so a policy-rc.d that refuses service starts is put in place for the
# install (the standard Debian mechanism, see /usr/share/doc/init-system-helpers/README.policy-rc.d)
# and removed afterwards.
set -euo pipefail

if command -v nginx >/dev/null 2>&1; then
    echo "install-nginx: $(nginx -v 2>&1) already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-nginx: nginx is missing and installing it needs root: sudo apt-get install nginx-light" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
ours=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by bench/install-nginx.sh for the duration of one install\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    ours=1
fi
cleanup() { if [ "$ours" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
# nginx-light (Debian 12) is the smallest build with the ssl module; later releases only ship `nginx`.
install nginx-light || install nginx || { apt-get update -q >/dev/null && { install nginx-light || install nginx; }; }

# In case something started it anyway (a policy-rc.d that was already there and allowed it).
if [ -f /run/nginx.pid ]; then
    kill -QUIT "$(cat /run/nginx.pid)" 2>/dev/null || true
fi
echo "install-nginx: $(nginx -v 2>&1) installed (not started)"
