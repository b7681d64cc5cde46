"""What the facilitator asks of a network it settles on: one small interface, two backends.

The facilitator (`facilitator.py`) holds the rules of the `exact` scheme: the terms, the checks'
order, the reservation that lets one of concurrent duplicates through, the settle flow that
pays each authorization once, and recovery. A `Settlement` answers the questions those rules
ask of one network (its clock, a signature, an authorization's state, a balance) and carries a
claimed payment to it: `TokenSettlement` (`token_settlement.py`) sends EIP-3009 transfers to an
L1 token, `SequencerSettlement` (`sequencer_settlement.py`) hands them to an Agent L2 sequencer
as L2 transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from offchain.chain.eip712 import Eip712Domain
from offchain.x402.eip3009 import TransferAuthorization
from offchain.x402.store import PaymentRecord

# Reasons, as the x402 specification and the reference SDK name them.
INVALID_VERSION = "invalid_x402_version"
UNSUPPORTED_SCHEME = "unsupported_scheme"
INVALID_NETWORK = "invalid_network"
INVALID_PAYLOAD = "invalid_payload"
INVALID_REQUIREMENTS = "invalid_payment_requirements"
UNSUPPORTED_ASSET = "invalid_exact_evm_unsupported_asset"
MISSING_DOMAIN = "missing_eip712_domain"
NAME_MISMATCH = "invalid_exact_evm_token_name_mismatch"
VERSION_MISMATCH = "invalid_exact_evm_token_version_mismatch"
RECIPIENT_MISMATCH = "invalid_exact_evm_payload_recipient_mismatch"
VALUE_MISMATCH = "invalid_exact_evm_payload_authorization_value_mismatch"
VALID_BEFORE = "invalid_exact_evm_payload_authorization_valid_before"
VALID_AFTER = "invalid_exact_evm_payload_authorization_valid_after"
BAD_SIGNATURE = "invalid_exact_evm_payload_signature"
NONCE_USED = "invalid_exact_evm_nonce_already_used"
INSUFFICIENT_BALANCE = "invalid_exact_evm_insufficient_balance"
SIMULATION_FAILED = "invalid_exact_evm_transaction_simulation_failed"
TRANSFER_EVENT_MISMATCH = "invalid_exact_evm_transfer_event_mismatch"
SETTLEMENT_PENDING = "settlement_pending"
TRANSACTION_FAILED = "transaction_failed"
UNEXPECTED_VERIFY = "unexpected_verify_error"
UNEXPECTED_SETTLE = "unexpected_settle_error"


class Rejected(Exception):
    """A payment that fails a check; `reason` is the x402 reason code."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Asset:
    """A token a settlement pays in, with the EIP-712 domain its authorizations are signed in."""

    address: str
    domain: Eip712Domain


class Settlement(Protocol):
    """One network's side of settling `exact` payments (see the module's docstring).

    Outcomes go to the shared `PaymentStore`: `send` and `resolve` move a claimed record to
    submitted, settled or failed there, and the facilitator answers from the record.
    """

    network: str  # CAIP-2, eip155:<chain id>
    valid_before_margin: int  # seconds an authorization must stay valid after `clock()`
    resolves_inline: bool  # whether a settle waiting on a submitted payment calls `resolve`
    # Whether `send` itself refuses a used authorization or a short balance, atomically (a
    # sequencer's admission does): then settle does not read them again before sending.
    checks_at_send: bool

    def asset(self, address: str) -> Asset | None:
        """The asset at `address`, if this network settles it."""
        ...

    def signers(self) -> list[str]:
        """The addresses that send settlements (GET /supported lists them)."""
        ...

    def clock(self) -> int:
        """The time an authorization sent now is judged at (never earlier than the wall clock
        on L1; the open L2 block's time on the rollup)."""
        ...

    def signature_ok(self, auth: TransferAuthorization, signature: bytes, asset: Asset) -> bool: ...

    def authorization_used(self, auth: TransferAuthorization, asset: Asset) -> bool: ...

    def balance(self, payer: str, asset: Asset) -> int: ...

    def simulate(self, auth: TransferAuthorization, signature: bytes, asset: Asset) -> int | None:
        """Runs the transfer without sending it; raises `Rejected` with the reason it would fail.
        Returns the gas it should get, or None where gas is not the settlement's concern."""
        ...

    def send(
        self,
        record: PaymentRecord,
        auth: TransferAuthorization,
        signature: bytes,
        asset: Asset,
        deadline: float,
    ) -> None:
        """Sends a claimed payment; raises (with the record released) if nothing was sent."""
        ...

    def resolve(self, record: PaymentRecord, wait: float = 0.0) -> None:
        """Settles or fails a submitted payment from what the network says of it now (or
        within `wait` seconds)."""
        ...

    def settled_elsewhere(self, record: PaymentRecord) -> str | None:
        """The transaction that used this authorization and paid exactly this payment, if one
        did (anyone may submit a signed authorization)."""
        ...

    def reconcile(self, startup: bool = False) -> None:
        """Finishes this network's submitted payments (after a crash, a timeout, a lost answer)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...
