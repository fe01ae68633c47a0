# syntax=docker/dockerfile:1
# The FLockChain image: node, aggregator, verifier, client, deploy and task commands
# (`flockchain ...`) plus anvil (the pinned npm build from package-lock.json), so the whole
# docker-compose.yml runs from this one image (postgres aside).

# ---- anvil, exactly the version package-lock.json pins
FROM node:20-bookworm-slim AS anvil
WORKDIR /n
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --silent \
 && test -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

# ---- Python dependencies (compilers stay in this stage: safe-pysha3 builds from source)
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# CPU-only torch wheels: the default index would pull several GB of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip wheel \
 && /opt/venv/bin/pip install --extra-index-url "${TORCH_INDEX}" -r /tmp/requirements.lock
# the multi-buffer keccak (state_machine/keccak_native.py loads it; same digests without it)
COPY native/keccak /src/native/keccak
RUN mkdir -p /src/native/build \
 && gcc -O3 -fPIC -shared -o /src/native/build/libflockkeccak.so /src/native/keccak/keccak_multi.c

# ---- runtime
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLOCKCHAIN_ANVIL=/usr/local/bin/anvil \
    FLOCKCHAIN_ARTIFACTS_DIR=/app/contracts/out
COPY --from=build /opt/venv /opt/venv
COPY --from=anvil /n/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil /usr/local/bin/anvil
WORKDIR /app
COPY pyproject.toml README.md ./
COPY state_machine state_machine
COPY sequencer sequencer
COPY rollup rollup
COPY bridge bridge
COPY federated federated
COPY devtools devtools
COPY blobstore blobstore
COPY --from=build /src/native/build native/build
COPY contracts/out contracts/out
RUN pip install --no-deps -e . \
 && flockchain --help > /dev/null \
 && anvil --version

# `healthcheck URL [jsonrpc]` (2xx answer; a JSON-RPC eth_blockNumber with `jsonrpc`) or
# `healthcheck --file F --max-age S` (a heartbeat file touched by aggregator/client loops).
COPY --chmod=755 <<'PY' /usr/local/bin/healthcheck
#!/usr/bin/env python3
import json
import os
import sys
import time
import urllib.request

args = sys.argv[1:]
try:
    if args[:1] == ["--file"]:
        age = time.time() - os.path.getmtime(args[1])
        limit = float(args[3]) if args[2:3] == ["--max-age"] else 60.0
        sys.exit(0 if age <= limit else 1)
    data, headers = None, {}
    if args[1:2] == ["jsonrpc"]:
        data = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                           "params": []}).encode()
        headers = {"content-type": "application/json"}
    req = urllib.request.Request(args[0], data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=3) as r:
        sys.exit(0 if 200 <= r.status < 300 else 1)
except Exception as exc:
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
PY

RUN useradd --create-home --uid 10001 flock \
 && mkdir -p /data /shared /secrets \
 && chown flock:flock /data /shared /secrets \
 && chmod 700 /secrets
USER flock
VOLUME ["/data"]
EXPOSE 8700 8710 8545
CMD ["flockchain", "node"]
