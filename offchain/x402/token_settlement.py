"""Settlement on an EVM chain's EIP-3009 token (AgentUSD on L1): x402's classic `exact` path.

Checks read the chain (the execution clock, ERC-1271 wallets, `authorizationState`, the balance,
an `eth_estimateGas` simulation). A claimed payment is sent as `transferWithAuthorization` from
the facilitator's account, alone or with others through the BatchSettler; the signed transaction
is stored before it is broadcast, so that after a crash the same transaction is broadcast again
or found failed, never a second one. Outcomes are read from receipts and the token's
AuthorizationUsed and Transfer logs (someone else may have submitted the same authorization).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound

from offchain.chain.ecdsa import recover_signer
from offchain.chain.eip712 import Eip712Domain
from offchain.x402 import abi
from offchain.x402.clock import execution_clock
from offchain.x402.eip3009 import TransferAuthorization
from offchain.x402.settlement import (
    BAD_SIGNATURE,
    INSUFFICIENT_BALANCE,
    NONCE_USED,
    SIMULATION_FAILED,
    TRANSACTION_FAILED,
    TRANSFER_EVENT_MISMATCH,
    VALID_BEFORE,
    Asset,
    Rejected,
)
from offchain.x402.store import PaymentRecord, PaymentStore, State

_REVERT_REASONS = {
    abi.selector("ERC3009InvalidSignature()"): BAD_SIGNATURE,
    abi.selector("ECDSAInvalidSignature()"): BAD_SIGNATURE,
    abi.selector("ECDSAInvalidSignatureLength(uint256)"): BAD_SIGNATURE,
    abi.selector("ECDSAInvalidSignatureS(bytes32)"): BAD_SIGNATURE,
    abi.selector("ERC3009UsedAuthorization(address,bytes32)"): NONCE_USED,
    abi.selector("ERC3009InvalidAuthorizationTime(uint256,uint256)"): VALID_BEFORE,
    abi.selector("ERC20InsufficientBalance(address,uint256,uint256)"): INSUFFICIENT_BALANCE,
}


# BatchSettler.CALL_OVERHEAD: gas an authorization needs left besides its own allowance.
SETTLER_CALL_OVERHEAD = 20_000
# Transaction gas of a batch besides its authorizations' (intrinsic cost, loop, BatchSettled).
_BATCH_BASE_GAS = 100_000
# Calldata gas of one authorization in a batch (about 480 bytes at 16 gas each), with a margin.
_BATCH_ITEM_CALLDATA_GAS = 10_000
# Selector of BatchSettler's SettlerGasShort(uint256,uint256): an authorization that did not run.
GAS_SHORT = abi.selector("SettlerGasShort(uint256,uint256)")


def authorization_gas(estimate: int) -> int:
    """The gas one authorization gets, from `eth_estimateGas` of it sent to the token alone.

    That estimate also counts the 21,000 intrinsic gas and the calldata, which a call from the
    settler does not pay; a quarter more covers a payer whose wallet costs a little more when it
    runs. A wallet that costs more still burns this much and fails alone.
    """
    return estimate + estimate // 4


def settler_gas_needed(gas_limit: int) -> int:
    """BatchSettler.gasNeeded: the gas left an authorization needs to get its full allowance."""
    return gas_limit + gas_limit // 63 + SETTLER_CALL_OVERHEAD


def batch_gas(limits: list[int]) -> int:
    """Transaction gas of a batch that gives every authorization its full allowance, whatever
    the others burn: no authorization of it is ever skipped for want of the batch's gas."""
    return _BATCH_BASE_GAS + sum(settler_gas_needed(g) + _BATCH_ITEM_CALLDATA_GAS for g in limits)


def revert_reason(data: bytes) -> str:
    """The x402 reason for a token revert, from its custom-error selector."""
    return _REVERT_REASONS.get(bytes(data[:4]), SIMULATION_FAILED)


@dataclass
class _Batch:
    """Settle requests waiting for the next BatchSettler transaction."""

    items: list[tuple[PaymentRecord, TransferAuthorization, bytes, threading.Event]] = field(
        default_factory=list
    )


class TokenSettlement:
    """Sends EIP-3009 transfers to the tokens `assets` on the chain of `w3`, from `signer_key`'s
    account; with a `settler` and `batch_size` > 0, through the BatchSettler in batches."""

    # validBefore must leave at least this many seconds, after the execution clock (the time of
    # the next block, never earlier than the wall clock), to get the transaction mined.
    valid_before_margin = 6
    checks_at_send = False  # a transaction that would revert costs gas: settle reads first

    def __init__(
        self,
        w3: Web3,
        signer_key: str,
        store: PaymentStore,
        assets: list[str],
        receipt_timeout: float = 30.0,
        settler: str | None = None,
        batch_size: int = 0,
        batch_wait: float = 0.2,
        max_batch_gas: int = 15_000_000,
    ):
        self.w3 = w3
        self.signer: LocalAccount = Account.from_key(signer_key)
        self.store = store
        self.network = f"eip155:{w3.eth.chain_id}"
        self.receipt_timeout = receipt_timeout
        self.assets = {a.lower(): self._load_asset(a) for a in assets}
        self._send_lock = threading.Lock()  # one signer, one nonce sequence: sends are serialized
        self._settler = (
            w3.eth.contract(address=to_checksum_address(settler), abi=abi.SETTLER_ABI) if settler else None
        )
        self.batch_size = batch_size if settler else 0
        self.batch_wait = batch_wait
        self.max_batch_gas = max_batch_gas
        self._batch = _Batch()
        self._batch_cv = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def resolves_inline(self) -> bool:
        return not self.batch_size  # a batch's thread resolves its payments from its receipt

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.batch_size:
            thread = threading.Thread(target=self._batch_loop, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with self._batch_cv:
            self._batch_cv.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- Settlement: reads -----------------------------------------------------------------------

    def asset(self, address: str) -> Asset | None:
        return self.assets.get(address.lower())

    def signers(self) -> list[str]:
        return [self.signer.address]

    def clock(self) -> int:
        return execution_clock(self.w3)

    def signature_ok(self, auth: TransferAuthorization, signature: bytes, asset: Asset) -> bool:
        digest = auth.digest(asset.domain)
        if self.w3.eth.get_code(auth.from_):  # a contract wallet answers through ERC-1271
            wallet = self.w3.eth.contract(address=auth.from_, abi=abi.ERC1271_ABI)
            try:
                return bytes(wallet.functions.isValidSignature(digest, signature).call()) == abi.ERC1271_MAGIC
            except (ContractLogicError, ValueError):
                return False
        return recover_signer(digest, signature) == auth.from_

    def authorization_used(self, auth: TransferAuthorization, asset: Asset) -> bool:
        return bool(self._token(asset).functions.authorizationState(auth.from_, auth.nonce).call())

    def balance(self, payer: str, asset: Asset) -> int:
        return int(self._token(asset).functions.balanceOf(payer).call())

    def simulate(self, auth: TransferAuthorization, signature: bytes, asset: Asset) -> int | None:
        """An estimate is a simulation that also says what the call costs."""
        call = self._token(asset).functions.transferWithAuthorization(*auth.as_args(), signature)
        try:
            estimate = call.estimate_gas({"from": self.signer.address})
        except ContractLogicError as exc:
            raise Rejected(revert_reason(HexBytes(exc.data or b"")), f"simulation reverted: {exc}") from None
        return authorization_gas(estimate)

    # -- Settlement: sending ---------------------------------------------------------------------

    def send(
        self,
        record: PaymentRecord,
        auth: TransferAuthorization,
        signature: bytes,
        asset: Asset,
        deadline: float,
    ) -> None:
        gas = record.gas or self._estimate(asset, auth, signature)
        if self.batch_size:
            self._enqueue(record.model_copy(update={"gas": gas}), auth, signature, deadline)
        else:
            self._send_alone(record.id, asset, auth, signature, gas)

    def _send_alone(
        self, id_: str, asset: Asset, auth: TransferAuthorization, signature: bytes, gas: int
    ) -> None:
        """Sends one claimed payment straight to the token, with the gas chosen for it."""
        call = self._token(asset).functions.transferWithAuthorization(*auth.as_args(), signature)
        try:
            self._sign_and_send([id_], call, gas=gas)
        except Exception:
            self.store.release(id_)  # nothing was signed: the payment can be settled again
            raise

    def _estimate(self, asset: Asset, auth: TransferAuthorization, signature: bytes) -> int:
        """The gas of a payment whose record predates stored estimates (a file of an older release)."""
        call = self._token(asset).functions.transferWithAuthorization(*auth.as_args(), signature)
        try:
            return authorization_gas(call.estimate_gas({"from": self.signer.address}))
        except Exception:  # it will fail on chain and be reported; give it a plain transfer's gas
            return authorization_gas(100_000)

    def _sign_and_send(self, ids: list[str], call: Any, gas: int) -> str:
        """Signs with the next nonce, stores the raw transaction, then broadcasts it.

        Once stored, the transaction counts as sent: a failed broadcast leaves it pending, and
        the reconciler broadcasts it again (same hash) or, if it can never be mined, fails it.
        """
        with self._send_lock:
            nonce = self.w3.eth.get_transaction_count(self.signer.address, "pending")
            tx = call.build_transaction(
                {
                    "from": self.signer.address,
                    "nonce": nonce,
                    "gas": gas,
                    "gasPrice": self.w3.eth.gas_price,
                    "chainId": self.w3.eth.chain_id,
                }
            )
            signed = self.signer.sign_transaction(tx)
            tx_hash = "0x" + bytes(signed.hash).hex()
            for id_ in ids:
                self.store.submitted(id_, tx_hash, bytes(signed.raw_transaction), nonce)
            with contextlib.suppress(Exception):
                self.w3.eth.send_raw_transaction(signed.raw_transaction)
        return tx_hash

    # -- receipts and recovery -------------------------------------------------------------------

    def resolve(self, record: PaymentRecord, wait: float = 0.0) -> None:
        """Settles or fails a submitted payment from its receipt, if there is one yet."""
        if record.tx_hash:
            self._resolve(record, wait)

    def _resolve(self, record: PaymentRecord, wait: float = 0.0) -> None:
        """Settles or fails a submitted payment from its receipt, if there is one yet."""
        try:
            if wait > 0:
                receipt = self.w3.eth.wait_for_transaction_receipt(
                    record.tx_hash, timeout=wait, poll_latency=0.02
                )
            else:
                receipt = self.w3.eth.get_transaction_receipt(record.tx_hash)
        except (TimeExhausted, TransactionNotFound):
            return
        if receipt["status"] == 1 and self._paid_in(receipt, record):
            self.store.settled(record.id, record.tx_hash)
            return
        # Anyone may submit a signed authorization: if someone else's transaction used it first,
        # ours failed (or was skipped) but the payee was paid all the same.
        elsewhere = self.settled_elsewhere(record)
        if elsewhere is not None:
            self.store.settled(record.id, elsewhere)
        elif receipt["status"] != 1:
            self.store.failed(record.id, f"{TRANSACTION_FAILED}: the transaction reverted", record.tx_hash)
        elif (self._skip_data(receipt, record) or b"")[:4] == GAS_SHORT:
            self._resend_alone(record)
        else:
            self.store.failed(record.id, self._skip_reason(receipt, record), record.tx_hash)

    def _resend_alone(self, record: PaymentRecord) -> None:
        """A batch skipped this payment unrun (its gas did not cover it): send it on its own."""
        assert record.tx_hash is not None
        if not self.store.requeue(record.id, record.tx_hash):
            return  # someone else (the reconciler or the batch thread) took it
        payload = json.loads(record.payload)["payload"]
        auth = TransferAuthorization.model_validate(payload["authorization"])
        signature = bytes(HexBytes(payload["signature"]))
        asset = self.assets[record.asset.lower()]
        self._send_alone(
            record.id, asset, auth, signature, record.gas or self._estimate(asset, auth, signature)
        )

    def settled_elsewhere(self, record: PaymentRecord, lookback: int = 10_000) -> str | None:
        """The hash of a recent transaction that used this authorization and paid it, if any."""
        nonce = bytes.fromhex(record.id.rsplit(":0x", 1)[1])
        latest = self.w3.eth.block_number
        logs = self.w3.eth.get_logs(
            {
                "address": record.asset,
                "fromBlock": max(0, latest - lookback),
                "toBlock": latest,
                "topics": [
                    "0x" + abi.AUTHORIZATION_USED_TOPIC.hex(),
                    "0x" + _topic(record.payer).hex(),
                    "0x" + nonce.hex(),
                ],
            }
        )
        for log in logs:
            receipt = self.w3.eth.get_transaction_receipt(log["transactionHash"])
            if self._paid_in(receipt, record):
                return "0x" + bytes(log["transactionHash"]).hex()
        return None

    def _paid_in(self, receipt: Any, record: PaymentRecord) -> bool:
        """Whether the receipt shows this authorization used and the exact transfer made."""
        nonce = bytes.fromhex(record.id.rsplit(":0x", 1)[1])
        payer, pay_to = _topic(record.payer), _topic(record.pay_to)
        used = transferred = False
        for log in receipt["logs"]:
            if log["address"].lower() != record.asset.lower():
                continue
            topics = [bytes(t) for t in log["topics"]]
            if topics[0] == abi.AUTHORIZATION_USED_TOPIC and topics[1:] == [payer, nonce]:
                used = True
            if (
                topics[0] == abi.TRANSFER_TOPIC
                and topics[1:] == [payer, pay_to]
                and int.from_bytes(bytes(log["data"]), "big") == int(record.amount)
            ):
                transferred = True
        return used and transferred

    def _skip_data(self, receipt: Any, record: PaymentRecord) -> bytes | None:
        """The reason data of the settler's AuthorizationSkipped for this authorization, if any."""
        nonce = bytes.fromhex(record.id.rsplit(":0x", 1)[1])
        for log in receipt["logs"]:
            topics = [bytes(t) for t in log["topics"]]
            if (
                log["address"].lower() == (self._settler.address.lower() if self._settler else "")
                and topics
                and topics[0] == abi.AUTHORIZATION_SKIPPED_TOPIC
                and topics[2:] == [_topic(record.payer), nonce]
            ):
                data = bytes(log["data"])
                reason_offset = int.from_bytes(data[32:64], "big")
                length = int.from_bytes(data[reason_offset : reason_offset + 32], "big")
                return data[reason_offset + 32 : reason_offset + 32 + length]
        return None

    def _skip_reason(self, receipt: Any, record: PaymentRecord) -> str:
        """Why a batch skipped this authorization (from the settler's AuthorizationSkipped)."""
        reason = self._skip_data(receipt, record)
        if reason is None:
            return f"{TRANSFER_EVENT_MISMATCH}: the receipt lacks the expected transfer"
        return f"{revert_reason(reason)}: skipped by the batch settler"

    def reconcile(self, startup: bool = False) -> None:
        """Finishes submitted payments: reads receipts, re-broadcasts stored transactions the node
        does not know, and fails those that can never be mined."""
        now = execution_clock(self.w3)
        for record in self.store.in_state(State.SUBMITTED):
            if record.network != self.network:
                continue
            self._resolve(record)
            current = self.store.get(record.id)
            if current is None or current.state != State.SUBMITTED or record.raw_tx is None:
                continue
            try:
                self.w3.eth.get_transaction(record.tx_hash)
                continue  # known to the node: wait for it
            except TransactionNotFound:
                pass
            if now < record.valid_before:  # an expired authorization's transaction could only revert
                with contextlib.suppress(Exception):
                    self.w3.eth.send_raw_transaction(record.raw_tx)
            self._fail_if_unminable(record)

    def _fail_if_unminable(self, record: PaymentRecord) -> None:
        """A stored transaction can no longer be mined once another transaction took its nonce,
        or once the authorization it carries has expired."""
        nonce_taken = self.w3.eth.get_transaction_count(self.signer.address, "latest") > (
            record.tx_nonce or 0
        )
        expired = execution_clock(self.w3) >= record.valid_before
        if not nonce_taken and not expired:
            return
        try:
            self.w3.eth.get_transaction_receipt(record.tx_hash)
            return  # it was mined after all: the next pass resolves it
        except TransactionNotFound:
            pass
        elsewhere = self.settled_elsewhere(record)
        if elsewhere is not None:
            self.store.settled(record.id, elsewhere)
        else:
            self.store.failed(record.id, f"{TRANSACTION_FAILED}: the transaction was dropped", record.tx_hash)

    # -- batching --------------------------------------------------------------------------------

    def _enqueue(
        self, record: PaymentRecord, auth: TransferAuthorization, signature: bytes, deadline: float
    ) -> None:
        done = threading.Event()
        with self._batch_cv:
            self._batch.items.append((record, auth, signature, done))
            self._batch_cv.notify_all()
        done.wait(max(0.0, deadline - time.monotonic()))

    def _batch_loop(self) -> None:
        while not self._stop.is_set():
            with self._batch_cv:
                while not self._batch.items and not self._stop.is_set():
                    self._batch_cv.wait()
                deadline = time.monotonic() + self.batch_wait
                while len(self._batch.items) < self.batch_size and not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._batch_cv.wait(left)
                items = self._batch.items[: self.batch_size]
                del self._batch.items[: len(items)]
            if items:
                self._settle_batch(items)

    def _settle_batch(
        self, items: list[tuple[PaymentRecord, TransferAuthorization, bytes, threading.Event]]
    ) -> None:
        assert self._settler is not None
        by_asset: dict[str, list] = {}
        for item in items:
            by_asset.setdefault(item[0].asset, []).append(item)
        chunks = [chunk for group in by_asset.values() for chunk in self._by_gas(group)]
        for group in chunks:
            asset = group[0][0].asset
            entries = [(*auth.as_args(), record.gas, signature) for record, auth, signature, _ in group]
            ids = [record.id for record, *_ in group]
            try:
                call = self._settler.functions.settle(asset, entries)
                gas = batch_gas([record.gas or 0 for record, *_ in group])
                tx_hash = self._sign_and_send(ids, call, gas=gas)
            except Exception:
                for id_ in ids:  # nothing was signed: these payments can be settled again
                    self.store.release(id_)
                for *_, done in group:
                    done.set()
                continue
            with contextlib.suppress(TimeExhausted):  # if it times out, reconcile finishes it
                self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout)
                for id_ in ids:
                    current = self.store.get(id_)
                    if current is not None:
                        self._resolve(current)
            for *_, done in group:
                done.set()

    def _by_gas(
        self, group: list[tuple[PaymentRecord, TransferAuthorization, bytes, threading.Event]]
    ) -> list[list[tuple[PaymentRecord, TransferAuthorization, bytes, threading.Event]]]:
        """Splits one asset's batch so that no transaction asks for more than `max_batch_gas`.

        A batch is never sent with an estimate of itself: `eth_estimateGas` finds the least gas
        at which the transaction does not revert, and the settler does not revert when it skips
        authorizations for want of gas. Each authorization gets its own estimate (from verify)
        and the transaction the sum of what they need (`batch_gas`).
        """
        chunks: list[list] = [[]]
        for item in group:
            if chunks[-1] and batch_gas([r.gas or 0 for r, *_ in chunks[-1]] + [item[0].gas or 0]) > (
                self.max_batch_gas
            ):
                chunks.append([])
            chunks[-1].append(item)
        return chunks

    # -- helpers ---------------------------------------------------------------------------------

    def _token(self, asset: Asset) -> Any:
        return self.w3.eth.contract(address=asset.address, abi=abi.TOKEN_ABI)

    def _load_asset(self, address: str) -> Asset:
        address = to_checksum_address(address)
        if not self.w3.eth.get_code(address):
            raise ValueError(f"asset {address} has no code on {self.network}")
        token = self.w3.eth.contract(address=address, abi=abi.TOKEN_ABI)
        return Asset(address=address, domain=Eip712Domain.from_eip5267(token.functions.eip712Domain().call()))


def _topic(address: str) -> bytes:
    return bytes.fromhex(address[2:].lower()).rjust(32, b"\x00")
