"""The facilitator's HTTP API (x402 v2): POST /verify, POST /settle, GET /supported.

Always HTTP 200 with the protocol's JSON: a malformed body is `isValid: false` /
`success: false` with `invalid_payload`, never an HTTP error, because x402 clients treat any
non-200 answer as a broken facilitator.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from offchain.x402.facilitator import Facilitator
from offchain.x402.models import SettleResponse, VerifyResponse
from offchain.x402.settlement import INVALID_PAYLOAD


async def _json_body(request: Request) -> dict | None:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def create_app(facilitator: Facilitator) -> FastAPI:
    app = FastAPI(title="Agent L2 x402 facilitator", docs_url=None, redoc_url=None)

    @app.get("/supported")
    async def supported() -> JSONResponse:
        return JSONResponse(facilitator.supported().wire())

    @app.post("/verify")
    async def verify(request: Request) -> JSONResponse:
        body = await _json_body(request)
        if body is None:
            answer = VerifyResponse(
                isValid=False, invalidReason=INVALID_PAYLOAD, invalidMessage="body is not JSON"
            )
        else:
            answer = await run_in_threadpool(facilitator.verify, body)
        return JSONResponse(answer.wire())

    @app.post("/settle")
    async def settle(request: Request) -> JSONResponse:
        body = await _json_body(request)
        if body is None:
            answer = SettleResponse(
                success=False,
                errorReason=INVALID_PAYLOAD,
                errorMessage="body is not JSON",
                network="",
            )
        else:
            answer = await run_in_threadpool(facilitator.settle, body)
        return JSONResponse(answer.wire())

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"ok": True, "networks": facilitator.networks})

    return app
