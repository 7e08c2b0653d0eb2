#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this) and as a newcomer runs it on a
# fresh machine. Installs what the tests need, then: format check, clippy with warnings denied,
# every test in the workspace (unit, property, real-vector, fixture and CLI tests).
#
# Real evidence vectors are read from ../shared/vectors (override with ATTEST_VECTORS=DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# System packages the tests need, installed only when missing.
need_pkgs=()
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc)
# attest-sidecar: links libtss2 (tss-esapi, found with pkg-config); its tests start swtpm
# (swtpm_setup with a local CA from swtpm-tools) and cross-check with tpm2-tools.
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
dpkg -s libtss2-dev >/dev/null 2>&1 || need_pkgs+=(libtss2-dev)
command -v swtpm >/dev/null 2>&1 || need_pkgs+=(swtpm)
command -v swtpm_setup >/dev/null 2>&1 || need_pkgs+=(swtpm-tools)
command -v tpm2_checkquote >/dev/null 2>&1 || need_pkgs+=(tpm2-tools)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

vectors=${ATTEST_VECTORS:-$PWD/../shared/vectors}
if [ ! -f "$vectors/README.md" ]; then
  echo "real evidence vectors not found at $vectors (set ATTEST_VECTORS)" >&2
  exit 1
fi
export ATTEST_VECTORS=$vectors

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
