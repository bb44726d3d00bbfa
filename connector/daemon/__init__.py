"""``crmsync daemon``: scheduled cycles and the webhook server in one process, until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from connector.app import open_engine
from connector.config import Config, ConfigError
from connector.daemon import logs
from connector.daemon.leases import single_daemon_guard
from connector.daemon.web import create_app
from connector.daemon.worker import Daemon, DaemonOptions, StopSink

__all__ = ["DaemonOptions", "run_daemon"]
log = logging.getLogger("crmsync.daemon")


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {listen} ({exc.strerror})", key="webhooks.listen") from None
    sock.listen(2048)
    return sock


def run_daemon(config: Config, options: DaemonOptions, *, announce: Callable[[dict[str, Any]], None]) -> int:
    """Run until a signal; 0 after a clean stop, 1 when the batch in hand outlived the shutdown timeout."""
    logs.configure(options.log_format)
    stopping, lease_lost = threading.Event(), threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # first thing: a signal during start-up is a clean stop too
        signal.signal(sig, lambda *_: stopping.set())
    with single_daemon_guard(config.state.url) as alone:
        sock = _bind(options.listen or config.webhooks.listen)
        with open_engine(config, progress=StopSink(stopping, lease_lost)) as engine:
            logs.use_email_key(engine.store.email_key)
            daemon = Daemon(config, engine, options, stopping, lease_lost)
            if alone:
                daemon.leases.clear_holders()
            server = uvicorn.Server(uvicorn.Config(create_app(daemon), log_config=None, access_log=False,
                                                   lifespan="off", timeout_graceful_shutdown=5))
            daemon.start()
            web = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="webhooks", daemon=True)
            web.start()
            host, port = sock.getsockname()[:2]
            log.info("listening", extra={"listen": f"{host}:{port}", "replica": daemon.holder})
            announce({"listen": f"{host}:{port}", "replica": daemon.holder, "pid": os.getpid()})
            while not stopping.wait(0.5):
                if not web.is_alive():
                    log.error("webhook server stopped unexpectedly")
                    stopping.set()
            log.info("stopping: no new work; finishing the batch in hand")
            server.should_exit = True
            finished = daemon.stop()
            web.join(timeout=10)
            sock.close()
    if not finished:
        sys.stderr.flush()
        os._exit(1)  # a worker thread is still inside a provider call: do not wait for it
    return 0
