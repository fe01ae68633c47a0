"""Running a node: open the sequencer from a config, serve the API, in-process or not.

Why an in-process handle: the demo, the bridge's tests and our own tests need a real HTTP
node on a free port without a subprocess; ``start_node`` runs uvicorn on a background
thread and returns a handle with ``.url``, ``.sequencer`` and ``.stop()``.

    from rollup.config import NodeConfig
    from rollup.node import start_node

    with start_node(NodeConfig(db_url="sqlite:///tmp/x.db", port=0, chain_id=7)) as node:
        print(node.url)                      # http://127.0.0.1:PORT
        node.sequencer.submit_l1_event(...)  # bridge path
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from blobstore import open_blobstore
from rollup.api import create_app
from rollup.config import NodeConfig
from rollup.http_limits import HttpLimits, protocol_class
from rollup.keys import load_or_create
from rollup.metrics import Metrics
from sequencer.mempool_guard import Limits
from sequencer.sequencer import Sequencer, SequencerConfig
from sequencer.store import Store

log = logging.getLogger("flockchain.node")


def sequencer_config(config: NodeConfig, produce_blocks: bool = True) -> SequencerConfig:
    return SequencerConfig(
        chain_id=config.chain_id,
        protocol=config.protocol,
        block_time=config.block_time,
        max_block_actions=config.max_block_actions,
        max_action_bytes=config.max_body_bytes,
        snapshot_interval=config.snapshot_interval,
        snapshots_kept=config.snapshots_kept,
        group_commit_max=config.group_commit_max,
        group_commit_wait=config.group_commit_wait,
        produce_blocks=produce_blocks,
        limits=Limits(enabled=config.admission_limits,
                      unstaked_per_hour=config.unstaked_actions_per_hour,
                      sender_pending_max=config.sender_pending_max,
                      mempool_max=config.mempool_max),
    )


def adopt_chain_id(config: NodeConfig, store: Store) -> NodeConfig:
    """An existing database's chain id, unless the operator set one (flag, env or file).
    Why: ``flockchain node --db sqlite:///demo.db`` should serve the demo's chain (31337)
    without the operator having to know its id; an explicit, different id still fails."""
    if "chain_id" in config.model_fields_set:
        return config
    store.create()
    stored = store.get_meta("chain_id")
    if stored is None or int(stored) == config.chain_id:
        return config
    log.info("adopting chain id %s from the database", stored)
    return config.model_copy(update={"chain_id": int(stored)})


def http_limits(config: NodeConfig) -> HttpLimits:
    """The server's limits; the connection cap is kept below the file-descriptor limit
    (raised to the hard limit if needed) so accept() never fails for lack of descriptors
    and the cap, not the kernel, decides which connection goes."""
    fd_room = _raise_nofile(config.max_connections + 128) - 128
    return HttpLimits(max_header_bytes=config.max_header_bytes, max_headers=config.max_headers,
                      idle_timeout=config.idle_timeout, header_timeout=config.header_timeout,
                      body_min_rate=config.body_min_rate, body_grace=config.body_grace,
                      max_connections=max(8, min(config.max_connections, fd_room)))


def _raise_nofile(want: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``want`` (within the hard limit); the result."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return want
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want and (hard == resource.RLIM_INFINITY or soft < hard):
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def uvicorn_config(app: FastAPI, config: NodeConfig, log_level: str = "warning"
                   ) -> uvicorn.Config:
    """uvicorn settings of a node: the limited protocol class (``rollup.http_limits``),
    keep-alive = idle timeout, no access log."""
    return uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False,
                          http=protocol_class(http_limits(config)),
                          timeout_keep_alive=max(1, int(config.idle_timeout)),
                          backlog=2048)


def open_sequencer(config: NodeConfig, *, clock: Callable[[], int] | None = None,
                   produce_blocks: bool = True, metrics: Metrics | None = None) -> Sequencer:
    """Open (and recover) the sequencer described by ``config``; not started yet."""
    key = load_or_create(config.sequencer_key_file)
    store = Store(config.db_url, blob_dir=config.blob_dir,
                  blobstore=open_blobstore(config.blob_store_url) if config.blob_store_url
                  else None)
    config = adopt_chain_id(config, store)
    return Sequencer(store, key.seed, sequencer_config(config, produce_blocks), clock=clock,
                     hooks=metrics)


def create_node_app(config: NodeConfig, *, clock: Callable[[], int] | None = None,
                    produce_blocks: bool = True) -> FastAPI:
    """An ASGI app that owns its sequencer (started/stopped by the app's lifespan)."""
    metrics = Metrics()
    seq = open_sequencer(config, clock=clock, produce_blocks=produce_blocks, metrics=metrics)
    return create_app(seq, config, metrics)


@dataclass
class NodeHandle:
    """A node serving HTTP on a background thread."""

    url: str
    sequencer: Sequencer
    app: FastAPI
    config: NodeConfig
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop serving, stop the sequencer, close the database."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> NodeHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def start_node(config: NodeConfig, *, clock: Callable[[], int] | None = None,
               produce_blocks: bool = True, startup_timeout: float = 30.0) -> NodeHandle:
    """Serve a node in this process (port 0 = a free port); returns once it accepts
    requests."""
    app = create_node_app(config, clock=clock, produce_blocks=produce_blocks)
    sock = _bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn_config(app, config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="flockchain-node", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("node failed to start")
        time.sleep(0.01)
    url_host = f"[{host}]" if ":" in host else host
    return NodeHandle(f"http://{url_host}:{port}", app.state.sequencer, app, config, server,
                      thread)


GC_GEN0_THRESHOLD = 10_000


def tune_gc(gen0: int = GC_GEN0_THRESHOLD) -> None:
    """The node process's cyclic garbage collector, tuned for a server (``flockchain node``
    only; an in-process node leaves its host's settings alone). Why: every action allocates
    dozens of container objects that reference counting alone frees, yet they drive a
    young collection every 700 allocations and, every 100 of those, a full one that walks
    every object (the imported modules, the app, the recovered state). ``gc.freeze()``
    takes what exists after startup out of the collector's sight, and a larger first
    threshold makes young collections rarer; cycles are still collected. Measured on the
    sequencer alone (4,000 small actions, one block): block production took 74–80 µs of
    CPU per action with the collector as it was, 48–55 µs with it off."""
    gc.collect()
    gc.freeze()
    if gen0 > 0:
        _, g1, g2 = gc.get_threshold()
        gc.set_threshold(gen0, g1, g2)


def serve(config: NodeConfig, *, ready: Callable[[str], None] | None = None) -> None:
    """Run a node in the foreground until SIGINT/SIGTERM (the ``flockchain node`` command)."""
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_node_app(config)
    tune_gc()
    sock = _bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn_config(app, config, config.log_level))
    seq: Sequencer = app.state.sequencer
    log.info("chain %d at height %d; sequencer 0x%s; listening on %s:%d",
             seq.chain_id, seq.height, seq.pubkey.hex(), host, port)
    if ready is not None:
        ready(f"http://{host}:{port}")
    server.run(sockets=[sock])
