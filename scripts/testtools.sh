#!/usr/bin/env bash
# Installs the test tools `make test` needs besides the dev stack, idempotently:
#   schemathesis (PyPI), pinned, in a venv under the cache: checks the control API against its
#   OpenAPI document (internal/control/contract_test.go).
#   chromium and chromium-driver (Debian's packages, apt-get when missing and root): the console's
#   browser tests (internal/console/browser_test.go) drive a headless Chromium through chromedp.
# Environment: OWLPOST_CACHE (default $HOME/.cache/owlpost). Needs python3 with venv
# (apt-get install python3-venv).
set -euo pipefail

readonly CACHE_DIR="${OWLPOST_CACHE:-${HOME}/.cache/owlpost}"
readonly VENV="${CACHE_DIR}/venv"
readonly SCHEMATHESIS_VERSION=4.32.5

log() { printf 'testtools: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

schemathesis() {
	if [[ -x "${VENV}/bin/schemathesis" ]] &&
		[[ "$("${VENV}/bin/schemathesis" --version 2>/dev/null)" == *"version ${SCHEMATHESIS_VERSION}" ]]; then
		return
	fi
	command -v python3 >/dev/null || die "python3 not found: apt-get install python3 python3-venv"
	log "installing schemathesis ${SCHEMATHESIS_VERSION} into ${VENV}"
	mkdir -p "${CACHE_DIR}"
	[[ -x "${VENV}/bin/pip" ]] || python3 -m venv "${VENV}" || die "python3 -m venv failed: apt-get install python3-venv"
	"${VENV}/bin/pip" install -q "schemathesis==${SCHEMATHESIS_VERSION}" >&2 || die "pip install schemathesis failed"
}

# Debian's chromium and chromium-driver, installed the way scripts/devstack.sh installs redis-server.
require_chromium() {
	if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
		return
	fi
	if [[ "$(id -u)" -ne 0 ]]; then
		die "chromium not found: sudo apt-get install -y chromium chromium-driver"
	fi
	log "installing chromium and chromium-driver from Debian's packages"
	{ DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; } >&2 ||
		die "apt-get install chromium chromium-driver failed"
	command -v chromium >/dev/null || die "chromium still not found after apt-get install"
}

schemathesis
require_chromium
echo "OWLPOST_CHROMIUM=$(command -v chromium)"
echo "OWLPOST_SCHEMATHESIS=${VENV}/bin/schemathesis"
