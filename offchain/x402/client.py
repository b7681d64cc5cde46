"""The x402 client our agents pay with (exact scheme, EIP-3009 tokens on EVM chains).

On a 402 it picks, of the offers it can pay (on the L1 it is connected to or on an Agent L2
rollup it knows, price within its limit), the cheapest, and at the same price the rollup's. It
knows the token's EIP-712 domain (read on chain for L1; the L2 rule for a rollup,
`signing.token_domain`) and refuses an offer whose `extra.name`/`version` disagree (a wrong
domain would only produce a signature the token rejects), signs a TransferWithAuthorization
valid until the L1 execution clock (the time of the next block, never earlier than the wall
clock; a rollup's blocks take L1's time, so never later than that) plus the offer's timeout and
a margin, and retries.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from eth_account import Account
from eth_utils import to_checksum_address
from web3 import Web3

from offchain.chain.eip712 import Eip712Domain
from offchain.errors import AgentL2Error
from offchain.l2.signing import token_domain
from offchain.x402 import abi
from offchain.x402.clock import execution_clock
from offchain.x402.eip3009 import authorize_transfer
from offchain.x402.models import (
    EXACT,
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    X402_VERSION,
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    SettleResponse,
    decode_header,
    encode_header,
)

# Seconds added to validBefore beyond the offer's timeout: the blocks mined between signing and
# settlement, and the facilitator's own margin (it wants validBefore at least 6 s ahead).
VALID_BEFORE_MARGIN = 10


class PaymentRefused(AgentL2Error):
    """The client will not or cannot pay what the server asks."""


@dataclass
class PaidResponse:
    response: httpx.Response
    settlement: SettleResponse | None
    paid: int


class X402Client:
    """Pays x402 `exact` offers on the chain `w3` is connected to and on the Agent L2 rollups
    of `rollups` (their chain ids)."""

    def __init__(
        self,
        private_key: str,
        w3: Web3,
        max_amount: int,
        http: httpx.Client | None = None,
        rollups: Iterable[int] = (),
    ):
        self.account = Account.from_key(private_key)
        self._key = private_key
        self.w3 = w3
        self.network = f"eip155:{w3.eth.chain_id}"
        self.rollups = {f"eip155:{chain_id}": chain_id for chain_id in rollups}
        self.max_amount = max_amount
        self.http = http or httpx.Client(timeout=60.0)
        self._domains: dict[str, Eip712Domain] = {}

    def request(self, method: str, url: str, **kwargs: object) -> PaidResponse:
        """Sends the request; on 402 pays once and retries."""
        first = self.http.request(method, url, **kwargs)
        if first.status_code != 402:
            return PaidResponse(first, None, 0)
        header = first.headers.get(PAYMENT_REQUIRED)
        if header is None:
            raise PaymentRefused(f"{url} answered 402 without a {PAYMENT_REQUIRED} header")
        required = decode_header(header, PaymentRequired)
        offer = self._choose(required)
        payload = self._pay(offer, required)
        headers = {**dict(kwargs.pop("headers", {}) or {}), PAYMENT_SIGNATURE: encode_header(payload)}
        deadline = time.monotonic() + offer.maxTimeoutSeconds
        while True:
            second = self.http.request(method, url, headers=headers, **kwargs)
            header = second.headers.get(PAYMENT_RESPONSE)
            settlement = decode_header(header, SettleResponse) if header else None
            # A pending settlement may still go through: present the same payment again (never a
            # new one, which could pay twice) until the offer's timeout.
            pending = settlement is not None and settlement.errorReason == "settlement_pending"
            if second.status_code != 402 or not pending or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        return PaidResponse(second, settlement, int(offer.amount) if second.status_code < 400 else 0)

    def get(self, url: str, **kwargs: object) -> PaidResponse:
        return self.request("GET", url, **kwargs)

    def _choose(self, required: PaymentRequired) -> PaymentRequirements:
        """The cheapest payable offer; at one price, a rollup's (its fees and latency are lower)."""
        reasons, payable = [], []
        for offer in required.accepts:
            if offer.scheme != EXACT or (offer.network != self.network and offer.network not in self.rollups):
                reasons.append(f"{offer.scheme} on {offer.network}: not payable here")
            elif int(offer.amount) > self.max_amount:
                reasons.append(f"{offer.amount} is above the limit {self.max_amount}")
            else:
                payable.append(offer)
        if not payable:
            raise PaymentRefused("no acceptable offer: " + "; ".join(reasons or ["none offered"]))
        return min(payable, key=lambda o: (int(o.amount), o.network not in self.rollups))

    def _pay(self, offer: PaymentRequirements, required: PaymentRequired) -> PaymentPayload:
        rollup = self.rollups.get(offer.network)
        domain = (
            token_domain(rollup, to_checksum_address(offer.asset)) if rollup else self.domain(offer.asset)
        )
        if (offer.extra.get("name"), offer.extra.get("version")) != (domain.name, domain.version):
            raise PaymentRefused(
                f"the offer names the token domain {offer.extra.get('name')!r}/{offer.extra.get('version')!r}, "
                f"the token says {domain.name!r}/{domain.version!r}"
            )
        # Not the latest block's time: on an idle chain that is long past, and a window counted
        # from it could close before the settlement runs.
        now = execution_clock(self.w3)
        auth, signature = authorize_transfer(
            self._key,
            domain,
            offer.payTo,
            int(offer.amount),
            valid_before=now + offer.maxTimeoutSeconds + VALID_BEFORE_MARGIN,
        )
        return PaymentPayload(
            x402Version=X402_VERSION,
            payload={
                "authorization": auth.model_dump(mode="json", by_alias=True),
                "signature": "0x" + signature.hex(),
            },
            accepted=offer,
            resource=required.resource,
        )

    def domain(self, asset: str) -> Eip712Domain:
        """The token's EIP-712 domain, read on chain once."""
        asset = to_checksum_address(asset)
        if asset not in self._domains:
            token = self.w3.eth.contract(address=asset, abi=abi.TOKEN_ABI)
            try:
                self._domains[asset] = Eip712Domain.from_eip5267(token.functions.eip712Domain().call())
            except Exception as exc:
                raise PaymentRefused(f"cannot read the EIP-712 domain of {asset}: {exc}") from None
        return self._domains[asset]
