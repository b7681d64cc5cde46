"""The replica node's read API (JSON; docs/services.md, Node API): the same reads as the
sequencer's, of the derived state, and the claims the node disagrees with.

GET /v1/accounts/{a}/balance   ?token=0x… (ETH by default)
GET /v1/accounts/{a}/nonce
GET /v1/batches/{i}/root       the state root after batch i, as derived
GET /v1/disagreements          standing claims whose root is not the derived one
GET /v1/status                 batches applied, the last L2 block stored
"""

from __future__ import annotations

import threading

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from offchain.node.replica import ReplicaNode
from offchain.sequencer.api import add_account_reads, refusal


def create_app(node: ReplicaNode, lock: threading.Lock) -> FastAPI:
    app = FastAPI(title="Agent L2 replica node", docs_url=None, redoc_url=None)

    def locked(function, *args):
        with lock:  # shared with the sync loop: reads see a whole batch or none of it
            return function(*args)

    add_account_reads(app, node, locked)

    @app.get("/v1/batches/{index}/root")
    async def root(index: int) -> JSONResponse:
        synced = node.synced
        if synced is None or not 0 <= index <= synced[0]:
            return refusal(404, f"batch {index} is not derived yet")
        return JSONResponse(
            {"batch": index, "root": "0x" + (await run_in_threadpool(locked, node.batch_root, index)).hex()}
        )

    @app.get("/v1/disagreements")
    async def disagreements() -> JSONResponse:
        found = await run_in_threadpool(locked, node.disagreements)
        return JSONResponse(
            [{"batch": i, "claimed": "0x" + c.hex(), "derived": "0x" + d.hex()} for i, c, d in found]
        )

    @app.get("/v1/status")
    async def status() -> JSONResponse:
        synced = node.synced
        return JSONResponse(
            {"batches": 0 if synced is None else synced[0] + 1, "latest_l2_block": node.store.latest()}
        )

    return app
