"""Our services as real processes (the console scripts of pyproject.toml), for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_facilitator(chain, key, token, db: Path, port: int) -> subprocess.Popen:
    return _launch(
        "agentl2-facilitator",
        port,
        AGENTL2_FACILITATOR_RPC_URL=chain.provider.http_uri,
        AGENTL2_FACILITATOR_PRIVATE_KEY=key,
        AGENTL2_FACILITATOR_ASSETS=token.address,
        AGENTL2_FACILITATOR_DB_PATH=str(db),
        AGENTL2_FACILITATOR_PORT=str(port),
    )


def start_service(
    chain, token, merchant, facilitator_url: str, port: int, price: int = 25_000, db: Path | None = None
) -> subprocess.Popen:
    """The paid weather service; `db` is its record of deliveries (a throw-away file if None)."""
    return _launch(
        "agentl2-paid-service",
        port,
        AGENTL2_SERVICE_RPC_URL=chain.provider.http_uri,
        AGENTL2_SERVICE_FACILITATOR_URL=facilitator_url,
        AGENTL2_SERVICE_ASSET=token.address,
        AGENTL2_SERVICE_PAY_TO=merchant.address,
        AGENTL2_SERVICE_PRICE=str(price),
        AGENTL2_SERVICE_PORT=str(port),
        AGENTL2_SERVICE_DB_PATH=str(db) if db else ":memory:",
    )


def _launch(script: str, port: int, **env: str) -> subprocess.Popen:
    """Starts a console script and waits until its /health answers."""
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name(script))],
        cwd=ROOT,
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            raise RuntimeError(f"{script} exited: {process.stderr.read().decode()}")
    process.kill()
    raise RuntimeError(f"{script} did not start on port {port}")
