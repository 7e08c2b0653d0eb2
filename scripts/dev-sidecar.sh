#!/usr/bin/env bash
# With `attest-broker serve --dev` running and `./scripts/dev-token.sh` done (it enrolls the
# agent sim-host-1 and leaves its bootstrap secret in DATA_DIR/sim-host-1.bootstrap), run
# attest-sidecar on simulated SEV-SNP hardware, then ask it for a token and a DPoP proof the
# way an agent does, over its unix socket. Stops the sidecar at the end.
#
#   ./scripts/dev-sidecar.sh [DATA_DIR]      (default: attest-broker-dev; BROKER=http://…)
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(realpath "${1:-attest-broker-dev}")
broker=${BROKER:-http://127.0.0.1:8080}
bin=${ATTEST_SIDECAR_BIN:-target/release/attest-sidecar}
[ -x "$bin" ] || cargo build --release -q -p attest-sidecar
[ -f "$data/sim-host-1.bootstrap" ] || { echo "run ./scripts/dev-token.sh first" >&2; exit 2; }

work=$(mktemp -d)
cat > "$work/sidecar.toml" <<TOML
[broker]
url = "$broker"
[bootstrap]
file = "$data/sim-host-1.bootstrap"
[evidence]
backend = "fixture"
[evidence.fixture]
roots_dir = "$data/simulated-amd"
[socket]
path = "$work/agent.sock"
allowed_uids = [$(id -u)]
TOML
"$bin" run --config "$work/sidecar.toml" --allow-simulated-hardware 2> "$work/sidecar.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT

for _ in $(seq 50); do
  "$bin" token --socket "$work/agent.sock" > "$work/token.json" 2>/dev/null && break
  sleep 0.2
done
[ -s "$work/token.json" ] || { cat "$work/sidecar.log" >&2; exit 1; }
echo "sidecar log:"; sed 's/^/  /' "$work/sidecar.log"
echo "token from the socket (claims):"
payload=$(cut -d'"' -f4 "$work/token.json" | cut -d. -f2 | tr '_-' '/+')
while [ $(( ${#payload} % 4 )) -ne 0 ]; do payload="$payload="; done
echo "  $(printf '%s' "$payload" | base64 -d)"
echo "a DPoP proof for POST https://tools.example/v1/invoke:"
"$bin" proof --socket "$work/agent.sock" --method POST --url https://tools.example/v1/invoke \
  | sed 's/"access_token":"[^"]*"/"access_token":"…"/; s/^/  /'
