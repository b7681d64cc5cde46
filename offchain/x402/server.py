"""Resource-server side of x402 v2: an ASGI middleware that prices routes.

For a priced route it answers 402 with a `PAYMENT-REQUIRED` header until a request carries a
`PAYMENT-SIGNATURE`; then it checks that the payment is for this route at this price, has the
facilitator verify it, records it in its durable `DeliveryStore` (a payment serves one request),
runs the handler with its response held back, settles only if the handler succeeded, and
releases the response with a `PAYMENT-RESPONSE` header only once settlement succeeded. A payment
settled but never handed over (the payer's connection dropped, or this server died, meanwhile)
is served when the same payment comes back for the same resource, once. A malformed header gets
400, a refused or unsettled payment 402, never a 5xx of ours; nothing is served unpaid.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import aiohttp
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
from offchain.x402.store import DeliveryStore

Scope = dict[str, Any]

# The largest request head (request line and headers) the HTTP server parses: a larger payment
# header is answered 400 by the middleware (the header itself may be 16 KiB) instead of the
# connection being closed on the client's unread bytes, which it sees as a reset.
MAX_REQUEST_HEAD = 2 * 1024 * 1024

# The x402 reason of a payment presented again (and the start of our refusals of one).
NONCE_USED = "invalid_exact_evm_nonce_already_used"
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
    """Talks to a facilitator's HTTP API, from the resource server's event loop.

    aiohttp, not httpx: a paid request makes two of these calls, and httpx's async client costs
    about five times aiohttp's CPU per call (~1.2 ms against ~0.2 ms here), in the process that
    serves the requests. The session is opened on first use, inside the loop that uses it.
    """

    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def verify(self, request: FacilitatorRequest) -> VerifyResponse:
        return VerifyResponse.model_validate(await self._post("/verify", request))

    async def settle(self, request: FacilitatorRequest) -> SettleResponse:
        return SettleResponse.model_validate(await self._post("/settle", request))

    async def _post(self, path: str, request: FacilitatorRequest) -> dict:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # First use, or a server started anew (on a loop of its own) with this middleware.
            self._session, self._loop = aiohttp.ClientSession(timeout=self._timeout), loop
        try:
            async with self._session.post(f"{self.url}{path}", json=request.wire()) as response:
                if response.status != 200:
                    raise FacilitatorUnavailable(f"{path} answered HTTP {response.status}")
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise FacilitatorUnavailable(f"{path}: {exc or type(exc).__name__}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class PaymentMiddleware:
    """ASGI middleware charging for the routes of `prices`, keyed by (METHOD, path).

    A route's price is one `Price` or several (one per network, say L1 and the L2): the 402 offers
    them all in `accepts`, and a payment is taken on the offer it accepted.

        `deliveries` is the durable record of the payments taken and whether their response was
        handed over (in memory unless a file is given: then a payment settled but never delivered,
        because the payer's connection dropped or this server died, is served when the same payment
        comes back for the same resource, once, after a restart too).
    """

    def __init__(
        self,
        app: Any,
        facilitator: FacilitatorClient,
        prices: dict[tuple[str, str], Price | list[Price]],
        deliveries: DeliveryStore | None = None,
    ):
        self.app = app
        self.facilitator = facilitator
        self.prices = {
            (method.upper(), path): [price] if isinstance(price, Price) else list(price)
            for (method, path), price in prices.items()
        }
        if any(not offers for offers in self.prices.values()):
            raise ValueError("every priced route needs at least one price")
        self.deliveries = deliveries or DeliveryStore()

    def offer(self, method: str, path: str, prices: list[Price]) -> None:
        """Prices a route anew (one more network, say); payments already taken stay served."""
        if not prices:
            raise ValueError("every priced route needs at least one price")
        self.prices = {**self.prices, (method.upper(), path): list(prices)}

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

    async def _paid(self, scope: Scope, receive: Any, send: Any, prices: list[Price]) -> None:
        first = prices[0]
        resource = ResourceInfo(url=_url(scope), description=first.description, mimeType=first.mime_type)
        method = "GET" if scope["method"].upper() == "HEAD" else scope["method"].upper()
        offers = [price.requirements(method) for price in prices]
        header = _header(scope, PAYMENT_SIGNATURE)
        if header is None or scope["method"].upper() == "HEAD":
            return await _payment_required(send, resource, offers, f"{PAYMENT_SIGNATURE} header is required")
        try:
            payload = decode_header(header, PaymentPayload)
        except MalformedHeader as exc:
            return await _json(
                send, 400, {"error": str(exc)}, {PAYMENT_REQUIRED: _required(resource, offers)}
            )
        if payload.x402Version != X402_VERSION:
            return await _payment_required(send, resource, offers, "x402Version must be 2")
        requirements = next((o for o in offers if payload.accepted.difference(o) is None), None)
        if requirements is None:  # told against the offer on its network (or the first)
            nearest = next((o for o in offers if o.network == payload.accepted.network), offers[0])
            difference = payload.accepted.difference(nearest)
            return await _payment_required(
                send, resource, offers, f"the payment is not for these terms: accepted.{difference}"
            )
        paid_path = urlparse(payload.resource.url).path if payload.resource else None
        if paid_path != scope["path"]:
            return await _payment_required(
                send,
                resource,
                offers,
                f"the payment is for another resource: resource.url names {paid_path!r}",
            )

        request = FacilitatorRequest(paymentPayload=payload, paymentRequirements=requirements)
        payment, digest = _payment_key(payload), _digest(payload)
        known = self.deliveries.get(payment)
        if known is not None:  # this payment was taken before: deliverable once if never delivered
            if (known.resource, known.digest) != (scope["path"], digest):
                return await _payment_required(
                    send,
                    resource,
                    offers,
                    f"{NONCE_USED}: this authorization paid for {known.resource!r} in another payment",
                )
            if not self.deliveries.claim(payment):
                return await _payment_required(
                    send, resource, offers, f"{NONCE_USED}: this payment was already served"
                )
            return await self._deliver(scope, receive, send, request, resource, offers, payment)

        try:
            verdict = await self.facilitator.verify(request)
        except (FacilitatorUnavailable, ValidationError) as exc:
            return await _json(send, 503, {"error": f"payment facilitator unavailable: {exc}"}, {})
        if not verdict.isValid:
            error = verdict.invalidReason or "invalid payment"
            if verdict.invalidMessage:
                error = f"{error}: {verdict.invalidMessage}"
            return await _payment_required(send, resource, offers, error)
        if not self.deliveries.begin(payment, scope["path"], digest):
            return await _payment_required(
                send, resource, offers, f"{NONCE_USED}: this payment is being served to another request"
            )

        held = _HeldResponse()
        await self.app(scope, receive, held.send)
        if held.status is None or held.status >= 400:
            self.deliveries.forget(payment)
            return await held.release(send, {})  # the handler failed: nothing is charged
        settled = await self._settle(request, requirements)
        if not settled.success:
            if settled.errorReason in _RETRY_SETTLE:
                self.deliveries.undelivered(payment)  # it may settle: the same payment is served then
            else:
                self.deliveries.forget(payment)
            return await _payment_required(
                send,
                resource,
                offers,
                f"settlement failed: {settled.errorReason}",
                {PAYMENT_RESPONSE: encode_header(settled)},
            )
        await self._hand_over(receive, send, held, settled, payment)

    async def _deliver(
        self,
        scope: Scope,
        receive: Any,
        send: Any,
        request: FacilitatorRequest,
        resource: ResourceInfo,
        offers: list[PaymentRequirements],
        payment: str,
    ) -> None:
        """Serves a payment taken before and never delivered, once it has settled (settling is
        idempotent: the facilitator answers with the settlement it made)."""
        settled = await self._settle(request, request.paymentRequirements)
        if not settled.success:
            if settled.errorReason in _RETRY_SETTLE:
                self.deliveries.undelivered(payment)
            else:
                self.deliveries.forget(payment)
            return await _payment_required(
                send,
                resource,
                offers,
                f"settlement failed: {settled.errorReason}",
                {PAYMENT_RESPONSE: encode_header(settled)},
            )
        held = _HeldResponse()
        await self.app(scope, receive, held.send)
        if held.status is None or held.status >= 400:
            self.deliveries.undelivered(payment)  # paid: it stays deliverable
            return await held.release(send, {PAYMENT_RESPONSE: encode_header(settled)})
        await self._hand_over(receive, send, held, settled, payment)

    async def _hand_over(
        self, receive: Any, send: Any, held: _HeldResponse, settled: SettleResponse, payment: str
    ) -> None:
        """Releases a paid response, and records the payment served only if the payer is still
        there to receive it (otherwise it stays deliverable)."""
        if await _client_gone(receive):
            self.deliveries.undelivered(payment)
            return
        await held.release(send, {PAYMENT_RESPONSE: encode_header(settled), "cache-control": "private"})
        self.deliveries.served(payment)

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


async def _client_gone(receive: Any) -> bool:
    """Whether the client has closed its connection (checked without waiting)."""
    while True:
        try:
            message = await asyncio.wait_for(receive(), timeout=0.01)
        except TimeoutError:
            return False  # nothing to read: the connection is open
        if message["type"] == "http.disconnect":
            return True
        # An unread part of the request's body: read on.


def _digest(payload: PaymentPayload) -> str:
    """Identity of the whole payment (the same header, whatever its JSON spacing)."""
    return hashlib.sha256(json.dumps(payload.wire(), sort_keys=True).encode()).hexdigest()


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


def _required(resource: ResourceInfo, offers: list[PaymentRequirements], error: str | None = None) -> str:
    return encode_header(PaymentRequired(error=error, resource=resource, accepts=offers))


async def _payment_required(
    send: Any,
    resource: ResourceInfo,
    offers: list[PaymentRequirements],
    error: str,
    extra: dict[str, str] | None = None,
) -> None:
    headers = {PAYMENT_REQUIRED: _required(resource, offers, error), **(extra or {})}
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
