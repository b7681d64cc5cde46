"""L2 transaction records: fixed layouts, encoded and decoded exactly (docs/l2-protocol.md §Transactions)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from operator import attrgetter

from offchain.errors import InvalidInput
from offchain.hashing import checksum_address

MAX_AMOUNT = 2**128 - 1
MAX_U64 = 2**64 - 1


class CodecError(InvalidInput):
    """Bytes that are not a transaction record, or a field out of its range."""


class TxKind(IntEnum):
    DEPOSIT = 1
    TRANSFER = 2
    TRANSFER_WITH_AUTHORIZATION = 3
    WITHDRAW = 4


class _Record:
    """Pickles as its class and fields: executors ship blocks to worker processes, and the
    default pickling of a slotted dataclass costs three times as much."""

    __slots__ = ()
    _fields: Callable[[_Record], tuple] = staticmethod(lambda record: ())  # set per class below

    def __reduce__(self) -> tuple:
        return type(self), type(self)._fields(self)


@dataclass(frozen=True, slots=True)
class Deposit(_Record):
    index: int
    to: str
    token: str
    amount: int


@dataclass(frozen=True, slots=True)
class Transfer(_Record):
    sender: str
    to: str
    token: str
    amount: int
    fee: int
    nonce: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class TransferWithAuthorization(_Record):
    sender: str
    to: str
    token: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Withdraw(_Record):
    sender: str
    token: str
    amount: int
    fee: int
    recipient: str
    nonce: int
    signature: bytes


Tx = Deposit | Transfer | TransferWithAuthorization | Withdraw

for _kind in (Deposit, Transfer, TransferWithAuthorization, Withdraw):
    _kind._fields = staticmethod(attrgetter(*_kind.__slots__))  # type: ignore[attr-defined]  # a tuple, in C

# Field layouts after the kind byte: (name, width, type) with type a(ddress), u(int), b(ytes).
_LAYOUTS: dict[TxKind, tuple[type, tuple[tuple[str, int, str], ...]]] = {
    TxKind.DEPOSIT: (Deposit, (("index", 8, "u"), ("to", 20, "a"), ("token", 20, "a"), ("amount", 16, "u"))),
    TxKind.TRANSFER: (
        Transfer,
        (
            ("sender", 20, "a"),
            ("to", 20, "a"),
            ("token", 20, "a"),
            ("amount", 16, "u"),
            ("fee", 16, "u"),
            ("nonce", 8, "u"),
            ("signature", 65, "b"),
        ),
    ),
    TxKind.TRANSFER_WITH_AUTHORIZATION: (
        TransferWithAuthorization,
        (
            ("sender", 20, "a"),
            ("to", 20, "a"),
            ("token", 20, "a"),
            ("value", 16, "u"),
            ("valid_after", 8, "u"),
            ("valid_before", 8, "u"),
            ("nonce", 32, "b"),
            ("signature", 65, "b"),
        ),
    ),
    TxKind.WITHDRAW: (
        Withdraw,
        (
            ("sender", 20, "a"),
            ("token", 20, "a"),
            ("amount", 16, "u"),
            ("fee", 16, "u"),
            ("recipient", 20, "a"),
            ("nonce", 8, "u"),
            ("signature", 65, "b"),
        ),
    ),
}
_KIND_OF = {cls: kind for kind, (cls, _) in _LAYOUTS.items()}

RECORD_LENGTH = {kind: 1 + sum(width for _, width, _ in fields) for kind, (_, fields) in _LAYOUTS.items()}


def kind_of(tx: Tx) -> TxKind:
    return _KIND_OF[type(tx)]


def encode(tx: Tx) -> bytes:
    """The record of `tx`; raises CodecError for a field out of its range."""
    kind = _KIND_OF.get(type(tx))
    if kind is None:
        raise CodecError(f"not an L2 transaction: {type(tx).__name__}")
    parts = [bytes([kind])]
    for name, width, form in _LAYOUTS[kind][1]:
        value = getattr(tx, name)
        if form == "u":
            if not isinstance(value, int) or not 0 <= value < 1 << (8 * width):
                raise CodecError(f"{kind.name.lower()}.{name} must be an integer of {width} bytes")
            parts.append(value.to_bytes(width, "big"))
        elif form == "a":
            try:
                raw = bytes.fromhex(value.removeprefix("0x"))
            except (AttributeError, ValueError):
                raw = b""
            if len(raw) != 20:
                raise CodecError(f"{kind.name.lower()}.{name} must be a 20-byte address")
            parts.append(raw)
        else:
            if not isinstance(value, bytes) or len(value) != width:
                raise CodecError(f"{kind.name.lower()}.{name} must be {width} bytes")
            parts.append(value)
    return b"".join(parts)


def decode(record: bytes) -> Tx:
    """The transaction a record holds; raises CodecError (never anything else) on malformed bytes."""
    if not record:
        raise CodecError("empty record")
    try:
        kind = TxKind(record[0])
    except ValueError:
        raise CodecError(f"unknown transaction kind 0x{record[0]:02x}") from None
    if len(record) != RECORD_LENGTH[kind]:
        raise CodecError(f"{kind.name.lower()} records are {RECORD_LENGTH[kind]} bytes, not {len(record)}")
    cls, fields = _LAYOUTS[kind]
    values = {}
    offset = 1
    for name, width, form in fields:
        raw = record[offset : offset + width]
        offset += width
        if form == "u":
            values[name] = int.from_bytes(raw, "big")
        elif form == "a":
            values[name] = checksum_address(bytes(raw))
        else:
            values[name] = bytes(raw)
    return cls(**values)


def split(records: bytes) -> list[bytes]:
    """Cuts concatenated records apart by their kinds' fixed lengths."""
    out, offset = [], 0
    while offset < len(records):
        try:
            length = RECORD_LENGTH[TxKind(records[offset])]
        except ValueError:
            raise CodecError(f"unknown transaction kind 0x{records[offset]:02x} at byte {offset}") from None
        if offset + length > len(records):
            raise CodecError(f"record at byte {offset} is truncated")
        out.append(records[offset : offset + length])
        offset += length
    return out
