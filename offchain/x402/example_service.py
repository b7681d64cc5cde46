"""Example paid services: small JSON APIs whose every answer costs a fixed price in AgentUSD."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI

from offchain.x402.server import FacilitatorClient, PaymentMiddleware, Price
from offchain.x402.store import DeliveryStore


def forecast(city: str) -> dict:
    """A deterministic stand-in for a real forecast (the point is the payment, not the weather)."""
    digest = hashlib.sha256(city.lower().encode()).digest()
    return {"city": city, "temperatureC": digest[0] % 35 - 5, "rainChance": digest[1] % 101}


def answer(kind: str, query: str) -> dict:
    """A deterministic answer of any other kind of service."""
    digest = hashlib.sha256(f"{kind}:{query}".encode()).hexdigest()
    return {"service": kind, "query": query, "answer": digest[:16]}


def create_service(
    facilitator: FacilitatorClient,
    price: Price | list[Price],
    kind: str = "weather",
    deliveries: DeliveryStore | None = None,
) -> PaymentMiddleware:
    """A paid API behind the payment middleware: GET /<kind> is paid (at one price, or one per
    network), GET /health free.
    `deliveries` is its durable record of payments taken (in memory if not given)."""
    app = FastAPI(title=f"Paid {kind} (x402)", docs_url=None, redoc_url=None)

    if kind == "weather":

        @app.get("/weather")
        async def weather(city: str = "Lisbon") -> dict:
            return forecast(city)

    else:

        @app.get(f"/{kind}")
        async def service(q: str = "") -> dict:
            return answer(kind, q)

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    return PaymentMiddleware(app, facilitator, {("GET", f"/{kind}"): price}, deliveries)
