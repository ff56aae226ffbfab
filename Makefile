# Enterprise Automation API. `make help` lists the targets.

SHELL       := /bin/bash
GO          ?= go
BIN         := bin/automation
PKGS        := ./...
COVERPKG    := ./internal/...,./cmd/...
# sudo when not root, for installing system packages.
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install what is missing on Debian (PostgreSQL server) and download Go modules
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
		echo "installing PostgreSQL server binaries"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi
	$(GO) mod download

.PHONY: generate
generate: ## Regenerate gen/ from openapi.yaml and db/ (server, Go client, queries)
	$(GO) tool oapi-codegen -config gen/api/config.yaml openapi.yaml
	$(GO) tool oapi-codegen -config gen/client/config.yaml openapi.yaml
	$(GO) tool sqlc generate

.PHONY: check-generate
check-generate: generate ## Fail if gen/ is not what `make generate` produces
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has untracked generated files"; exit 1; }

.PHONY: build
build: ## Build the binary into bin/
	$(GO) build -o $(BIN) ./cmd/automation

.PHONY: run
run: deps build ## Run locally: private PostgreSQL under .data/, migrations, first admin, debug server on :8000
	./$(BIN) dev

.PHONY: test
test: ## Run every test (real PostgreSQL, started by the tests)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

.PHONY: cover
cover: ## Run the tests with coverage of the hand-written code; writes coverage.out and prints the total
	$(GO) test -count=1 -timeout 20m -coverpkg=$(COVERPKG) -coverprofile=coverage.out $(PKGS)
	@$(GO) tool cover -func=coverage.out | tail -n 1

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

.PHONY: clean
clean: ## Remove build output (keeps .data/)
	rm -rf bin coverage.out
