"""Settlement on an Agent L2 rollup: the authorization becomes an L2 transaction.

The payer signs EIP-3009's TransferWithAuthorization in the L2 token's domain (name "Agent L2
Token", version "1", the rollup's chain id, the L1 token's address: docs/l2-protocol.md, Signing
domains). Checks read the leading sequencer's pending state over its API (balance, the
authorization's leaf, the open block's time); the signature is checked with the L2's own rule
(`stf.signature_ok`). Settling submits the record to the leader and is done on its signed soft
confirmation, kept with the payment and returned in the settle answer's `extra`.

The record is a pure function of the authorization and its signature, so its L2 hash is known
before it is sent and a resubmission is the same transaction: a sequencer answers 409 to a
record it confirmed, and the STF refuses a second use of the authorization. After a lost answer
or a crash, the payment is found by its hash on the sequencers, or sent again while it is valid.

A soft confirmation is a promise, not yet the L2: should its sequencer's slot pass unposted
(`GET /v1/dropped` lists what it dropped), the facilitator sends the same record to the leader
again, every reconcile round, until its authorization expires. The service it answered for is
paid all the same, and once; what no sequencer would take again is logged and kept in `broken`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx
from eth_utils import to_checksum_address

from offchain.l2.codec import CodecError, TransferWithAuthorization, encode
from offchain.l2.signing import token_domain
from offchain.l2.stf import BlockContext, Status, signature_ok
from offchain.sequencer.confirmation import tx_hash
from offchain.x402.eip3009 import TransferAuthorization
from offchain.x402.settlement import (
    BAD_SIGNATURE,
    INSUFFICIENT_BALANCE,
    INVALID_PAYLOAD,
    NONCE_USED,
    SIMULATION_FAILED,
    TRANSACTION_FAILED,
    VALID_AFTER,
    VALID_BEFORE,
    Asset,
    Rejected,
)
from offchain.x402.store import PaymentRecord, PaymentStore, State

# The STF's refusals of an authorization, as x402 reasons.
_STATUS_REASONS = {
    Status.BAD_SIGNATURE.name: BAD_SIGNATURE,
    Status.INSUFFICIENT_BALANCE.name: INSUFFICIENT_BALANCE,
    Status.NOT_YET_VALID.name: VALID_AFTER,
    Status.EXPIRED.name: VALID_BEFORE,
    Status.AUTHORIZATION_USED.name: NONCE_USED,
}


log = logging.getLogger("agentl2.x402")

INFO_TTL = 0.5  # seconds a leader's GET /v1/sequencer is reused (a verify reads it thrice)
LEADER_WAIT = 5.0  # seconds to wait for one of our sequencers to lead before giving up


class SequencerUnavailable(Exception):
    """No configured sequencer answered, or none of them leads."""


def l2_record(auth: TransferAuthorization, signature: bytes, asset: Asset) -> bytes:
    """The L2 transaction an authorization becomes; `Rejected` if it cannot be one (a value or
    a window wider than the record's fields, a signature not of 65 bytes)."""
    try:
        return encode(l2_transaction(auth, signature, asset))
    except CodecError as exc:
        raise Rejected(INVALID_PAYLOAD, f"the authorization does not fit an L2 record: {exc}") from None


def l2_transaction(auth: TransferAuthorization, signature: bytes, asset: Asset) -> TransferWithAuthorization:
    return TransferWithAuthorization(
        sender=auth.from_,
        to=auth.to,
        token=asset.address,
        value=auth.value,
        valid_after=auth.valid_after,
        valid_before=auth.valid_before,
        nonce=auth.nonce,
        signature=signature,
    )


class SequencerSettlement:
    """Settles `exact` payments on rollup `chain_id` through the sequencers at `urls`.

    Submissions go to the sequencer that leads the slot: the one last seen leading, else the
    one a sequencer names as leader (its `GET /v1/sequencer`), else the one that answers 503
    with the leader's address. Reads go to the same leader, whose pending state holds what it
    confirmed and has not posted yet.
    """

    valid_before_margin = 3  # the soft confirmation comes in milliseconds; keep a little slack
    resolves_inline = True
    checks_at_send = True  # the sequencer admits against its pending state, or refuses with the STF's status

    def __init__(
        self,
        store: PaymentStore,
        chain_id: int,
        urls: list[str],
        assets: list[str],
        timeout: float = 10.0,
    ):
        if not urls:
            raise ValueError("a rollup settlement needs at least one sequencer URL")
        self.store = store
        self.chain_id = chain_id
        self.network = f"eip155:{chain_id}"
        self.urls = [url.rstrip("/") for url in urls]
        self._assets = {a.lower(): self._asset(a) for a in assets}
        self._http = httpx.Client(timeout=timeout)
        self._leader_url = self.urls[0]
        self._addresses: dict[str, str] = {}  # sequencer address (lower case) -> its URL
        self._info: tuple[float, dict[str, Any]] | None = None  # the leader's last GET /v1/sequencer
        # Soft-confirmed payments that a dropped slot could still lose: L2 hash -> (record id,
        # validBefore); kept until the authorization expires (after that no block can hold it).
        self._promised: dict[str, tuple[str, int]] = {}
        self._resent_at: set[tuple[str, str]] = set()  # (sequencer URL, hash) sent again after its drop
        self._promises_lock = threading.Lock()
        self.resent = 0  # dropped payments sent again
        self.broken: list[str] = []  # dropped payments no sequencer would take again

    # -- Settlement: reads -----------------------------------------------------------------------

    def asset(self, address: str) -> Asset | None:
        return self._assets.get(address.lower())

    def signers(self) -> list[str]:
        return []  # sequencers sign what they confirm; the facilitator sends no L1 transaction

    def clock(self) -> int:
        return int(self._leader()["time"])

    def signature_ok(self, auth: TransferAuthorization, signature: bytes, asset: Asset) -> bool:
        if len(signature) != 65:
            return False
        ctx = BlockContext(
            self.chain_id, "0x" + "00" * 20, 0, "0x" + "00" * 20
        )  # a TWA reads only the chain id
        return signature_ok(l2_transaction(auth, signature, asset), ctx)

    def authorization_used(self, auth: TransferAuthorization, asset: Asset) -> bool:
        answer = self._get(f"/v1/accounts/{auth.from_}/authorizations/0x{auth.nonce.hex()}")
        return bool(answer["used"])

    def balance(self, payer: str, asset: Asset) -> int:
        return int(self._get(f"/v1/accounts/{payer}/balance", params={"token": asset.address})["balance"])

    def simulate(self, auth: TransferAuthorization, signature: bytes, asset: Asset) -> int | None:
        l2_record(auth, signature, asset)  # the admission at settle is the STF itself
        return None

    # -- Settlement: sending ---------------------------------------------------------------------

    def send(
        self,
        record: PaymentRecord,
        auth: TransferAuthorization,
        signature: bytes,
        asset: Asset,
        deadline: float,
    ) -> None:
        raw = l2_record(auth, signature, asset)
        if not self.store.submitted(record.id, "0x" + tx_hash(raw).hex(), raw, 0):
            return  # someone else moved it on
        self._submit(self.store.get(record.id), deadline)

    def resolve(self, record: PaymentRecord, wait: float = 0.0) -> None:
        if record.state != State.SUBMITTED or record.raw_tx is None:
            return
        found = self._find(record)
        if found is not None:
            self._settled(record, found)
            return
        if self.clock() >= record.valid_before:
            self.store.failed(record.id, f"{VALID_BEFORE}: expired before a sequencer confirmed it")
            return
        self._submit(record, time.monotonic() + max(wait, 1.0))

    def settled_elsewhere(self, record: PaymentRecord) -> str | None:
        found = self._find(record)
        return record.tx_hash if found is not None else None

    def reconcile(self, startup: bool = False) -> None:
        if startup:  # the promises a previous run was given, while they can still be lost
            for record in self.store.in_state(State.SETTLED):
                if record.network == self.network and record.tx_hash:
                    self._promise(record)
        for record in self.store.in_state(State.SUBMITTED):
            if record.network == self.network:
                try:
                    self.resolve(record)
                except (SequencerUnavailable, httpx.HTTPError):
                    continue  # no sequencer answers now: the next round tries again
        self._send_dropped_again()

    def start(self) -> None:
        return None

    def stop(self) -> None:
        self._http.close()

    # -- internals -------------------------------------------------------------------------------

    def _settled(self, record: PaymentRecord, confirmation: dict[str, Any] | None) -> None:
        if self.store.settled(record.id, record.tx_hash or "", json.dumps(confirmation)):
            self._promise(record)

    def _promise(self, record: PaymentRecord) -> None:
        with self._promises_lock:
            self._promised[record.tx_hash or ""] = (record.id, record.valid_before)

    def _send_dropped_again(self) -> None:
        """Sends each promised payment that a sequencer dropped to the leader, once per drop."""
        with self._promises_lock:
            if not self._promised:
                return
        now = self.clock()
        with self._promises_lock:
            for txn_hash in [h for h, (_, before) in self._promised.items() if before <= now]:
                del self._promised[txn_hash]  # expired: no block can hold it any more
            promised = dict(self._promised)
        for url in self.urls:
            try:
                answer = self._http.get(f"{url}/v1/dropped")
                answer.raise_for_status()
                dropped = set(answer.json()["dropped"])
            except (httpx.HTTPError, KeyError, ValueError):
                continue  # that sequencer is down: what it dropped waits for the next round
            # A hash it no longer lists was sent to it again: a later drop there is a new one.
            self._resent_at = {(u, h) for u, h in self._resent_at if u != url or h in dropped}
            for txn_hash in dropped & promised.keys() - {h for u, h in self._resent_at if u == url}:
                record = self.store.get(promised[txn_hash][0])
                if record is not None and self._send_again(record):
                    self._resent_at.add((url, txn_hash))

    def _send_again(self, record: PaymentRecord) -> bool:
        """Submits a settled payment's record to the leader again; False to retry next round."""
        assert record.raw_tx is not None
        try:
            self._leader()
            answer = self._http.post(
                f"{self._leader_url}/v1/transactions", json={"record": "0x" + record.raw_tx.hex()}
            )
        except (SequencerUnavailable, httpx.HTTPError):
            return False
        if answer.status_code in (200, 409):  # confirmed again (409: that leader holds it)
            self.resent += answer.status_code == 200
            return True
        if answer.status_code == 503:
            self._info = None
            self._follow(answer)
            return False
        if self._posted(record.tx_hash or ""):  # refused as used: by this very record, posted
            return True
        log.error(
            "payment %s: confirmed, dropped unposted, and refused when sent again: %s",
            record.id,
            answer.text[:200],
        )
        with self._promises_lock:
            self._promised.pop(record.tx_hash or "", None)
        self.broken.append(record.tx_hash or "")
        return True

    def _submit(self, record: PaymentRecord | None, deadline: float) -> None:
        """Posts the record to the leader until it is confirmed, refused, or `deadline` passes;
        a lost answer leaves the payment submitted, for `resolve` to finish."""
        assert record is not None and record.raw_tx is not None
        body = {"record": "0x" + record.raw_tx.hex()}
        while True:
            url = self._leader_url
            try:
                answer = self._http.post(f"{url}/v1/transactions", json=body)
            except httpx.HTTPError:  # the answer may be lost, not the record: ask by its hash
                answer, found = None, self._find(record)
                if found is not None:
                    self._settled(record, found)
                    return
            if answer is not None and answer.status_code == 200:
                self._settled(record, answer.json())
                return
            if answer is not None and answer.status_code == 409:  # it confirmed this record before
                found = self._receipt(url, record.tx_hash or "")
                if found is not None:
                    self._settled(record, found)
                    return
            elif answer is not None and answer.status_code == 400:
                return self._refused(record, answer.json())
            elif answer is not None and answer.status_code == 503:
                self._info = None
                self._follow(answer)
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def _posted(self, txn_hash: str) -> bool:
        """Whether a sequencer posted this transaction and it succeeded in its batch."""
        for url in self.urls:
            try:
                answer = self._http.get(f"{url}/v1/transactions/{txn_hash}")
            except httpx.HTTPError:
                continue
            if answer.status_code == 200 and answer.json().get("status") == int(Status.OK):
                return True
        return False

    def _refused(self, record: PaymentRecord, refusal: dict[str, Any]) -> None:
        status = refusal.get("status")
        reason = _STATUS_REASONS.get(status or "", SIMULATION_FAILED if status else TRANSACTION_FAILED)
        if reason == NONCE_USED and self._find(record) is not None:  # our own record, confirmed before
            self._settled(record, self._find(record))
            return
        self.store.failed(record.id, f"{reason}: the sequencer refused it: {refusal.get('error')}")

    def _find(self, record: PaymentRecord) -> dict[str, Any] | None:
        """The soft confirmation of this record's L2 transaction, from any sequencer that has it."""
        for url in [self._leader_url] + [u for u in self.urls if u != self._leader_url]:
            found = self._receipt(url, record.tx_hash or "")
            if found is not None:
                return found
        return None

    def _receipt(self, url: str, txn_hash: str) -> dict[str, Any] | None:
        try:
            answer = self._http.get(f"{url}/v1/transactions/{txn_hash}")
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        receipt = answer.json()
        if receipt.get("status") not in (None, int(Status.OK)):
            return None  # posted, and failed in the batch: it paid nothing
        return receipt["confirmation"]

    def _follow(self, answer: httpx.Response) -> None:
        """After a 503: go to the leader it names (a backlog's 503 names none: wait)."""
        error = str(answer.json().get("error", ""))
        for address, url in self._known_addresses().items():
            if address in error.lower():
                self._leader_url = url
                return
        if answer.headers.get("retry-after"):  # a slot closing or a backlog: soon over
            time.sleep(min(0.1, float(answer.headers["retry-after"])))

    def _leader(self) -> dict[str, Any]:
        """`GET /v1/sequencer` of the leader (following the one asked if it does not lead), at
        most `INFO_TTL` seconds old: a verify reads it three times. A leader seen a moment after
        its slot ended only answers with its posted state; a payment checked against it that the
        next leader refuses fails cleanly at settle."""
        if self._info is not None and time.monotonic() - self._info[0] < INFO_TTL:
            return self._info[1]
        deadline = time.monotonic() + LEADER_WAIT
        while True:
            tried: set[str] = set()
            url = self._leader_url
            while url not in tried:
                tried.add(url)
                try:
                    info = self._http.get(f"{url}/v1/sequencer").json()
                except httpx.HTTPError:
                    url = next((u for u in self.urls if u not in tried), url)
                    continue
                address = str(info["address"]).lower()
                self._addresses[address] = url
                # The slot's leader, admitting or in its closing blocks: its state is the latest.
                if info.get("leads") or str(info.get("leader", "")).lower() == address:
                    self._leader_url = url
                    self._info = (time.monotonic(), info)
                    return info
                url = self._known_addresses().get(str(info.get("leader", "")).lower(), url)
            if time.monotonic() >= deadline:
                raise SequencerUnavailable(f"none of the sequencers {self.urls} leads the slot now")
            time.sleep(0.05)  # a leader not among ours, or one just starting: it may hand over soon

    def _known_addresses(self) -> dict[str, str]:
        if len(self._addresses) < len(self.urls):
            for url in self.urls:
                if url in self._addresses.values():
                    continue
                try:
                    self._addresses[str(self._http.get(f"{url}/v1/sequencer").json()["address"]).lower()] = (
                        url
                    )
                except (httpx.HTTPError, KeyError, ValueError):
                    continue
        return self._addresses

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        self._leader()
        answer = self._http.get(f"{self._leader_url}{path}", params=params)
        answer.raise_for_status()
        return answer.json()

    def _asset(self, address: str) -> Asset:
        address = to_checksum_address(address)
        return Asset(address=address, domain=token_domain(self.chain_id, address))
