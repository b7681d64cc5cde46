"""An x402 v2 facilitator for the `exact` scheme: the rules, written once for every network.

`verify` runs every check of the exact-EVM scheme (terms, recipient, amount, validity window,
signature, the authorization's state, balance, a simulation) and then reserves the
authorization in the durable store: of concurrent duplicates exactly one verifies. `settle`
claims the reserved payment (one caller wins), re-checks it and hands it to the network's
`Settlement`, then answers from the stored outcome: settled, failed, or `settlement_pending`
with the transaction's hash when the outcome is not known in time. `reconcile` (at start and
in the background) ends expired reservations and lets each network finish what was left.

Networks are `Settlement`s (settlement.py): an L1 token (`TokenSettlement`) and an Agent L2
rollup's sequencers (`SequencerSettlement`). A payment settles on the network its requirements
name, and only there.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from pydantic import ValidationError

from offchain.x402.eip3009 import TransferAuthorization
from offchain.x402.models import (
    EXACT,
    X402_VERSION,
    FacilitatorRequest,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyResponse,
)
from offchain.x402.settlement import (
    BAD_SIGNATURE,
    INSUFFICIENT_BALANCE,
    INVALID_NETWORK,
    INVALID_PAYLOAD,
    INVALID_REQUIREMENTS,
    INVALID_VERSION,
    MISSING_DOMAIN,
    NAME_MISMATCH,
    NONCE_USED,
    RECIPIENT_MISMATCH,
    SETTLEMENT_PENDING,
    TRANSACTION_FAILED,
    UNEXPECTED_SETTLE,
    UNEXPECTED_VERIFY,
    UNSUPPORTED_ASSET,
    UNSUPPORTED_SCHEME,
    VALID_AFTER,
    VALID_BEFORE,
    VALUE_MISMATCH,
    VERSION_MISMATCH,
    Asset,
    Rejected,
    Settlement,
)
from offchain.x402.store import PaymentRecord, PaymentStore, Reservation, State, payment_id
from offchain.x402.token_settlement import TokenSettlement


@dataclass(frozen=True)
class _Checked:
    """What the checks of a payment found and settlement needs."""

    settlement: Settlement
    auth: TransferAuthorization
    signature: bytes
    asset: Asset
    gas: int | None  # the gas its transfer gets (from the simulation), where gas is ours to pay
    balance: int  # the payer's balance
    now: int  # the network's clock the window was judged at


class Facilitator:
    """Verifies and settles x402 `exact` payments on the networks of `settlements`."""

    def __init__(self, store: PaymentStore, settlements: list[Settlement], receipt_timeout: float = 30.0):
        if not settlements:
            raise ValueError("a facilitator needs at least one network to settle on")
        self.store = store
        self.settlements = {s.network: s for s in settlements}
        if len(self.settlements) != len(settlements):
            raise ValueError("two settlements for one network")
        self.receipt_timeout = receipt_timeout
        # How long each successful settle took, per network (on L1 until the receipt, on the L2
        # until the soft confirmation): the confirmation latency a resource server waits.
        self.settle_seconds: dict[str, deque[float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def on_token(
        cls,
        w3: Any,
        signer_key: str,
        store: PaymentStore,
        assets: list[str],
        receipt_timeout: float = 30.0,
        **options: Any,
    ) -> Facilitator:
        """A facilitator of one EVM chain's EIP-3009 tokens (options: `TokenSettlement`'s)."""
        settlement = TokenSettlement(
            w3, signer_key, store, assets, receipt_timeout=receipt_timeout, **options
        )
        return cls(store, [settlement], receipt_timeout)

    @property
    def networks(self) -> list[str]:
        return list(self.settlements)

    def add_network(self, settlement: Settlement) -> None:
        """Settles on one more network from now on (a rollup that went live, say)."""
        if settlement.network in self.settlements:
            raise ValueError(f"{settlement.network} is settled already")
        settlement.start()
        self.settlements = {**self.settlements, settlement.network: settlement}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, reconcile_every: float = 1.0) -> None:
        """Finishes what a previous run left, then keeps reconciling in the background."""
        for settlement in self.settlements.values():
            settlement.start()
        self.reconcile(startup=True)
        self._thread = threading.Thread(target=self._reconcile_loop, args=(reconcile_every,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for settlement in self.settlements.values():
            settlement.stop()

    # -- /supported ------------------------------------------------------------------------------

    def supported(self) -> SupportedResponse:
        signers = sorted({a for s in self.settlements.values() for a in s.signers()})
        return SupportedResponse(
            kinds=[
                SupportedKind(x402Version=X402_VERSION, scheme=EXACT, network=n) for n in self.settlements
            ],
            signers={"eip155:*": signers} if signers else {},
        )

    # -- /verify ---------------------------------------------------------------------------------

    def verify(self, request: FacilitatorRequest | dict) -> VerifyResponse:
        payer = None
        try:
            request = self._parse(request)
            checked = self._check(request)
            payer = checked.auth.from_
            record = self._record(request, checked)
            outcome = self.store.reserve(record, checked.balance, checked.now)
            if outcome == Reservation.DUPLICATE:
                raise Rejected(NONCE_USED, "this authorization was already presented")
            if outcome == Reservation.OVER_BALANCE:
                raise Rejected(
                    INSUFFICIENT_BALANCE,
                    f"the payer's balance {checked.balance} does not cover authorization.value "
                    f"{checked.auth.value} on top of its payments still pending",
                )
            # RESERVED, or AGAIN: the same payment presented again before it was settled (by its
            # payer, say, after someone else holding the header verified it first).
            return VerifyResponse(isValid=True, payer=payer)
        except Rejected as exc:
            return VerifyResponse(
                isValid=False, invalidReason=exc.reason, invalidMessage=str(exc), payer=payer
            )
        except Exception as exc:  # an RPC failure must still answer in x402's terms
            return VerifyResponse(
                isValid=False, invalidReason=UNEXPECTED_VERIFY, invalidMessage=str(exc), payer=payer
            )

    def _parse(self, request: FacilitatorRequest | dict) -> FacilitatorRequest:
        if isinstance(request, FacilitatorRequest):
            return request
        try:
            return FacilitatorRequest.model_validate(request)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise Rejected(INVALID_PAYLOAD, f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None

    def _settlement(self, request: FacilitatorRequest) -> Settlement:
        network = request.paymentRequirements.network
        settlement = self.settlements.get(network)
        if settlement is None or request.paymentPayload.accepted.network != network:
            raise Rejected(INVALID_NETWORK, f"this facilitator settles on {', '.join(self.settlements)} only")
        return settlement

    def _check(self, request: FacilitatorRequest, simulate: bool = True) -> _Checked:
        """Every check of the exact-EVM scheme; returns what settlement needs."""
        payload, req = request.paymentPayload, request.paymentRequirements
        if request.x402Version != X402_VERSION or payload.x402Version != X402_VERSION:
            raise Rejected(INVALID_VERSION, f"only x402 version {X402_VERSION} is supported")
        if payload.accepted.scheme != EXACT or req.scheme != EXACT:
            raise Rejected(UNSUPPORTED_SCHEME, "only the exact scheme is supported")
        settlement = self._settlement(request)
        difference = payload.accepted.difference(req)
        if difference is not None:
            raise Rejected(INVALID_REQUIREMENTS, f"accepted.{difference} in the payment requirements")
        asset = settlement.asset(req.asset)
        if asset is None:
            raise Rejected(UNSUPPORTED_ASSET, f"asset {req.asset} is not settled on {settlement.network}")
        name, version = req.extra.get("name"), req.extra.get("version")
        if not name or not version:
            raise Rejected(
                MISSING_DOMAIN, "extra.name and extra.version (the token's EIP-712 domain) are required"
            )
        if name != asset.domain.name:
            raise Rejected(
                NAME_MISMATCH, f"extra.name is {name!r}, the token's EIP-712 name is {asset.domain.name!r}"
            )
        if version != asset.domain.version:
            raise Rejected(
                VERSION_MISMATCH,
                f"extra.version is {version!r}, the token's EIP-712 version is {asset.domain.version!r}",
            )
        auth, signature = _authorization(payload.payload)
        if auth.to.lower() != req.payTo.lower():
            raise Rejected(RECIPIENT_MISMATCH, f"authorization.to {auth.to} is not payTo {req.payTo}")
        if str(auth.value) != req.amount:
            raise Rejected(VALUE_MISMATCH, f"authorization.value {auth.value} is not the price {req.amount}")
        now = settlement.clock()
        margin = settlement.valid_before_margin
        if auth.valid_before < now + margin:
            raise Rejected(
                VALID_BEFORE,
                f"authorization.validBefore {auth.valid_before} is less than {margin} s after the "
                f"clock of {settlement.network}, {now}: it expires too soon (or has expired)",
            )
        if auth.valid_after >= now:
            raise Rejected(
                VALID_AFTER,
                f"authorization.validAfter {auth.valid_after} is not before the clock of "
                f"{settlement.network}, {now}",
            )
        if simulate and not settlement.signature_ok(auth, signature, asset):
            raise Rejected(BAD_SIGNATURE, "the signature is not the payer's")
        if not simulate and settlement.checks_at_send:  # its admission refuses them atomically
            return _Checked(settlement, auth, signature, asset, None, 0, now)
        if settlement.authorization_used(auth, asset):
            raise Rejected(
                NONCE_USED, f"the authorization nonce is used or cancelled on {settlement.network}"
            )
        balance = settlement.balance(auth.from_, asset)
        if balance < auth.value:
            raise Rejected(
                INSUFFICIENT_BALANCE,
                f"the payer's balance {balance} is below authorization.value {auth.value}",
            )
        gas = settlement.simulate(auth, signature, asset) if simulate else None
        return _Checked(settlement, auth, signature, asset, gas, balance, now)

    def _record(self, request: FacilitatorRequest, checked: _Checked) -> PaymentRecord:
        now, auth, network = time.time(), checked.auth, checked.settlement.network
        return PaymentRecord(
            id=payment_id(network, checked.asset.address, auth.from_, auth.nonce),
            network=network,
            asset=checked.asset.address,
            payer=auth.from_,
            pay_to=auth.to,
            amount=str(auth.value),
            valid_before=auth.valid_before,
            payload=json.dumps(request.paymentPayload.wire()),
            state=State.RESERVED,
            created=now,
            updated=now,
            gas=checked.gas,
        )

    # -- /settle ---------------------------------------------------------------------------------

    def settle(self, request: FacilitatorRequest | dict) -> SettleResponse:
        started = time.perf_counter()
        answer = self._settle(request)
        if answer.success:
            times = self.settle_seconds.setdefault(answer.network, deque(maxlen=10_000))
            times.append(time.perf_counter() - started)
        return answer

    def _settle(self, request: FacilitatorRequest | dict) -> SettleResponse:
        payer, network = None, _network_of(request)
        try:
            request = self._parse(request)
            settlement = self._settlement(request)
            auth, _ = _authorization(request.paymentPayload.payload)
            payer = auth.from_
            asset = settlement.asset(request.paymentRequirements.asset)
            if asset is None:
                raise Rejected(UNSUPPORTED_ASSET, f"asset not settled on {settlement.network}")
            id_ = payment_id(settlement.network, asset.address, auth.from_, auth.nonce)
            record = self.store.get(id_)
            if record is None:  # settle without a prior verify: verify (and reserve) now
                verdict = self.verify(request)
                record = self.store.get(id_)  # a concurrent settle of this payment may have won
                if record is None:
                    raise Rejected(verdict.invalidReason or UNEXPECTED_SETTLE, verdict.invalidMessage or "")
            if record.payload != json.dumps(request.paymentPayload.wire()):
                raise Rejected(NONCE_USED, "a different payment with this nonce is on record")
            deadline = time.monotonic() + self.receipt_timeout
            if self.store.claim(id_):
                return self._send(record, request, deadline)
            return self._await(id_, deadline)
        except Rejected as exc:
            return self._settle_failure(exc.reason, str(exc), payer, network)
        except ValidationError as exc:
            return self._settle_failure(INVALID_PAYLOAD, str(exc), payer, network)
        except Exception as exc:  # an RPC failure must still answer in x402's terms
            return self._settle_failure(UNEXPECTED_SETTLE, str(exc), payer, network)

    def _settle_failure(self, reason: str, message: str, payer: str | None, network: str) -> SettleResponse:
        return SettleResponse(
            success=False, errorReason=reason, errorMessage=message, payer=payer, network=network
        )

    def _send(self, record: PaymentRecord, request: FacilitatorRequest, deadline: float) -> SettleResponse:
        """Sends a claimed payment (after re-checking it, without simulation) and waits for it."""
        try:
            checked = self._check(request, simulate=False)
        except Rejected as exc:
            settlement = self.settlements[record.network]
            elsewhere = settlement.settled_elsewhere(record) if exc.reason == NONCE_USED else None
            if elsewhere is None:
                self.store.failed(record.id, exc.reason)
                raise
            self.store.settled(record.id, elsewhere)
            return self._await(record.id, deadline)
        try:
            checked.settlement.send(record, checked.auth, checked.signature, checked.asset, deadline)
        except Exception:
            self.store.release(record.id)  # nothing was sent: the payment can be settled again
            raise
        return self._await(record.id, deadline)

    def _await(self, id_: str, deadline: float) -> SettleResponse:
        """Waits (until `deadline`, a monotonic time) for a payment's outcome."""
        while True:
            record = self.store.get(id_)
            assert record is not None
            settlement = self.settlements[record.network]
            if record.state == State.SUBMITTED and settlement.resolves_inline:
                settlement.resolve(record, wait=max(0.0, deadline - time.monotonic()))
                record = self.store.get(id_)
                assert record is not None
            if record.state == State.SETTLED:
                return SettleResponse(
                    success=True,
                    payer=record.payer,
                    transaction=record.tx_hash or "",
                    network=record.network,
                    amount=record.amount,
                    extra=json.loads(record.receipt) if record.receipt else None,
                )
            if record.state == State.FAILED:
                reason, _, message = (record.error or TRANSACTION_FAILED).partition(": ")
                return SettleResponse(
                    success=False,
                    errorReason=reason,
                    errorMessage=message or None,
                    payer=record.payer,
                    transaction=record.tx_hash or "",
                    network=record.network,
                )
            if time.monotonic() >= deadline:
                return SettleResponse(
                    success=False,
                    errorReason=SETTLEMENT_PENDING,
                    errorMessage="not settled yet; settle again later with the same payment",
                    payer=record.payer,
                    transaction=record.tx_hash or "",
                    network=record.network,
                )
            time.sleep(0.02)

    # -- recovery --------------------------------------------------------------------------------

    def reconcile(self, startup: bool = False) -> None:
        """Ends reservations whose authorization expired, and has each network finish its
        submitted payments. At start-up it also returns claims that a previous run made but
        never sent (while running, those are live)."""
        if startup:
            for record in self.store.in_state(State.SENDING):
                if record.tx_hash is None:
                    self.store.release(record.id)
        failures = []
        for settlement in self.settlements.values():
            try:  # one network down (its node, its sequencers) must not hold up the others
                self.store.expire(settlement.clock(), settlement.network)  # reservations end at validBefore
                settlement.reconcile(startup)
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    def _reconcile_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.reconcile()
            except Exception:  # a node hiccup: try again next round
                continue


def _authorization(payload: dict[str, Any]) -> tuple[TransferAuthorization, bytes]:
    try:
        return (
            TransferAuthorization.model_validate(payload["authorization"]),
            bytes(HexBytes(payload["signature"])),
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise Rejected(INVALID_PAYLOAD, f"payload needs authorization and signature: {exc}") from None


def _network_of(request: FacilitatorRequest | dict) -> str:
    """The network a request names, for a failure answered before it parsed."""
    if isinstance(request, FacilitatorRequest):
        return request.paymentRequirements.network
    network = (request.get("paymentRequirements") or {}).get("network") if isinstance(request, dict) else None
    return network if isinstance(network, str) else ""
