"""The sequencer's HTTP API (JSON; the schema is docs/services.md, Sequencer API).

POST /v1/transactions            {"record": "0x…"} → a signed soft confirmation (200), or a refusal
GET  /v1/transactions/{hash}     the receipt: soft, posted (batch, status) or final
GET  /v1/accounts/{a}/balance    ?token=0x… (ETH by default), of the pending state
GET  /v1/accounts/{a}/nonce      the next nonce, of the pending state
GET  /v1/accounts/{a}/proof      ?token=0x…: the balance leaf's proof under the last posted root
GET  /v1/sequencer               who signs the confirmations, for which rollup

Refusals are 4xx with {"error": "…", "status": "<STF status>" | null}: 400 for a malformed body
or record and for a transaction that would fail, 409 for one already confirmed, 413 for a body
over 4 KiB, 404 for an unknown transaction, 503 (with the leader's address) while another
operator leads the slot, 503 with Retry-After (and the next leader's address, once drawn) in the
slot's closing blocks, and 503 with Retry-After while a backlog of batches waits to be posted.
A refused request changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from offchain.l2.stf import balance_key
from offchain.sequencer.core import Busy, Rejected
from offchain.sequencer.service import NotLeader, SequencerService, SlotClosing

MAX_BODY = 4_096  # the longest record is 190 bytes: 4 KiB leaves room for JSON, never for abuse
MAX_DROPPED = 1_000  # the latest dropped transactions `GET /v1/dropped` lists
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
ETH = "0x" + "00" * 20


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record: str = Field(pattern=r"^0x([0-9a-fA-F]{2})+$", max_length=2 + 2 * 512)


class _Address(BaseModel):
    address: str = Field(pattern=ADDRESS)


def refusal(code: int, error: str, status: str | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "status": status}, status_code=code)


def address_or_none(value: str) -> str | None:
    try:
        return _Address(address=value).address
    except ValidationError:
        return None


def add_account_reads(app: FastAPI, state: Any, locked: Callable) -> None:
    """GET /v1/accounts/{a}/balance, /nonce and /authorizations/{nonce} of `state` (anything
    with `balance(account, token)`, `nonce(account)` and `authorization_used(account, nonce)`:
    the sequencer's pending state, the node's derived one)."""

    @app.get("/v1/accounts/{account}/balance")
    async def balance(account: str, token: str = ETH) -> JSONResponse:
        if address_or_none(account) is None or address_or_none(token) is None:
            return refusal(400, "account and token are 20-byte hex addresses")
        amount = await run_in_threadpool(locked, state.balance, account, token)
        return JSONResponse({"account": account, "token": token, "balance": str(amount)})

    @app.get("/v1/accounts/{account}/nonce")
    async def nonce(account: str) -> JSONResponse:
        if address_or_none(account) is None:
            return refusal(400, "the account is a 20-byte hex address")
        return JSONResponse(
            {"account": account, "nonce": await run_in_threadpool(locked, state.nonce, account)}
        )

    @app.get("/v1/accounts/{account}/authorizations/{nonce}")
    async def authorization(account: str, nonce: str) -> JSONResponse:
        if address_or_none(account) is None or not re.fullmatch(r"0x[0-9a-fA-F]{64}", nonce):
            return refusal(400, "the account is a 20-byte hex address, the nonce 32 bytes of hex")
        used = await run_in_threadpool(locked, state.authorization_used, account, bytes.fromhex(nonce[2:]))
        return JSONResponse({"account": account, "nonce": nonce.lower(), "used": used})


def create_app(service: SequencerService) -> FastAPI:
    app = FastAPI(title="Agent L2 sequencer", docs_url=None, redoc_url=None)
    sequencer = service.core

    def locked(function, *args):
        with service.lock:  # the core is one state machine: one caller inside it at a time
            service.catch_up()  # what L1 holds since the last read, if its head moved
            return function(*args)

    @app.post("/v1/transactions")
    async def submit(request: Request) -> JSONResponse:
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return refusal(413, f"body over {MAX_BODY} bytes")
        body = await request.body()
        if len(body) > MAX_BODY:
            return refusal(413, f"body over {MAX_BODY} bytes")
        try:
            parsed = SubmitRequest.model_validate(json.loads(body))
        except (ValueError, UnicodeDecodeError, ValidationError):
            return refusal(400, 'the body must be {"record": "0x<hex>"}')
        try:
            # On the event loop itself: the core is one state machine behind one lock, a submit is
            # ~0.2 ms of work, and a hop to the thread pool would cost more than the work.
            confirmation = service.submit(bytes.fromhex(parsed.record[2:]))
        except SlotClosing as exc:  # the next leader's slot begins within a block or two
            answer = refusal(503, str(exc))
            answer.headers["retry-after"] = "1"
            return answer
        except NotLeader as exc:
            return refusal(503, str(exc))
        except Busy as exc:
            answer = refusal(503, str(exc))
            answer.headers["retry-after"] = "1"
            return answer
        except Rejected as exc:
            code = 409 if "already confirmed" in str(exc) else 400
            return refusal(code, str(exc), exc.status.name if exc.status is not None else None)
        return JSONResponse(confirmation.model_dump())

    @app.get("/v1/dropped")
    async def dropped() -> JSONResponse:
        # Confirmed here, then lost to a slot that passed unposted, and not sent here again:
        # whoever holds such a record (its payer, a facilitator) may submit it to the leader.
        hashes = await run_in_threadpool(locked, lambda: list(sequencer.dropped)[-MAX_DROPPED:])
        return JSONResponse({"dropped": hashes})

    @app.get("/v1/transactions/{txn_hash}")
    async def receipt(txn_hash: str) -> JSONResponse:
        found = await run_in_threadpool(locked, sequencer.receipt, txn_hash.lower())
        if found is None:
            return refusal(404, f"no transaction {txn_hash} was confirmed here")
        return JSONResponse(
            {
                "tx_hash": found.tx_hash,
                "stage": found.stage,
                "status": found.status,
                "batch": found.batch,
                "confirmation": found.confirmation.model_dump(),
            }
        )

    add_account_reads(app, sequencer, locked)

    @app.get("/v1/accounts/{account}/proof")
    async def proof(account: str, token: str = ETH) -> JSONResponse:
        if address_or_none(account) is None or address_or_none(token) is None:
            return refusal(400, "account and token are 20-byte hex addresses")

        def prove() -> dict:
            state = sequencer.base
            key = balance_key(account, token)
            return {
                "batch": len(sequencer.derivation.batches) - 1,
                "root": "0x" + state.root.hex(),
                "key": "0x" + key.hex(),
                "value": "0x" + (state.read(key) or b"").hex(),
                "proof": "0x" + state.tree.prove(state.root, key).encode().hex(),
            }

        return JSONResponse(await run_in_threadpool(locked, prove))

    @app.get("/v1/sequencer")
    async def info() -> JSONResponse:
        def read() -> dict[str, Any]:
            current = service.view()
            leads = service.leads(current) and not service.closing(current)
            return {
                "address": sequencer.address,
                "chain_id": sequencer.chain_id,
                "inbox": sequencer.inbox.address,
                "leader": current.leader,
                "leads": leads,  # whether it admits transactions now
                "time": sequencer.pending_time(),  # the L2 time a transaction admitted now runs at
            }

        return JSONResponse(await run_in_threadpool(locked, read))

    return app
