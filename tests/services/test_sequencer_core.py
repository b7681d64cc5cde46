"""The sequencer's core on anvil: admission against the pending state with clear refusals, signed
soft confirmations, blocks led by the L1 queue, batches posted with the derivation's root, and
receipts from soft to posted to final."""

from __future__ import annotations

import pytest

from offchain.hashing import keccak
from offchain.l2.batch import Batch
from offchain.l2.codec import Deposit, Transfer, TransferWithAuthorization, encode
from offchain.l2.signing import authorization_digest, sign, transfer_digest
from offchain.l2.stf import Status
from offchain.sequencer.confirmation import tx_hash
from offchain.sequencer.core import Busy, Rejected, Sequencer
from tests.contracts.dispute.conftest import CHAIN_ID, ETH, KEYS, USERS


def _transfer(inbox, sender: int, to: int, amount: int, nonce: int, key: int | None = None) -> bytes:
    fields = (USERS[sender], USERS[to], ETH, amount, 10, nonce)
    digest = transfer_digest(Transfer(*fields, b"\x00" * 65), CHAIN_ID, inbox.address)
    return encode(Transfer(*fields, sign(KEYS[sender if key is None else key], digest)))


def _authorization(sender: int, to: int, value: int, after: int, before: int) -> bytes:
    fields = (USERS[sender], USERS[to], ETH, value, after, before, keccak(bytes([sender, to, value % 256])))
    unsigned = TransferWithAuthorization(*fields, b"\x00" * 65)
    return encode(
        TransferWithAuthorization(*fields, sign(KEYS[sender], authorization_digest(unsigned, CHAIN_ID)))
    )


@pytest.fixture
def node(chain, inbox, sequencer, first_batch) -> Sequencer:
    return Sequencer(sequencer, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp)


def test_an_accepted_transfer__gets_a_signed_confirmation_and_moves_the_pending_state(node, inbox, sequencer):
    record = _transfer(inbox, 0, 1, 1_000, 0)
    confirmation = node.submit(record)
    assert confirmation.is_valid() and confirmation.signer() == sequencer.address
    assert confirmation.tx_hash == "0x" + tx_hash(record).hex() and confirmation.position == 0
    assert node.nonce(USERS[0]) == 1 and node.balance(USERS[1], ETH) == 10**18 + 1_000
    assert node.balance(USERS[0], ETH) == 10**18 - 1_010
    second = node.submit(_transfer(inbox, 0, 2, 5, 1))
    assert (second.l2_block, second.position) == (confirmation.l2_block, 1)
    assert node.receipt(confirmation.tx_hash).stage == "soft"


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda inbox, now: _transfer(inbox, 0, 1, 1, 0, key=1), Status.BAD_SIGNATURE),
        (lambda inbox, now: _transfer(inbox, 0, 1, 1, 7), Status.BAD_NONCE),
        (lambda inbox, now: _transfer(inbox, 0, 1, 2 * 10**18, 0), Status.INSUFFICIENT_BALANCE),
        (lambda inbox, now: _authorization(0, 1, 5, now - 100, now - 10), Status.EXPIRED),
        (lambda inbox, now: _authorization(0, 1, 5, now + 100, now + 200), Status.NOT_YET_VALID),
    ],
)
def test_a_failing_transaction__is_refused_with_its_status_and_changes_nothing(
    node, inbox, chain, make, status
):
    with pytest.raises(Rejected, match=status.name) as refused:
        node.submit(make(inbox, chain.blocks.head.timestamp))
    assert refused.value.status == status
    assert node.nonce(USERS[0]) == 0 and node.balance(USERS[0], ETH) == 10**18 and not node.confirmed


def test_malformed_records_deposits_and_replays__are_refused(node, inbox):
    with pytest.raises(Rejected, match="malformed record"):
        node.submit(b"\x02" + b"\x00" * 10)
    with pytest.raises(Rejected, match="through the L1 inbox"):
        node.submit(encode(Deposit(1, USERS[0], ETH, 5)))
    record = _transfer(inbox, 0, 1, 1, 0)
    node.submit(record)
    with pytest.raises(Rejected, match="already confirmed"):
        node.submit(record)
    assert node.nonce(USERS[0]) == 1


def test_posting__the_batch_on_l1_holds_every_promise_and_its_root_is_the_derivations(
    node, inbox, chain, alice
):
    first = node.submit(_transfer(inbox, 0, 1, 1_000, 0))
    inbox.deposit_eth(alice, USERS[3], 7)  # queued on L1: the next block starts with it
    chain.mine(1, deltatime=2)
    second = node.submit(_transfer(inbox, 3, 2, 1, 0))
    assert second.l2_block == first.l2_block + 1 and second.position == 1  # after the deposit
    index = node.post()
    appended = node.derivation.batches[index]
    posted = Batch.decode(inbox.batch_data(appended))
    for confirmation in (first, second):
        block = posted.blocks[confirmation.l2_block - appended.first_l2_block]
        assert "0x" + tx_hash(encode(block.txs[confirmation.position])).hex() == confirmation.tx_hash
    assert isinstance(posted.blocks[1].txs[0], Deposit)
    assert inbox.claim(index).root == node.derivation.root(index)
    receipt = node.receipt(first.tx_hash)
    assert (receipt.stage, receipt.status, receipt.batch) == ("posted", Status.OK, index)
    assert node.post() is None  # nothing left
    chain.mine(1, deltatime=601)
    inbox.finalize(alice)
    assert node.receipt(second.tx_hash).stage == "final"


def test_a_full_block_closes_and_a_batch_takes_whole_blocks_up_to_its_bytes(
    chain, inbox, sequencer, first_batch
):
    records = [_transfer(inbox, 0, 1, 1, n) for n in range(5)]
    size = len(records[0])
    core = Sequencer(sequencer, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp, batch_bytes=2 * size)
    confirmations = [core.submit(record) for record in records]
    # Two records fill a block; the next opens another at the same L1 time.
    assert [(c.l2_block - confirmations[0].l2_block, c.position) for c in confirmations] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (2, 0),
    ]
    assert core.unposted_bytes() == 5 * size
    first = core.post()
    assert len(Batch.decode(inbox.batch_data(core.derivation.batches[first])).blocks) == 1
    assert core.unposted_bytes() == 3 * size and core.nonce(USERS[0]) == 5  # the rest still pending
    second, third = core.post(), core.post()
    assert (second, third) == (first + 1, first + 2) and core.post() is None
    for confirmation in confirmations:
        assert core.receipt(confirmation.tx_hash).stage == "posted"
    assert inbox.claim(third).root == core.derivation.root(third)


def test_a_full_backlog__refuses_with_busy_and_changes_nothing(chain, inbox, sequencer, first_batch):
    records = [_transfer(inbox, 0, 1, 1, n) for n in range(5)]
    core = Sequencer(
        sequencer, inbox, CHAIN_ID, lambda: chain.blocks.head.timestamp, batch_bytes=len(records[0])
    )
    for record in records[:4]:  # four batches' worth
        core.submit(record)
    with pytest.raises(Busy, match="4 batches wait to be posted"):
        core.submit(records[4])
    assert core.nonce(USERS[0]) == 4 and len(core.confirmed) == 4
    core.post()
    assert core.submit(records[4]).tx_hash == "0x" + tx_hash(records[4]).hex()
