"""L2 records: exact round trips, exact lengths, clear errors on malformed bytes."""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.hashing import checksum_address
from offchain.l2.codec import (
    RECORD_LENGTH,
    CodecError,
    Deposit,
    Transfer,
    TransferWithAuthorization,
    TxKind,
    Withdraw,
    decode,
    encode,
    split,
)

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
u = lambda bits: st.integers(0, 2**bits - 1)  # noqa: E731
sigs = st.binary(min_size=65, max_size=65)

txs = st.one_of(
    st.builds(Deposit, index=u(64), to=addresses, token=addresses, amount=u(128)),
    st.builds(
        Transfer,
        sender=addresses,
        to=addresses,
        token=addresses,
        amount=u(128),
        fee=u(128),
        nonce=u(64),
        signature=sigs,
    ),
    st.builds(
        TransferWithAuthorization,
        sender=addresses,
        to=addresses,
        token=addresses,
        value=u(128),
        valid_after=u(64),
        valid_before=u(64),
        nonce=st.binary(min_size=32, max_size=32),
        signature=sigs,
    ),
    st.builds(
        Withdraw,
        sender=addresses,
        token=addresses,
        amount=u(128),
        fee=u(128),
        recipient=addresses,
        nonce=u(64),
        signature=sigs,
    ),
)


def test_record_lengths__are_the_specified_ones():
    assert {k.name: v for k, v in RECORD_LENGTH.items()} == {
        "DEPOSIT": 65,
        "TRANSFER": 166,
        "TRANSFER_WITH_AUTHORIZATION": 190,
        "WITHDRAW": 166,
    }


@settings(max_examples=200)
@given(tx=txs)
def test_round_trip__every_kind(tx):
    record = encode(tx)
    assert len(record) == RECORD_LENGTH[TxKind(record[0])]
    back = decode(record)
    assert encode(back) == record
    assert type(back) is type(tx)


@settings(max_examples=200)
@given(raw=st.binary(max_size=300))
def test_random_bytes__decode_or_raise_codec_error_only(raw):
    try:
        tx = decode(raw)
    except CodecError:
        return
    assert encode(tx) == raw  # whatever decodes is exactly that record


@settings(max_examples=100)
@given(tx=txs, cut=st.integers(1, 64))
def test_truncated_or_extended__is_refused(tx, cut):
    record = encode(tx)
    with pytest.raises(CodecError, match="records are"):
        decode(record[: max(1, len(record) - cut)])
    with pytest.raises(CodecError, match="records are"):
        decode(record + b"\x00")


@given(batch=st.lists(txs, max_size=8))
def test_split__cuts_concatenated_records(batch):
    records = [encode(tx) for tx in batch]
    assert split(b"".join(records)) == records


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"", "empty record"), (b"\x09" + b"\x00" * 64, "unknown transaction kind 0x09")],
)
def test_decode__clear_errors(raw, message):
    with pytest.raises(CodecError, match=message):
        decode(raw)


def test_split__truncated_tail__is_refused():
    record = encode(Deposit(index=1, to="0x" + "11" * 20, token="0x" + "00" * 20, amount=5))
    with pytest.raises(CodecError, match="truncated"):
        split(record + record[:10])


@pytest.mark.parametrize(
    "tx",
    [
        Deposit(index=2**64, to="0x" + "11" * 20, token="0x" + "00" * 20, amount=1),
        Deposit(index=0, to="0x1234", token="0x" + "00" * 20, amount=1),
        Transfer("0x" + "11" * 20, "0x" + "22" * 20, "0x" + "00" * 20, 2**128, 0, 0, b"\x00" * 65),
        Transfer("0x" + "11" * 20, "0x" + "22" * 20, "0x" + "00" * 20, 1, 0, 0, b"\x00" * 64),
    ],
    ids=["index-too-big", "short-address", "amount-too-big", "short-signature"],
)
def test_encode__out_of_range__is_refused(tx):
    with pytest.raises(CodecError):
        encode(tx)


@settings(max_examples=300)
@given(raw=st.binary(min_size=20, max_size=20))
def test_decoded_addresses__are_eip55_checksummed(raw):
    assert checksum_address(raw) == to_checksum_address(raw)
    record = encode(Deposit(index=0, to="0x" + raw.hex(), token="0x" + raw[::-1].hex(), amount=1))
    back = decode(record)
    assert (back.to, back.token) == (to_checksum_address(raw), to_checksum_address(raw[::-1]))
