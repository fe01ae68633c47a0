"""Schemathesis over the node's OpenAPI: generated requests to every operation of a live
node (real uvicorn with the node's HTTP limits, SQLite, a task with an open epoch, admin
token supplied), valid and schema-breaking inputs alike, checking that nothing answers
5xx. Bounded: EXAMPLES per operation (about 15 s at 30; 200 take about a minute), so the
run stays well under two minutes in CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from rollup.api.app import openapi_doc  # noqa: E402
from rollup.config import NodeConfig  # noqa: E402
from rollup.node import start_node  # noqa: E402
from state_machine.actions import PublishGenesisBody, make_action  # noqa: E402

from .helpers import CHAIN_ID, deposit_body, members, task_body, task_params  # noqa: E402

EXAMPLES = int(os.environ.get("FLOCKCHAIN_FUZZ_EXAMPLES", "30"))
TOKEN = "fuzz-admin-token-0123456789abcdef"


@schemathesis.serializer("application/msgpack")
def _msgpack(_ctx: Any, value: Any) -> bytes:
    """Generated binary bodies go out as they are (the node decodes them bounded)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode()


schema = schemathesis.openapi.from_dict(openapi_doc())
# both valid inputs and inputs that break the schema (ints >= 2^63, bad hex, wrong types)
schema.config.generation.update(modes=list(schemathesis.GenerationMode))


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = NodeConfig(db_url=f"sqlite:///{tmp}/chain.db", chain_id=CHAIN_ID, port=0,
                     block_time=0.05, sequencer_key_file=tmp / "seq.key", admin_token=TOKEN,
                     admin_failures_per_minute=10_000)
    with start_node(cfg) as node:
        seq = node.sequencer
        ms = members(5)
        for i, m in enumerate(ms):
            seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
        genesis = np.zeros(8, np.int32)
        seq.submit_l1_event("l1_task_created", task_body(1, task_params(8, genesis), 100))
        ack = seq.submit(make_action(ms[0].seed, "publish_genesis", CHAIN_ID, 0,
                                     PublishGenesisBody(1, genesis.tobytes()),
                                     ms[0].pubkey).encode())
        assert ack.action_hash
        yield node.url


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any, node_url: str) -> None:
    response = case.call(base_url=node_url, headers={"authorization": f"Bearer {TOKEN}"},
                         timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
