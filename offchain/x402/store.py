"""The facilitator's records, in SQLite (embedded, durable): reservations and settlements.

A payment is keyed by (network, asset, payer, nonce), the identity of an EIP-3009
authorization. Its life:

    reserved ──claim──▶ sending ──▶ submitted(tx) ──▶ settled(tx)
        │                   ▲              ├────────▶ failed(tx, reason)
        │                   └───requeue────┘  (a batch skipped it unrun: sent again alone)
        └───────────────────┴───────────────────────▶ failed(reason)

`reserve` is an INSERT that only one caller can win, so concurrent duplicates of one payment
verify once; `claim` is a conditional UPDATE, so concurrent settles send once. The raw signed
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
    gas          INTEGER
);
CREATE INDEX IF NOT EXISTS payments_state ON payments(state);
"""

# Columns added after the first release, with their types: a file written before gains them.
_ADDED_COLUMNS = {"gas": "INTEGER"}


class State(StrEnum):
    RESERVED = "reserved"
    SENDING = "sending"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    FAILED = "failed"


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

    def reserve(self, record: PaymentRecord) -> bool:
        """Records a verified payment; False if that authorization is already known."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO payments (id,network,asset,payer,pay_to,amount,valid_before,"
                "payload,state,tx_hash,raw_tx,tx_nonce,error,created,updated,gas) VALUES "
                "(:id,:network,:asset,:payer,:pay_to,:amount,:valid_before,:payload,:state,"
                ":tx_hash,:raw_tx,:tx_nonce,:error,:created,:updated,:gas)",
                record.model_dump(mode="python"),
            )
            return cursor.rowcount == 1

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

    def settled(self, id_: str, tx_hash: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE payments SET state=?, tx_hash=?, error=NULL, updated=? WHERE id=? AND state IN (?, ?)",
                (State.SETTLED, tx_hash, time.time(), id_, State.SENDING, State.SUBMITTED),
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
