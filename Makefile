# Stepflow: `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
# go.mod's toolchain line (the patched standard library) is honoured even
# where the Go installation defaults to GOTOOLCHAIN=local.
GOTOOLCHAIN ?= auto
export GOTOOLCHAIN
LINT := $(GO) tool -modfile=tools/lint/go.mod
FUNCTIONS := $(notdir $(patsubst %/,%,$(dir $(wildcard functions/*/main.go))))
BUILD_DIR ?= build
LAMBDA_ARCH ?= arm64

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: dev
dev: ## Run the whole stack locally (same as go run ./cmd/stepflow dev)
	$(GO) run ./cmd/stepflow dev

# Long tests (the random schedules, the 10,000-run order) run shortened
# unless FULL is set: make test FULL=1 runs them in full, as CI does.
SHORT := $(if $(FULL),,-short)

.PHONY: test
test: preflight lint unit race ## Run every check and test of the root module (FULL=1: long tests in full, as CI)

.PHONY: preflight
preflight: ## Check that what the tests need is installed
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || [ -n "$$STEPFLOW_CHROMIUM" ] || \
	  { echo "make test drives the dashboard in headless Chromium, which is not installed:" >&2; \
	    echo "  Debian/Ubuntu: apt-get install chromium   (or set STEPFLOW_CHROMIUM to a Chromium or Chrome binary)" >&2; exit 1; }

.PHONY: unit
unit: ## Run the Go tests (embedded emulator)
	$(GO) test -count=1 $(SHORT) ./...

# The concurrent packages again under the race detector, with fewer random
# schedules and without the 10,000-run order test (also in unit), which
# only repeat work under it.
RACE_PKGS := ./internal/engine/ ./internal/store/ ./internal/sweeper/ ./internal/runstate/ ./internal/poller/

.PHONY: race
race: ## Run the engine, store, sweeper and poller tests with -race
	STEPFLOW_SCHEDULES=100 $(GO) test -race -count=1 $(SHORT) -skip 'TestOrderOutlivesTenThousandRuns' $(RACE_PKGS)

.PHONY: schedules
schedules: ## Run N random schedules from seed FROM (make schedules N=5000 FROM=1), or replay one (make schedules SEED=17)
	$(GO) test -count=1 -timeout 0 $(if $(SEED),-v) -run 'TestRandomSchedules$$' ./internal/engine/ -args -schedules $(or $(N),2000) -from $(or $(FROM),1) $(if $(SEED),-seed $(SEED) -trace)

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(LINT) staticcheck ./...

.PHONY: conformance
conformance: ## Run the storage, API, engine and sweeper suites against Amazon DynamoDB Local
	STEPFLOW_SCHEDULES=100 tools/dynamodb-local/run.sh $(GO) test -count=1 ./internal/store/ ./internal/api/ ./internal/engine/ ./internal/sweeper/

# The Go vulnerability database is the Go module golang.org/x/vulndb: the
# data is as fresh as this pinned version; bump it on purpose.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB := $(BUILD_DIR)/vulndb-$(VULNDB_VERSION)

$(VULNDB):
	@dir=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
	  test -n "$$dir" || { echo "vuln: could not download golang.org/x/vulndb@$(VULNDB_VERSION)" >&2; exit 1; }; \
	  mkdir -p $(BUILD_DIR) && rm -rf $@.tmp && \
	  (cd "$$dir" && GOFLAGS=-mod=mod $(GO) run ./cmd/indexdb -vulns data/osv -out $(abspath $@.tmp)) && mv $@.tmp $@

.PHONY: vuln
vuln: $(VULNDB) ## govulncheck on both modules against the pinned database (offline); fails on a reachable vulnerability
	$(LINT) govulncheck -db file://$(abspath $(VULNDB)) ./...
	$(LINT) govulncheck -C infra -db file://$(abspath $(VULNDB)) ./...

.PHONY: fuzz
fuzz: ## Fuzz the request decoders for 30s each
	$(GO) test ./internal/api/ -run '^$$' -fuzz FuzzDecodeWorkflow -fuzztime 30s
	$(GO) test ./internal/api/ -run '^$$' -fuzz FuzzCheckAmount -fuzztime 30s

.PHONY: build
build: ## Build each Lambda into build/<name>/bootstrap (linux/arm64)
	@for f in $(FUNCTIONS); do \
	  echo "$(BUILD_DIR)/$$f/bootstrap"; \
	  GOOS=linux GOARCH=$(LAMBDA_ARCH) CGO_ENABLED=0 $(GO) build -trimpath -tags lambda.norpc -ldflags "-s -w" \
	    -o $(BUILD_DIR)/$$f/bootstrap ./functions/$$f || exit 1; \
	done

CDK_ENV := CDK_DISABLE_CLI_TELEMETRY=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 NODE_NO_WARNINGS=1

infra/node_modules: infra/package.json infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: test-infra
test-infra: ## Run the CDK assertion tests (infra/ is its own Go module)
	cd infra && $(CDK_ENV) $(GO) vet . && $(CDK_ENV) $(GO) test -count=1 ./...

.PHONY: synth
synth: build infra/node_modules ## Synthesize the CloudFormation template with the CDK CLI (into infra/cdk.out)
	cd infra && $(CDK_ENV) npx cdk synth --quiet

# Scanners of the stack (security; see README "Security").
TEMPLATE := infra/cdk.out/Stepflow.template.json
# W3005: CDK writes DependsOn on each function's role next to a GetAtt of
# that role (every Lambda, CDK's own custom resources too); harmless.
CFN_LINT_IGNORE := W3005

.PHONY: nag
nag: ## cdk-nag's AwsSolutions rules on the stack (also part of test-infra)
	set -o pipefail; cd infra && $(CDK_ENV) $(GO) test -count=1 -run 'TestNag$$' -v . | grep -E '^(---|ok|FAIL|\s+stack_test)'

.PHONY: cfn-lint
cfn-lint: ## cfn-lint on the synthesized template (run make synth first); fails on any finding but CFN_LINT_IGNORE
	@command -v cfn-lint >/dev/null || { echo "cfn-lint is not installed: pip install cfn-lint" >&2; exit 1; }
	@test -f $(TEMPLATE) || { echo "no $(TEMPLATE): run make synth first" >&2; exit 1; }
	cfn-lint --ignore-checks $(CFN_LINT_IGNORE) -- $(TEMPLATE)

.PHONY: deploy
deploy: build infra/node_modules ## Build and deploy to the AWS account in your environment
	cd infra && $(CDK_ENV) npx cdk deploy --require-approval never

.PHONY: destroy
destroy: infra/node_modules ## Delete the deployed stack (the table survives unless STEPFLOW_DELETION_PROTECTION=false was deployed)
	cd infra && $(CDK_ENV) npx cdk destroy --force

.PHONY: deploy-local
deploy-local: build infra/node_modules ## Deploy the same stack to LocalStack (docker compose -f localstack.yml up -d first)
	cd infra && $(CDK_ENV) STEPFLOW_DELETION_PROTECTION=false npx cdklocal bootstrap && \
	  $(CDK_ENV) STEPFLOW_DELETION_PROTECTION=false npx cdklocal deploy --require-approval never
