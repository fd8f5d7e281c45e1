# Thin wrapper over cargo. `make` alone prints this help.
CARGO ?= cargo
PKI_DIR ?= certs

.PHONY: help certs demo test lint bench clean
help: ## this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

certs: ## make the CA, server and client certificates under certs/ (keeps existing ones)
	$(CARGO) run --quiet -p pki -- --dir $(PKI_DIR) init

demo: ## build, make certs, run the server in mutual TLS and the client against it
	@echo "make demo: needs the server (issue #3) and client (issue #4), not built yet" >&2; exit 1

test: ## run every test (unit, integration, CLI, interop with openssl/python)
	$(CARGO) test --workspace

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: ## handshake and request benchmarks against nginx (release build)
	@echo "make bench: not built yet (issue #6)" >&2; exit 1

clean: ## remove build output (certs/ is kept: it holds your CA)
	$(CARGO) clean
