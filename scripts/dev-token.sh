#!/usr/bin/env bash
# Second step of the quick start: with `attest-broker serve --dev` running, set up a tenant,
# a policy, an agent and its bootstrap secret through the admin CLI, then get a token the
# way a (simulated) SEV-SNP host does: challenge → evidence bound to nonce and key → attest
# → DPoP refresh.
#
#   ./scripts/dev-token.sh [DATA_DIR]        (default: attest-broker-dev; BROKER=http://…)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-attest-broker-dev}
broker=${BROKER:-http://127.0.0.1:8080}
bin=${ATTEST_BROKER_BIN:-target/release/attest-broker}
[ -x "$bin" ] || cargo build --release -q -p attest-broker
admin() { "$bin" admin --broker "$broker" --credential-file "$data/admin-credential" "$@"; }

measurement=$("$bin" sim-host --roots-dir "$data/simulated-amd" --print-measurement)
policy=$(mktemp)
trap 'rm -f "$policy"' EXIT
cat > "$policy" <<JSON
{
  "audiences": ["agent-tools"],
  "scopes": ["tools:{agent_id}:invoke"],
  "token_ttl_secs": 900,
  "allow_simulated": true,
  "sev_snp": {"measurements": ["$measurement"], "allow_debug": false, "max_vmpl": 0},
  "budget": {"max_tool_calls": 100}
}
JSON

admin tenant create dev >/dev/null || true          # exists after the first run
admin policy put dev sim-hosts --file "$policy"
admin agent create dev sim-host-1 --class sim-hosts >/dev/null || true
rm -f "$data/sim-host-1.bootstrap"
admin bootstrap issue dev sim-host-1 --rotate --out "$data/sim-host-1.bootstrap"
"$bin" sim-host --broker "$broker" --roots-dir "$data/simulated-amd" \
  --bootstrap-file "$data/sim-host-1.bootstrap" --refresh
