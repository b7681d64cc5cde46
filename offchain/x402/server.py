"""Resource-server side of x402 v2: an ASGI middleware that prices routes.

For a priced route it answers 402 with a `PAYMENT-REQUIRED` header until a request carries a
`PAYMENT-SIGNATURE`; then it checks that the payment is for this route at this price, has the
facilitator verify it (which reserves the authorization: a payment serves one request), runs the
handler with its response held back, settles only if the handler succeeded, and releases the
response with a `PAYMENT-RESPONSE` header only once settlement succeeded. A malformed header
gets 400, a refused or unsettled payment 402, never a 5xx of ours; nothing is served unpaid.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
from pydantic import ValidationError

from offchain.chain.eip712 import Eip712Domain
from offchain.x402.models import (
    EXACT,
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    X402_VERSION,
    FacilitatorRequest,
    MalformedHeader,
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
    VerifyResponse,
    decode_header,
    encode_header,
)

Scope = dict[str, Any]

# Settle answers worth asking again, with the same payment, until the offer's timeout.
_RETRY_SETTLE = {"settlement_pending", "unexpected_settle_error"}
_RETRY_EVERY = 0.5


@dataclass(frozen=True)
class Price:
    """What one request of a route costs, in atomic units of an EIP-3009 token."""

    amount: int
    asset: Eip712Domain  # the token, with its EIP-712 domain (x402's extra.name/version)
    pay_to: str
    description: str = ""
    mime_type: str = "application/json"
    max_timeout_seconds: int = 60

    def requirements(self, method: str = "GET") -> PaymentRequirements:
        """The offer for one route; `extra.method` binds a payment to the request's method."""
        return PaymentRequirements(
            scheme=EXACT,
            network=f"eip155:{self.asset.chain_id}",
            asset=self.asset.verifying_contract,
            amount=str(self.amount),
            payTo=self.pay_to,
            maxTimeoutSeconds=self.max_timeout_seconds,
            extra={"name": self.asset.name, "version": self.asset.version, "method": method},
        )


class FacilitatorUnavailable(Exception):
    """The facilitator did not answer with a well-formed 200."""


class FacilitatorClient:
    """Talks to a facilitator's HTTP API."""

    def __init__(self, url: str, timeout: float = 60.0, client: httpx.AsyncClient | None = None):
        self._client = client or httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout)

    async def verify(self, request: FacilitatorRequest) -> VerifyResponse:
        return VerifyResponse.model_validate(await self._post("/verify", request))

    async def settle(self, request: FacilitatorRequest) -> SettleResponse:
        return SettleResponse.model_validate(await self._post("/settle", request))

    async def _post(self, path: str, request: FacilitatorRequest) -> dict:
        try:
            response = await self._client.post(path, json=request.wire())
            if response.status_code != 200:
                raise FacilitatorUnavailable(f"{path} answered HTTP {response.status_code}")
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise FacilitatorUnavailable(f"{path}: {exc}") from None

    async def aclose(self) -> None:
        await self._client.aclose()


class PaymentMiddleware:
    """ASGI middleware charging for the routes of `prices`, keyed by (METHOD, path)."""

    def __init__(self, app: Any, facilitator: FacilitatorClient, prices: dict[tuple[str, str], Price]):
        self.app = app
        self.facilitator = facilitator
        self.prices = {(method.upper(), path): price for (method, path), price in prices.items()}
        # Payments whose settlement was still pending when we answered 402: if the payer comes
        # back with the same payment once it settled, it is served then, once. (Forgotten on a
        # restart, which errs on the side of not serving.)
        self._pending: set[str] = set()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method = scope["method"].upper()
        price = self.prices.get((method, scope["path"])) or (
            self.prices.get(("GET", scope["path"])) if method == "HEAD" else None
        )
        if price is None:
            return await self.app(scope, receive, send)
        await self._paid(scope, receive, send, price)

    async def _paid(self, scope: Scope, receive: Any, send: Any, price: Price) -> None:
        resource = ResourceInfo(url=_url(scope), description=price.description, mimeType=price.mime_type)
        method = "GET" if scope["method"].upper() == "HEAD" else scope["method"].upper()
        requirements = price.requirements(method)
        header = _header(scope, PAYMENT_SIGNATURE)
        if header is None or scope["method"].upper() == "HEAD":
            return await _payment_required(
                send, resource, requirements, f"{PAYMENT_SIGNATURE} header is required"
            )
        try:
            payload = decode_header(header, PaymentPayload)
        except MalformedHeader as exc:
            return await _json(
                send, 400, {"error": str(exc)}, {PAYMENT_REQUIRED: _required(resource, requirements)}
            )
        if payload.x402Version != X402_VERSION:
            return await _payment_required(send, resource, requirements, "x402Version must be 2")
        if not payload.accepted.same_offer(requirements):
            return await _payment_required(send, resource, requirements, "the payment is not for these terms")
        if payload.resource is None or urlparse(payload.resource.url).path != scope["path"]:
            return await _payment_required(
                send, resource, requirements, "the payment is for another resource"
            )

        request = FacilitatorRequest(paymentPayload=payload, paymentRequirements=requirements)
        payment = _payment_key(payload)
        if payment in self._pending:  # the same payment, back after its settlement was pending
            return await self._serve_if_settled(
                scope, receive, send, request, resource, requirements, payment
            )
        try:
            verdict = await self.facilitator.verify(request)
        except (FacilitatorUnavailable, ValidationError) as exc:
            return await _json(send, 503, {"error": f"payment facilitator unavailable: {exc}"}, {})
        if not verdict.isValid:
            return await _payment_required(
                send, resource, requirements, verdict.invalidReason or "invalid payment"
            )

        held = _HeldResponse()
        await self.app(scope, receive, held.send)
        if held.status is None or held.status >= 400:
            return await held.release(send, {})  # the handler failed: nothing is charged
        settled = await self._settle(request, requirements)
        if not settled.success:
            if settled.errorReason in _RETRY_SETTLE:
                self._pending.add(payment)
            return await _payment_required(
                send,
                resource,
                requirements,
                f"settlement failed: {settled.errorReason}",
                {PAYMENT_RESPONSE: encode_header(settled)},
            )
        await held.release(send, {PAYMENT_RESPONSE: encode_header(settled), "cache-control": "private"})

    async def _settle(self, request: FacilitatorRequest, requirements: PaymentRequirements) -> SettleResponse:
        """Settles, asking again while the answer is pending, up to the offer's timeout."""
        deadline = time.monotonic() + requirements.maxTimeoutSeconds
        while True:
            try:
                settled = await self.facilitator.settle(request)
            except (FacilitatorUnavailable, ValidationError) as exc:
                settled = SettleResponse(
                    success=False,
                    errorReason="unexpected_settle_error",
                    errorMessage=str(exc),
                    network=requirements.network,
                )
            if settled.success or settled.errorReason not in _RETRY_SETTLE or time.monotonic() >= deadline:
                return settled
            await asyncio.sleep(_RETRY_EVERY)

    async def _serve_if_settled(
        self,
        scope: Scope,
        receive: Any,
        send: Any,
        request: FacilitatorRequest,
        resource: ResourceInfo,
        requirements: PaymentRequirements,
        payment: str,
    ) -> None:
        """Serves a payment that was pending when first presented, once it has settled."""
        settled = await self._settle(request, requirements)
        if not settled.success or payment not in self._pending:
            if settled.errorReason not in _RETRY_SETTLE:
                self._pending.discard(payment)
            error = (
                f"settlement failed: {settled.errorReason}"
                if not settled.success
                else "payment already served"
            )
            return await _payment_required(
                send, resource, requirements, error, {PAYMENT_RESPONSE: encode_header(settled)}
            )
        self._pending.discard(payment)  # served once, from here on
        held = _HeldResponse()
        await self.app(scope, receive, held.send)
        await held.release(send, {PAYMENT_RESPONSE: encode_header(settled), "cache-control": "private"})


def _payment_key(payload: PaymentPayload) -> str:
    """Identity of the authorization a payment carries (network, asset, payer, nonce)."""
    authorization = payload.payload.get("authorization") or {}
    parts = (
        payload.accepted.network,
        payload.accepted.asset,
        authorization.get("from"),
        authorization.get("nonce"),
    )
    return ":".join(str(part) for part in parts).lower()


class _HeldResponse:
    """Collects a handler's response so that it is sent only after payment settles."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body.append(message.get("body", b""))

    async def release(self, send: Any, extra: dict[str, str]) -> None:
        if self.status is None:
            return await _json(send, 500, {"error": "the handler sent no response"}, {})
        names = {name.lower() for name in extra}
        headers = [(k, v) for k, v in self.headers if k.decode().lower() not in names]
        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(self.body)})


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def _url(scope: Scope) -> str:
    host = _header(scope, "host") or "localhost"
    return f"{scope.get('scheme', 'http')}://{host}{scope['path']}"


def _required(resource: ResourceInfo, requirements: PaymentRequirements, error: str | None = None) -> str:
    return encode_header(PaymentRequired(error=error, resource=resource, accepts=[requirements]))


async def _payment_required(
    send: Any,
    resource: ResourceInfo,
    requirements: PaymentRequirements,
    error: str,
    extra: dict[str, str] | None = None,
) -> None:
    headers = {PAYMENT_REQUIRED: _required(resource, requirements, error), **(extra or {})}
    await _json(send, 402, {"error": error}, headers)


async def _json(send: Any, status: int, body: dict, headers: dict[str, str]) -> None:
    raw = json.dumps(body).encode()
    all_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
        (b"cache-control", b"private"),
        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": raw})
