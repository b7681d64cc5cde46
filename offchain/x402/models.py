"""x402 v2 wire objects (see the x402 specification v2 and its HTTP transport).

Field names are the protocol's own (camelCase); unknown fields are kept where the protocol lets
parties add their own (`extra`, `extensions`). Amounts are decimal strings on the wire.

Why not the official SDK's `x402.schemas` and `x402.http.utils`: ours must be stricter where
they face the network. The SDK's models accept an `amount` of "-1.5e3" and a negative
`maxTimeoutSeconds`, and its header decoder skips characters outside base64, has no size bound
and raises whatever `json` raises; a server built on them would settle terms nobody offered or
answer 5xx to a bad header. Ours refuse those with a clear 400 or 402. The wire is the same:
`tests/unit/test_x402_wire.py` decodes our headers with the SDK's codecs and theirs with ours,
and the SDK client pays our servers on L1 and on the L2.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from offchain.errors import InvalidInput

X402_VERSION = 2
EXACT = "exact"
_CAIP2 = re.compile(r"^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,77})$")

# Header names of the v2 HTTP transport.
PAYMENT_REQUIRED = "PAYMENT-REQUIRED"
PAYMENT_SIGNATURE = "PAYMENT-SIGNATURE"
PAYMENT_RESPONSE = "PAYMENT-RESPONSE"


class MalformedHeader(InvalidInput):
    """A payment header that is not base64 JSON of the expected object."""


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ResourceInfo(Wire):
    url: str
    description: str = ""
    mimeType: str = ""


class PaymentRequirements(Wire):
    """One way to pay for a resource (an entry of `accepts`)."""

    scheme: str
    network: str
    asset: str
    amount: str
    payTo: str
    maxTimeoutSeconds: int = Field(gt=0)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("amount")
    @classmethod
    def _atomic_amount(cls, value: str) -> str:
        if not _DECIMAL.match(value):
            raise ValueError("amount must be a decimal string of atomic units")
        return value

    @field_validator("network")
    @classmethod
    def _caip2(cls, value: str) -> str:
        if not _CAIP2.match(value):
            raise ValueError("network must be a CAIP-2 id such as eip155:31337")
        return value

    def same_offer(self, other: PaymentRequirements) -> bool:
        """Field-by-field equality of the terms a payer accepted (addresses case-insensitive)."""
        return self.difference(other) is None

    def difference(self, other: PaymentRequirements) -> str | None:
        """The first field in which these terms differ from `other`, as `field: this, not other`
        (None when they are the same offer); addresses compare case-insensitively."""
        for name in ("scheme", "network", "asset", "amount", "payTo", "maxTimeoutSeconds"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if name in ("asset", "payTo"):
                mine, theirs = str(mine).lower(), str(theirs).lower()
            if mine != theirs:
                return f"{name} is {getattr(self, name)!r}, not {getattr(other, name)!r}"
        for key in sorted(set(self.extra) | set(other.extra)):
            if self.extra.get(key) != other.extra.get(key):
                return f"extra.{key} is {self.extra.get(key)!r}, not {other.extra.get(key)!r}"
        return None


class PaymentRequired(Wire):
    x402Version: int = X402_VERSION
    error: str | None = None
    resource: ResourceInfo
    accepts: list[PaymentRequirements]
    extensions: dict[str, Any] = Field(default_factory=dict)


class PaymentPayload(Wire):
    x402Version: int
    payload: dict[str, Any]
    accepted: PaymentRequirements
    resource: ResourceInfo | None = None
    extensions: dict[str, Any] = Field(default_factory=dict)


class FacilitatorRequest(Wire):
    """Body of POST /verify and POST /settle."""

    x402Version: int = X402_VERSION
    paymentPayload: PaymentPayload
    paymentRequirements: PaymentRequirements


class VerifyResponse(Wire):
    isValid: bool
    invalidReason: str | None = None
    invalidMessage: str | None = None
    payer: str | None = None


class SettleResponse(Wire):
    success: bool
    errorReason: str | None = None
    errorMessage: str | None = None
    payer: str | None = None
    transaction: str = ""
    network: str
    amount: str | None = None
    extra: dict[str, Any] | None = None  # on the L2: the sequencer's signed soft confirmation


class SupportedKind(Wire):
    x402Version: int = X402_VERSION
    scheme: str = EXACT
    network: str


class SupportedResponse(Wire):
    kinds: list[SupportedKind]
    extensions: list[str] = Field(default_factory=list)
    signers: dict[str, list[str]] = Field(default_factory=dict)


M = TypeVar("M", bound=BaseModel)


def encode_header(obj: Wire) -> str:
    """Standard base64 (with padding) of the object's compact JSON."""
    return base64.b64encode(json.dumps(obj.wire(), separators=(",", ":")).encode()).decode()


def decode_header(value: str, model: type[M]) -> M:
    """Parses a payment header; raises `MalformedHeader` with what is wrong."""
    if len(value) > 16_384:
        raise MalformedHeader("payment header longer than 16 KiB")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise MalformedHeader("payment header is not base64-encoded JSON") from None
    if not isinstance(data, dict):
        raise MalformedHeader("payment header must hold a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "header"
        raise MalformedHeader(f"payment header: {where}: {err['msg']}") from None
