"""An example paid service: a weather API whose every answer costs a fixed price in AgentUSD."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI

from offchain.x402.server import FacilitatorClient, PaymentMiddleware, Price


def forecast(city: str) -> dict:
    """A deterministic stand-in for a real forecast (the point is the payment, not the weather)."""
    digest = hashlib.sha256(city.lower().encode()).digest()
    return {"city": city, "temperatureC": digest[0] % 35 - 5, "rainChance": digest[1] % 101}


def create_service(facilitator: FacilitatorClient, price: Price) -> PaymentMiddleware:
    """The weather app behind the payment middleware: GET /weather is paid, GET /health free."""
    app = FastAPI(title="Paid weather (x402)", docs_url=None, redoc_url=None)

    @app.get("/weather")
    async def weather(city: str = "Lisbon") -> dict:
        return forecast(city)

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    return PaymentMiddleware(app, facilitator, {("GET", "/weather"): price})
