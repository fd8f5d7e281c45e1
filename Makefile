# Thin wrapper over cargo. `make` alone prints this help.
CARGO ?= cargo
PKI_DIR ?= certs
DEMO_PORT ?= 8091
# Seconds `make demo` waits for the server to say it listens.
DEMO_WAIT ?= 60
FUZZ_SECS ?= 60
# `make bench BENCH_PROFILE=dev` skips the release build (CI does: it only checks the harness).
BENCH_PROFILE ?= release
BENCH_BIN = $${CARGO_TARGET_DIR:-target}/$(if $(filter dev,$(BENCH_PROFILE)),debug,$(BENCH_PROFILE))
FUZZ_TARGETS := login_form credentials inspect identity name cert_request
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# Each recipe runs in one shell, so `make demo` can start and stop its server.
.ONESHELL:

.PHONY: help certs demo test browser-deps lint bench bench-quick bench-vendored bench-pki bench-est bench-hsm bench-acme soak fuzz clean
help: ## this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

certs: ## make the CA, server and client certificates under certs/ (keeps existing ones)
	# Not --quiet: a first build takes minutes, and cargo's progress says what it is doing.
	$(CARGO) run -p pki -- --dir $(PKI_DIR) init

demo: ## build, make certs if missing, run the server in mutual TLS and the client against it
	@# (@: the recipe is not echoed.) Build the three binaries once and run exactly those (a
	# `cargo run` after a different `cargo build` may rebuild with other features and miss the
	# start-up wait); cargo's progress shows, as a first build takes minutes.
	echo "== building pki, server and client"
	$(CARGO) build -p pki -p server -p client
	bin=$${CARGO_TARGET_DIR:-target}/debug
	[ -f $(PKI_DIR)/ca/ca.crt ] || $$bin/pki --dir $(PKI_DIR) init
	echo; echo "== server: mutual TLS on 127.0.0.1:$(DEMO_PORT)"
	log=$$(mktemp)
	$$bin/server --pki-dir $(PKI_DIR) --bind 127.0.0.1:$(DEMO_PORT) >"$$log" 2>&1 &
	server=$$!
	trap 'kill $$server 2>/dev/null || true; rm -f "$$log"' EXIT
	# Wait for the server's own start-up line (not just an open port: another process may hold
	# it), up to DEMO_WAIT seconds: a first start on a slow machine takes a while.
	for _ in $$(seq $$(( $(DEMO_WAIT) * 10 ))); do
	  grep -q "listening on" "$$log" && break
	  kill -0 $$server 2>/dev/null || break
	  sleep 0.1
	done
	cat "$$log"
	if ! grep -q "listening on" "$$log"; then
	  if kill -0 $$server 2>/dev/null; then
	    echo "the server did not say it was listening within $(DEMO_WAIT) s (raise DEMO_WAIT=...)"
	  else
	    echo "the server exited before listening: its own words are above (port in use? try DEMO_PORT=...)"
	  fi
	  exit 1
	fi
	client() { $$bin/client --pki-dir $(PKI_DIR) --url https://127.0.0.1:$(DEMO_PORT) "$$@"; }
	echo; echo "== client: the seed's sequence with certs/client/client.crt"
	client
	echo; echo "== client: who does the server think we are?"
	client whoami
	echo; echo "== client without a certificate: refused, and why (exit code 16 expected)"
	rc=0; client --no-client-cert || rc=$$?
	[ $$rc -eq 16 ] || { echo "expected exit code 16, got $$rc"; exit 1; }
	echo; echo "== stopping the server"
	kill -TERM $$server; wait $$server || true
	trap - EXIT
	echo "demo OK"

test: ## run every test (unit, integration, CLI, interop with openssl/python, Chromium if installed)
	$(CARGO) test --workspace
	# The browser tests are #[ignore]d in a plain `cargo test`: they need Chromium, NSS's tools,
	# and root (Chromium reads its certificate policy only from /etc).
	if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && command -v pk12util >/dev/null \
	   && [ "$$(id -u)" = 0 ]; then
	  $(CARGO) test --test e2e browser -- --ignored
	else
	  echo "SKIPPED: the browser tests (tests/e2e/browser.rs) need chromium, chromium-driver and libnss3-tools, as root: make browser-deps"
	  [ -z "$${REQUIRE_BROWSER:-}" ] || { echo "REQUIRE_BROWSER is set: failing"; exit 1; }
	fi

browser-deps: ## install Debian's Chromium, chromedriver and NSS tools for the browser tests (root)
	command -v chromedriver >/dev/null && command -v pk12util >/dev/null || {
	  apt-get update -qq
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver libnss3-tools >/dev/null
	}
	chromium --version 2>/dev/null

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: ## our server vs nginx, one-way and mutual TLS: handshakes, requests, CPU, switches, RSS; then wrk and h2load (~11 min)
	bash bench/install-nginx.sh
	$(CARGO) build --quiet --profile $(BENCH_PROFILE) -p server -p bench
	$(BENCH_BIN)/bench compare --server-bin $(BENCH_BIN)/server
	if command -v wrk >/dev/null && command -v h2load >/dev/null; then bash bench/crosscheck.sh; \
	else echo "SKIPPED the wrk/h2load cross-check (apt-get install wrk nghttp2-client)"; fi

bench-quick: ## the CI-sized benchmark (under a minute after the build)
	bash bench/install-nginx.sh
	$(CARGO) build --quiet --profile $(BENCH_PROFILE) -p server -p bench
	$(BENCH_BIN)/bench compare --quick --server-bin $(BENCH_BIN)/server

bench-vendored: ## two runs vs nginx: ours on the system's OpenSSL, then linked to OpenSSL 3.6 (~5 min)
	bash bench/install-nginx.sh
	$(CARGO) build --quiet --release -p server -p bench
	CARGO_TARGET_DIR=target/vendored $(CARGO) build --quiet --release -p server --features vendored-openssl
	bin=$${CARGO_TARGET_DIR:-target}/release
	figures=hs-ec-oneway,hs-ec-mutual,hs-rsa-oneway,hs-rsa-mutual,resume-ec-oneway,resume-ec-mutual,ka-64
	$$bin/bench compare --only $$figures --server-bin $$bin/server --label "system OpenSSL"
	$$bin/bench compare --only $$figures --server-bin target/vendored/release/server --label "vendored OpenSSL 3.6"

bench-pki: ## the CA at fleet scale: 100,000 issued, 10,000 revoked; list, revoke, crl, server start-up and handshakes (~6 min)
	$(CARGO) build --quiet --release -p pki -p server -p bench
	bench/pki-scale.sh $${CARGO_TARGET_DIR:-target}/release

bench-est: ## EST enrollments per second on an empty CA and at 100,000 on record (N, E, PAR), curl + openssl as devices
	$(CARGO) build --quiet --release -p pki -p ca
	bench/est-scale.sh $${CARGO_TARGET_DIR:-target}/release

bench-acme: ## ACME certificates/s to certbot over http-01: one ca on SQLite, one and two on PostgreSQL (N, C)
	$(CARGO) build --quiet --release -p pki -p ca
	bench/acme-rate.sh $${CARGO_TARGET_DIR:-target}/release

bench-hsm: ## the CA key in a SoftHSM token vs a key file: signatures/s per algorithm, certificates/s of a batch (N), EST enrollments/s (E)
	$(CARGO) build --quiet --profile $(BENCH_PROFILE) -p pki -p ca
	test=$$($(CARGO) test --profile $(BENCH_PROFILE) -p pki --test hsm --no-run --message-format=json 2>/dev/null \
	  | grep '"name":"hsm"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
	bench/hsm.sh $(BENCH_BIN) "$$test"

.PHONY: bench-fleet
bench-fleet: ## the ca's admin fleet page at 100,000 certificates: /fleet, page 50, a search, /fleet.json, each vs 200 ms (N, R; ~5 min)
	$(CARGO) build --quiet --release -p pki -p ca
	bench/fleet-scale.sh $${CARGO_TARGET_DIR:-target}/release

soak: ## mixed load on our server for SOAK_SECS (default 120): no errors, no RSS growth, no fd leak
	$(CARGO) build --quiet --profile $(BENCH_PROFILE) -p server -p bench -p pki
	bench/soak.sh $(BENCH_BIN)

fuzz: ## fuzz each parser of untrusted input for FUZZ_SECS seconds (cargo-fuzz, libFuzzer + ASan)
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	# Seeds: a fresh PKI's files (PEM and DER), a form, a users file, a TLS 1.2 server flight.
	seeds=$$(mktemp -d)
	$(CARGO) run --quiet -p pki -- --dir $$seeds/pki init >/dev/null
	mkdir -p fuzz/corpus/{login_form,credentials,inspect,identity,name,cert_request}
	printf "dev-42" > fuzz/corpus/name/seed
	cp $$seeds/pki/*/*.crt $$seeds/pki/ca/ca.crl fuzz/corpus/inspect/
	openssl x509 -in $$seeds/pki/client/client.crt -outform DER -out fuzz/corpus/identity/client.der
	printf 'username=name&password=pwd1' > fuzz/corpus/login_form/seed
	printf '# users\nname:%s\n' '$$2y$$05$$abcdefghijklmnopqrstuuNxSTtqL0mC6oOaKvvHgX.Yw1a1k2fVC' > fuzz/corpus/credentials/seed
	# One handshake record: a CertificateRequest naming CN=ca, then ServerHelloDone.
	printf '\x16\x03\x03\x00\x21\x0d\x00\x00\x19\x01\x01\x00\x02\x04\x03\x00\x11\x00\x0f\x30\x0d\x31\x0b\x30\x09\x06\x03\x55\x04\x03\x0c\x02\x63\x61\x0e\x00\x00\x00' > fuzz/corpus/cert_request/seed
	rm -rf $$seeds
	# Stable rustc takes the sanitizer flags cargo-fuzz passes only with RUSTC_BOOTSTRAP.
	cd fuzz
	for t in $(FUZZ_TARGETS); do
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECS) -rss_limit_mb=2048 2>&1 | tee /tmp/fuzz-$$t.log | grep -E "^Done|ERROR|panicked" || true
	  grep -q "^Done" /tmp/fuzz-$$t.log || { echo "fuzz target $$t failed"; tail -30 /tmp/fuzz-$$t.log; exit 1; }
	  echo "fuzz $$t: $$(grep '^Done' /tmp/fuzz-$$t.log)"
	done

clean: ## remove build output (certs/ is kept: it holds your CA)
	$(CARGO) clean
