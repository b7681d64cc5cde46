"""Durable records in SQLite: the facilitator's reservations and settlements, and a resource
server's deliveries (`DeliveryStore`, below).

A payment is keyed by (network, asset, payer, nonce), the identity of an EIP-3009
authorization. Its life:

    reserved ──claim──▶ sending ──▶ submitted(tx) ──▶ settled(tx)
        │                   ▲              ├────────▶ failed(tx, reason)
        │                   └───requeue────┘  (a batch skipped it unrun: sent again alone)
        └───────────────────┴───────────────────────▶ failed(reason)

`reserve` is an INSERT that only one caller can win, made only if the payer's balance covers it
and the payer's other pending payments (so twenty authorizations of a payer who can afford one
reserve one); a reservation ends at the authorization's validBefore (`expire`). `claim` is a
conditional UPDATE, so concurrent settles send once. The raw signed
transaction is stored before it is broadcast, so after a crash it is re-sent (same hash), never
re-signed with a new nonce.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    id           TEXT PRIMARY KEY,
    network      TEXT NOT NULL,
    asset        TEXT NOT NULL,
    payer        TEXT NOT NULL,
    pay_to       TEXT NOT NULL,
    amount       TEXT NOT NULL,
    valid_before INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL,
    tx_hash      TEXT,
    raw_tx       BLOB,
    tx_nonce     INTEGER,
    error        TEXT,
    created      REAL NOT NULL,
    updated      REAL NOT NULL,
    gas          INTEGER,
    receipt      TEXT
);
CREATE INDEX IF NOT EXISTS payments_state ON payments(state);
CREATE INDEX IF NOT EXISTS payments_payer ON payments(payer, asset);
"""

# Columns added after the first release, with their types: a file written before gains them.
_ADDED_COLUMNS = {"gas": "INTEGER", "receipt": "TEXT"}


class State(StrEnum):
    RESERVED = "reserved"
    SENDING = "sending"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    FAILED = "failed"


class Reservation(StrEnum):
    """What `reserve` did."""

    RESERVED = "reserved"  # recorded: it counts against the payer's balance until validBefore
    AGAIN = "again"  # the same payment, already reserved and not yet claimed
    DUPLICATE = "duplicate"  # another payment with this nonce, or this one past reserved
    OVER_BALANCE = "over_balance"  # with the payer's other pending payments, more than it holds


# States in which a payment's amount is on its way out of the payer's balance.
_PENDING_SPEND = (State.RESERVED, State.SENDING, State.SUBMITTED)


class PaymentRecord(BaseModel):
    id: str
    network: str
    asset: str
    payer: str
    pay_to: str
    amount: str
    valid_before: int
    payload: str
    state: State
    tx_hash: str | None = None
    raw_tx: bytes | None = None
    tx_nonce: int | None = None
    error: str | None = None
    created: float
    updated: float
    gas: int | None = None
    """The gas its token call gets (from verify's estimate; None in a file of an older release)."""
    receipt: str | None = None
    """JSON of what the network gave for it beyond the transaction hash (on the L2: the
    sequencer's signed soft confirmation); answered in the settle response's `extra`."""


def payment_id(network: str, asset: str, payer: str, nonce: bytes) -> str:
    return f"{network}:{asset.lower()}:{payer.lower()}:0x{nonce.hex()}"


class PaymentStore:
    """Thread-safe access to the records file (one connection, serialized)."""

    def __init__(self, path: Path | str):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a reservation survives a power cut
        self._db.executescript(_SCHEMA)
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(payments)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE payments ADD COLUMN {column} {kind}")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def reserve(self, record: PaymentRecord, balance: int, now: int) -> Reservation:
        """Records a verified payment if the payer's `balance` covers it and every other payment
        of the payer in this asset still pending (reserved and not expired at `now`, being sent,
        or sent and not resolved). Of concurrent calls for one authorization only one reserves;
        presenting the very same payment again while it is only reserved answers AGAIN."""
        with self._lock:
            row = self._db.execute("SELECT payload, state FROM payments WHERE id=?", (record.id,)).fetchone()
            if row is not None:
                same = row["payload"] == record.payload and row["state"] == State.RESERVED
                return Reservation.AGAIN if same else Reservation.DUPLICATE
            marks = ",".join("?" for _ in _PENDING_SPEND)
            pending = self._db.execute(
                f"SELECT amount FROM payments WHERE payer=? AND asset=? AND state IN ({marks}) "
                "AND (state<>? OR valid_before>?)",
                (record.payer, record.asset, *_PENDING_SPEND, State.RESERVED, now),
            ).fetchall()
            if sum(int(r["amount"]) for r in pending) + int(record.amount) > balance:
                return Reservation.OVER_BALANCE
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO payments (id,network,asset,payer,pay_to,amount,valid_before,"
                "payload,state,tx_hash,raw_tx,tx_nonce,error,created,updated,gas,receipt) VALUES "
                "(:id,:network,:asset,:payer,:pay_to,:amount,:valid_before,:payload,:state,"
                ":tx_hash,:raw_tx,:tx_nonce,:error,:created,:updated,:gas,:receipt)",
                record.model_dump(mode="python"),
            )
            return Reservation.RESERVED if cursor.rowcount == 1 else Reservation.DUPLICATE

    def expire(self, now: int, network: str) -> list[str]:
        """Ends the reservations on `network` whose validBefore has passed at `now`, that
        network's clock (the authorization can no longer settle): reserved → failed. Returns
        their ids."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM payments WHERE state=? AND valid_before<=? AND network=?",
                (State.RESERVED, now, network),
            ).fetchall()
            self._db.execute(
                "UPDATE payments SET state=?, error=?, updated=? WHERE state=? AND valid_before<=? AND network=?",
                (
                    State.FAILED,
                    "invalid_exact_evm_payload_authorization_valid_before: expired before it was settled",
                    time.time(),
                    State.RESERVED,
                    now,
                    network,
                ),
            )
        return [row["id"] for row in rows]

    def claim(self, id_: str) -> bool:
        """Moves a reserved payment to sending; only one caller wins."""
        return self._transition(id_, State.RESERVED, State.SENDING)

    # Each write below names the states it may leave, so that two flows (a live settle and the
    # background reconciler, say) never overwrite each other's outcome.

    def submitted(self, id_: str, tx_hash: str, raw_tx: bytes, tx_nonce: int) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE payments SET state=?, tx_hash=?, raw_tx=?, tx_nonce=?, updated=? WHERE id=? AND state=?",
                (State.SUBMITTED, tx_hash, raw_tx, tx_nonce, time.time(), id_, State.SENDING),
            )
            return cursor.rowcount == 1

    def settled(self, id_: str, tx_hash: str, receipt: str | None = None) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE payments SET state=?, tx_hash=?, receipt=COALESCE(?, receipt), error=NULL, updated=? "
                "WHERE id=? AND state IN (?, ?)",
                (State.SETTLED, tx_hash, receipt, time.time(), id_, State.SENDING, State.SUBMITTED),
            )
            return cursor.rowcount == 1

    def failed(self, id_: str, reason: str, tx_hash: str | None = None) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE payments SET state=?, error=?, tx_hash=COALESCE(?, tx_hash), updated=? "
                "WHERE id=? AND state IN (?, ?, ?)",
                (
                    State.FAILED,
                    reason,
                    tx_hash,
                    time.time(),
                    id_,
                    State.RESERVED,
                    State.SENDING,
                    State.SUBMITTED,
                ),
            )
            return cursor.rowcount == 1

    def requeue(self, id_: str, tx_hash: str) -> bool:
        """Takes back a payment that transaction `tx_hash` did not run (a batch skipped it unrun),
        to send it again: submitted → sending, its transaction forgotten. Only one caller wins."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE payments SET state=?, tx_hash=NULL, raw_tx=NULL, tx_nonce=NULL, updated=? "
                "WHERE id=? AND state=? AND tx_hash=?",
                (State.SENDING, time.time(), id_, State.SUBMITTED, tx_hash),
            )
            return cursor.rowcount == 1

    def release(self, id_: str) -> None:
        """Returns a payment that was claimed but never sent to the reserved state."""
        self._transition(id_, State.SENDING, State.RESERVED)

    def get(self, id_: str) -> PaymentRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM payments WHERE id=?", (id_,)).fetchone()
        return PaymentRecord(**dict(row)) if row else None

    def in_state(self, *states: State) -> list[PaymentRecord]:
        marks = ",".join("?" for _ in states)
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM payments WHERE state IN ({marks})", states).fetchall()
        return [PaymentRecord(**dict(row)) for row in rows]

    def _transition(self, id_: str, old: State, new: State) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE payments SET state=?, updated=? WHERE id=? AND state=?", (new, time.time(), id_, old)
            )
            return cursor.rowcount == 1


_DELIVERY_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    payment   TEXT PRIMARY KEY,
    resource  TEXT NOT NULL,
    digest    TEXT NOT NULL,
    state     TEXT NOT NULL,
    created   REAL NOT NULL,
    updated   REAL NOT NULL
);
"""


class Delivery(StrEnum):
    """Where a resource server is with delivering what a payment bought."""

    SERVING = "serving"  # a request is settling it or handing its response over now
    OPEN = "open"  # paid (or being paid) and never handed over: deliverable once
    SERVED = "served"  # handed over to an open connection


class DeliveryRecord(BaseModel):
    payment: str
    resource: str
    digest: str
    state: Delivery


class DeliveryStore:
    """A resource server's durable record of the payments it took and whether it delivered them.

    A payment (network, asset, payer, nonce) buys one response of one resource. The record is
    written before the payment is settled, so that when the response never reaches the payer
    (its connection dropped, or this server died, while the settlement was under way) the same
    payment presented again for the same resource is served then, once, after a restart too.
    One file per service; instances of one service must share it (one process at a time).
    """

    def __init__(self, path: Path | str = ":memory:"):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_DELIVERY_SCHEMA)
        self._lock = threading.Lock()
        # A request that was serving a payment when the previous process died is gone with it.
        self._db.execute(
            "UPDATE deliveries SET state=?, updated=? WHERE state=?",
            (Delivery.OPEN, time.time(), Delivery.SERVING),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, payment: str) -> DeliveryRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT payment, resource, digest, state FROM deliveries WHERE payment=?", (payment,)
            ).fetchone()
        return DeliveryRecord(**dict(row)) if row else None

    def begin(self, payment: str, resource: str, digest: str) -> bool:
        """Records a new payment as being served by the caller; False if it is already known."""
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?,?,?,?,?,?)",
                (payment, resource, digest, Delivery.SERVING, now, now),
            )
            return cursor.rowcount == 1

    def claim(self, payment: str) -> bool:
        """Takes an open (undelivered) payment to serve it now; only one caller wins."""
        return self._move(payment, Delivery.OPEN, Delivery.SERVING)

    def served(self, payment: str) -> bool:
        """The response was handed over: the payment is spent."""
        return self._move(payment, Delivery.SERVING, Delivery.SERVED)

    def undelivered(self, payment: str) -> bool:
        """The response did not reach the payer (or the settlement is still pending): open again."""
        return self._move(payment, Delivery.SERVING, Delivery.OPEN)

    def forget(self, payment: str) -> None:
        """Nothing was charged (the handler failed, or the settlement failed): no record."""
        with self._lock:
            self._db.execute(
                "DELETE FROM deliveries WHERE payment=? AND state=?", (payment, Delivery.SERVING)
            )

    def _move(self, payment: str, old: Delivery, new: Delivery) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE deliveries SET state=?, updated=? WHERE payment=? AND state=?",
                (new, time.time(), payment, old),
            )
            return cursor.rowcount == 1
