# lambda-crud-detector. `make demo` tries the detector locally; `make test` runs every test.
# Both create the Python 3.13 environment on first use, and neither needs an AWS account. `make findings`,
# `make redrive` and `make backtest` are shortcuts for the `lambda-crud-detector` command (docs/cli.md), which
# reads or acts on a real account with your own AWS credentials.

PYTHON ?= python3.13
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BUILD_DIR := .aws-sam/build
BUILT := $(BUILD_DIR)/DetectorFunction/app.py
EVENT ?= events/update-function-code-by-iam-user.json

# sam and the tests find python3.13 and every tool in the environment, without telemetry.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0

# Targets that never leave this machine sign with placeholder credentials, whatever the caller's environment
# holds, and get a Region so that boto3 and sam can start (invoke's function writes to the local Security Hub
# that env/local.json names). Only these: any other target (findings, redrive, backtest) uses the caller's own credential
# chain (environment, AWS_PROFILE, SSO) and Region, which environment credentials set here would override.
OFFLINE_TARGETS := demo test test-docker bench invoke
$(OFFLINE_TARGETS): export AWS_ACCESS_KEY_ID = testing
$(OFFLINE_TARGETS): export AWS_SECRET_ACCESS_KEY = testing
$(OFFLINE_TARGETS): export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: demo test test-docker lint venv build validate invoke docker-available findings backtest bench clean

demo: $(BUILT)  ## Run every sample event through the built function on a local Security Hub
	$(BIN)/python -m tests.support.demo

test: lint  ## Lint and type-check, then run the whole test suite (unit, template, build, end-to-end)
	$(BIN)/python -m pytest

lint: $(INSTALLED)  ## ruff's lint rules and format check, and mypy's type checks (configured in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy functions/detector lambda_crud_detector bench tests/support

venv: $(INSTALLED)

$(INSTALLED): requirements-dev.txt functions/detector/requirements.txt pyproject.toml
	@echo "==> Creating the Python 3.13 environment in $(VENV) (first run only; this takes a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -r requirements-dev.txt
	@touch $@

build: $(BUILT)

$(BUILT): $(INSTALLED) template.yaml $(wildcard stacks/*.yaml) $(wildcard functions/detector/*.py) functions/detector/requirements.txt functions/detector/Makefile
	@echo "==> sam build"
	$(BIN)/sam build --template-file template.yaml --build-dir $(BUILD_DIR)
	@touch $@

validate: $(INSTALLED)  ## sam validate with cfn-lint on the template and its nested ones, cfn-lint on the member template
	$(BIN)/sam validate --template-file template.yaml --lint
	for nested in stacks/*.yaml; do $(BIN)/sam validate --template-file $$nested --lint || exit 1; done
	$(BIN)/cfn-lint deploy/member-forwarder.yaml

# Local runs use this machine's architecture, so that Docker runs the function's image without emulation;
# deployments keep the template's (arm64). The artifact is pure Python, so the same build runs on both.
HOST_MACHINE = $(shell uname -m)
LOCAL_ARCHITECTURE ?= $(if $(filter aarch64 arm64,$(HOST_MACHINE)),arm64,x86_64)
ENV_VARS ?= env/local.json
# More `sam local invoke` options, e.g. --skip-pull-image offline, when the Lambda image is already loaded.
SAM_INVOKE_FLAGS ?=

# sam looks for samconfig.toml beside the template it is given, so the project's is named. checked_invoke exits
# non-zero when the function raised or gave no answer (timeout), where sam local invoke alone exits 0.
invoke: docker-available $(BUILT)  ## sam local invoke (needs Docker): make invoke EVENT=events/<file>.json
	$(BIN)/python -m tests.support.checked_invoke $(BIN)/sam local invoke DetectorFunction \
		--template $(BUILD_DIR)/template.yaml --config-file $(CURDIR)/samconfig.toml \
		--parameter-overrides Architecture=$(LOCAL_ARCHITECTURE) \
		--event $(EVENT) --env-vars $(ENV_VARS) $(SAM_INVOKE_FLAGS)

test-docker: $(BUILT)  ## Every sample event through `make invoke` (needs Docker), against a local Security Hub
	$(BIN)/python -m pytest -m docker

# Checked before building, so that a machine without Docker hears so at once.
docker-available:
	@command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || { \
		echo "make invoke needs a running Docker engine, and none answers here."; \
		echo "Run 'make demo' instead: it runs the same built function under the Lambda runtime emulator, without Docker."; \
		exit 1; }

# The lambda-crud-detector command (lambda_crud_detector/cli.py), run from this checkout's sources even when
# the environment was installed from another checkout.
CLI = $(BIN)/python -m lambda_crud_detector

findings: $(INSTALLED)  ## List this detector's findings: make findings ARGS="--since 1d --json"
	$(CLI) findings $(ARGS)

# Reads real AWS (LookupEvents, S3, Athena, Security Hub with --import) through your own credential chain.
backtest: $(INSTALLED)  ## Judge stored CloudTrail history with the live rule: make backtest ARGS="--path DIR --json"
	$(CLI) backtest $(ARGS)

# Imports one labelled test finding into a real account, looks for it in both Security Hubs, then archives it.
.PHONY: securityhub-check
securityhub-check: $(INSTALLED)  ## Which Security Hub shows the findings: make securityhub-check ARGS="--region us-east-1"
	$(CLI) securityhub-check $(ARGS)

.PHONY: redrive
redrive: $(INSTALLED)  ## Send the events the deployed detector failed on back to it: make redrive ARGS="--dry-run"
	$(CLI) redrive $(ARGS)

bench: $(BUILT)  ## Cold start, warm CPU, memory, package size, pattern cost and backtest speed, each against its baseline
	$(BIN)/python -m bench.run

clean:
	rm -rf .aws-sam .local
