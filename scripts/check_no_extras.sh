#!/usr/bin/env bash
# By-hand check (minutes; not run by the test suite): a fresh venv with `pip install .`
# (no extras) has neither torch nor scikit-learn and runs `flockchain node` and
# `flockchain verifier` against anvil; with FL=1 it then adds `.[fl]` and runs the demo.
# tests/infra/test_no_torch.py is the fast, always-run version of the same check.
#   scripts/check_no_extras.sh [WORKDIR]        (default: a new temporary directory)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W="${1:-$(mktemp -d)}"; mkdir -p "$W"; cd "$W"
python3 -m venv venv && B="$W/venv/bin"
"$B/pip" install -q "$ROOT"
for m in torch sklearn; do
  if "$B/python" -c "import $m" 2>/dev/null; then echo "FAIL: $m installed"; exit 1; fi
done
export FLOCKCHAIN_ARTIFACTS_DIR="$ROOT/contracts/out"
ANVIL="${FLOCKCHAIN_ANVIL:-$ROOT/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil}"
"$ANVIL" --port 18545 > anvil.log 2>&1 & PIDS=($!)
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
sleep 2
# anvil's first well-known development key (a local throwaway chain)
echo 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 > owner.key
chmod 600 owner.key
"$B/flockchain" deploy --l1 http://127.0.0.1:18545 --key-file owner.key \
  --sequencer 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 --out dep.json --force | tail -1
"$B/flockchain" node --db "sqlite:///$W/chain.db" --port 18700 --chain-id 7 \
  --key "$W/seq.key" --log-level warning > node.log 2>&1 & PIDS+=($!)
sleep 4
curl -sf http://127.0.0.1:18700/v1/healthz; echo
"$B/flockchain" verifier --l1 http://127.0.0.1:18545 --node http://127.0.0.1:18700 \
  --deployment dep.json --l1-key-file owner.key --chain-id 7 --port 18710 \
  > verifier.log 2>&1 & PIDS+=($!)
sleep 6
curl -sf http://127.0.0.1:18710/healthz; echo
echo "OK: node and verifier run without torch/scikit-learn ($W)"
if [ "${FL:-0}" = 1 ]; then
  "$B/pip" install -q "$ROOT[fl]"
  "$B/flockchain" demo --quick --quiet --json demo.json
  echo "OK: demo with [fl] ($W/demo.json)"
fi
