"""Inbox: batches decoded on chain as the spec says, the queue and forced inclusion, claims beside
the data, finality, withdrawals. Batches are made by the Python encoder (`offchain/l2/batch.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import ape
import pytest

from offchain.errors import ContractReverted
from offchain.hashing import keccak
from offchain.l2.batch import MAX_TXS_PER_BATCH, Batch, BatchError, Block, batch_hash, execute_batch
from offchain.l2.codec import Deposit, Transfer, Withdraw, decode, encode
from offchain.l2.queue import consume, deposit_record
from offchain.l2.signing import sign, transfer_digest, withdraw_digest
from offchain.l2.stf import State, Status, withdrawal_key
from offchain.market.escrow import Escrow, ServiceTerms
from offchain.rollup.derive import Derivation, DerivationError
from offchain.rollup.inbox import Withdrawal
from tests.contracts.rollup.conftest import CHAIN_ID, L2_ADDRS, L2_KEYS

ETH = "0x0000000000000000000000000000000000000000"
ZERO = b"\x00" * 32
VECTORS = Path(__file__).parents[2] / "vectors" / "l2_transactions.json"


def _now(chain) -> int:
    return chain.blocks.head.timestamp


def _block(chain, *txs) -> Block:
    return Block(_now(chain), tuple(txs))


def _vector_records() -> list[bytes]:
    vectors = json.loads(VECTORS.read_text())["vectors"]
    return [bytes.fromhex(v["record"][2:]) for v in vectors]


def _a_transfer() -> bytes:
    return next(r for r in _vector_records() if r[0] == 0x02)


def _transfer(inbox, sender: int, to: str, amount: int, nonce: int, fee: int = 0) -> Transfer:
    unsigned = Transfer(L2_ADDRS[sender], to, ETH, amount, fee, nonce, b"\x00" * 65)
    digest = transfer_digest(unsigned, CHAIN_ID, inbox.address)
    return Transfer(L2_ADDRS[sender], to, ETH, amount, fee, nonce, sign(L2_KEYS[sender], digest))


def _withdraw(inbox, sender: int, amount: int, recipient: str, nonce: int) -> Withdraw:
    unsigned = Withdraw(L2_ADDRS[sender], ETH, amount, 0, recipient, nonce, b"\x00" * 65)
    digest = withdraw_digest(unsigned, CHAIN_ID, inbox.address)
    return Withdraw(L2_ADDRS[sender], ETH, amount, 0, recipient, nonce, sign(L2_KEYS[sender], digest))


# -- accepted batches ---------------------------------------------------------------------------


def test_append__every_vector_record_gives_pythons_tx_root_count_and_hash(chain, inbox, sequencer):
    records = [r for r in _vector_records() if r[0] != 0x01]  # deposits must come from the queue
    batch = Batch(
        (_block(chain, *(decode(r) for r in records[:5])), _block(chain, *(decode(r) for r in records[5:])))
    )
    receipt = inbox.contract.appendBatch(batch.encode(), ZERO, sender=sequencer)
    (log,) = receipt.decode_logs(inbox.contract.BatchAppended)
    assert bytes(log.txRoot) == batch.tx_root()
    assert log.txCount == batch.tx_count == len(records)
    assert log.blockCount == 2 and log.firstL2Block == 0
    expected = batch_hash(ZERO, batch.encode(), batch.tx_root(), batch.tx_count, sequencer.address)
    assert bytes(log.batchHash) == expected == bytes(inbox.contract.batchHashOf(0))
    assert inbox.count("batchCount") == 1 and inbox.count("l2BlockCount") == 2


def test_append__chains_batch_hashes_and_keeps_blocks_counted(chain, inbox, sequencer):
    first = Batch((_block(chain),))
    inbox.append_batch(sequencer, first)
    second = Batch((_block(chain), _block(chain)))
    receipt = inbox.contract.appendBatch(second.encode(), ZERO, sender=sequencer)
    (log,) = receipt.decode_logs(inbox.contract.BatchAppended)
    previous = bytes(inbox.contract.batchHashOf(0))
    assert bytes(log.batchHash) == batch_hash(previous, second.encode(), ZERO, 0, sequencer.address)
    assert log.firstL2Block == 1 and inbox.count("l2BlockCount") == 3


def test_append__an_empty_block_has_the_zero_tx_root(chain, inbox, sequencer):
    receipt = inbox.contract.appendBatch(Batch((_block(chain),)).encode(), ZERO, sender=sequencer)
    (log,) = receipt.decode_logs(inbox.contract.BatchAppended)
    assert bytes(log.txRoot) == ZERO and log.txCount == 0


def test_append__the_data_is_read_back_from_calldata(chain, inbox, sequencer):
    batch = Batch((_block(chain, decode(_a_transfer())),))
    inbox.append_batch(sequencer, batch)
    (appended,) = inbox.batches()
    assert inbox.batch_data(appended) == batch.encode()


# -- refused batches: every decode check --------------------------------------------------------


def _framed(chain, *blocks: tuple[int, int, bytes]) -> bytes:
    """Raw batch bytes: (timestamp offset, txCount, records) per block, with no checks."""
    now = _now(chain)
    out = b"\x01" + len(blocks).to_bytes(2, "big")
    for offset, count, records in blocks:
        out += (now + offset).to_bytes(8, "big") + count.to_bytes(2, "big") + records
    return out


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda c, r: b"", "inbox: empty batch"),
        (lambda c, r: b"\x02\x00\x01", "inbox: unknown version"),
        (lambda c, r: b"\x01\x00", "inbox: header truncated"),
        (lambda c, r: b"\x01\x00\x00", "inbox: bad block count"),
        (lambda c, r: b"\x01\x04\x01" + b"\x00" * 10 * 1025, "inbox: bad block count"),
        (lambda c, r: _framed(c, (0, 0, b""))[:-3], "inbox: block header truncated"),
        (lambda c, r: _framed(c, (0, 0, b""), (-1, 0, b"")), "inbox: timestamps out of order"),
        (lambda c, r: _framed(c, (0, MAX_TXS_PER_BATCH + 1, b"")), "inbox: too many transactions"),
        (lambda c, r: _framed(c, (0, 1, b"\x05" + r[1:])), "inbox: unknown record kind"),
        (lambda c, r: _framed(c, (0, 1, b"\x00" + r[1:])), "inbox: unknown record kind"),
        (lambda c, r: _framed(c, (0, 1, r[:-1])), "inbox: record truncated"),
        (lambda c, r: _framed(c, (0, 2, r)), "inbox: record truncated"),
        (lambda c, r: _framed(c, (0, 1, r + b"\x00")), "inbox: trailing bytes"),
        (lambda c, r: _framed(c, (0, 0, b"")) + b"\x00", "inbox: trailing bytes"),
    ],
    ids=[
        "empty",
        "version",
        "header",
        "no-blocks",
        "too-many-blocks",
        "block-header",
        "timestamps",
        "too-many-txs",
        "unknown-kind",
        "kind-zero",
        "record-cut",
        "missing-record",
        "trailing-record-bytes",
        "trailing-bytes",
    ],
)
def test_append__refuses_each_malformed_batch(chain, inbox, sequencer, make, reason):
    record = _a_transfer()
    data = make(chain, record)
    with ape.reverts(reason):
        inbox.contract.appendBatch(data, ZERO, sender=sequencer)
    assert inbox.count("batchCount") == 0


def test_append__python_refuses_the_same_malformed_batches(chain):
    record = _a_transfer()
    for data in (
        b"",
        b"\x01\x00",
        _framed(chain, (0, 1, record[:-1])),
        _framed(chain, (0, 1, record + b"\x00")),
    ):
        with pytest.raises(BatchError):
            Batch.decode(data)


def test_append__time_bounds(chain, inbox, sequencer, params):
    now = _now(chain)
    with ape.reverts("inbox: batch in the future"):
        inbox.contract.appendBatch(Batch((Block(now + 3_600),)).encode(), ZERO, sender=sequencer)
    with ape.reverts("inbox: batch lags L1"):
        old = now - params.max_timestamp_lag - 10
        inbox.contract.appendBatch(Batch((Block(old),)).encode(), ZERO, sender=sequencer)
    inbox.append_batch(sequencer, Batch((Block(now),)))
    with ape.reverts("inbox: batch before the previous"):
        inbox.contract.appendBatch(Batch((Block(now - 1),)).encode(), ZERO, sender=sequencer)


def test_append__only_the_leader_until_the_escape_delay(chain, inbox, sequencer, mallory, params):
    batch = Batch((_block(chain),))
    with ape.reverts("inbox: not the leader"):
        inbox.contract.appendBatch(batch.encode(), ZERO, sender=mallory)
    assert not inbox.contract.escapeOpen()
    chain.mine(1, deltatime=params.escape_delay + 1)
    assert inbox.contract.escapeOpen()
    # Anyone may append now; a claim needs the proposer bond.
    with ape.reverts("inbox: wrong bond"):
        inbox.contract.appendBatch(Batch((_block(chain),)).encode(), b"\x11" * 32, sender=mallory)
    inbox.append_batch(mallory, Batch((_block(chain),)), b"\x11" * 32, bond=params.proposer_bond)
    inbox.append_batch(mallory, Batch((_block(chain),)))  # still open: no leader has posted
    assert inbox.contract.escapeOpen()
    inbox.append_batch(sequencer, Batch((_block(chain),)))  # a leader's batch closes it again
    assert not inbox.contract.escapeOpen()
    with ape.reverts("inbox: not the leader"):
        inbox.contract.appendBatch(Batch((_block(chain),)).encode(), ZERO, sender=mallory)


# -- the queue ----------------------------------------------------------------------------------


def test_deposits__are_queued_and_carried_in_order(chain, inbox, sequencer, alice, bob):
    inbox.deposit_eth(alice, L2_ADDRS[0], 10**18)
    inbox.deposit_eth(bob, L2_ADDRS[1], 5)
    pending = inbox.pending_queue()
    assert [decode(e.record) for e in pending] == [
        Deposit(0, L2_ADDRS[0], ETH, 10**18),
        Deposit(1, L2_ADDRS[1], ETH, 5),
    ]
    assert inbox.count("held", ETH) == 10**18 + 5
    out_of_order = Batch((_block(chain, decode(pending[1].record)),))
    with ape.reverts("inbox: deposit not next in queue"):
        inbox.contract.appendBatch(out_of_order.encode(), ZERO, sender=sequencer)
    forged = Batch((_block(chain, Deposit(0, L2_ADDRS[0], ETH, 10**19)),))
    with ape.reverts("inbox: deposit not next in queue"):
        inbox.contract.appendBatch(forged.encode(), ZERO, sender=sequencer)
    inbox.append_batch(sequencer, Batch((_block(chain, decode(pending[0].record)),)))
    assert inbox.count("queueHead") == 1
    with ape.reverts("inbox: deposit not next in queue"):  # already carried
        inbox.contract.appendBatch(
            Batch((_block(chain, decode(pending[0].record)),)).encode(), ZERO, sender=sequencer
        )
    inbox.append_batch(sequencer, Batch((_block(chain, decode(pending[1].record)),)))
    assert inbox.count("queueHead") == 2 and inbox.pending_queue() == []


def test_deposits__erc20_and_its_refusals(project, deployer, chain, inbox, alice, stake_token):
    token = stake_token
    token.mint(alice, 10**6, sender=deployer)
    inbox.deposit_erc20(alice, token, L2_ADDRS[0], 10**6)
    assert inbox.count("held", token.address) == 10**6
    (entry,) = inbox.pending_queue()
    assert entry.record == deposit_record(0, L2_ADDRS[0], str(token.address), 10**6)
    with ape.reverts("inbox: zero amount"):
        inbox.contract.depositERC20(token, L2_ADDRS[0], 0, sender=alice)
    with ape.reverts("inbox: zero recipient"):
        inbox.contract.depositETH(ETH, sender=alice, value=1)
    with ape.reverts("inbox: zero amount"):
        inbox.contract.depositETH(L2_ADDRS[0], sender=alice, value=0)
    with ape.reverts("inbox: token not a contract"):
        inbox.contract.depositERC20(ETH, L2_ADDRS[0], 1, sender=alice)
    fot = deployer.deploy(project.fee_on_transfer_token_mock)
    fot.mint(alice, 1_000, sender=deployer)
    fot.approve(inbox.address, 1_000, sender=alice)
    with ape.reverts("inbox: fee-on-transfer token"):
        inbox.contract.depositERC20(fot, L2_ADDRS[0], 1_000, sender=alice)


def test_deposits__a_tokens_total_is_capped_at_2_128(deployer, inbox, alice, stake_token):
    cap = 2**128 - 1
    stake_token.mint(alice, cap + 1, sender=deployer)
    stake_token.approve(inbox.address, cap + 1, sender=alice)
    inbox.contract.depositERC20(stake_token, L2_ADDRS[0], cap, sender=alice)
    with ape.reverts("inbox: token cap"):
        inbox.contract.depositERC20(stake_token, L2_ADDRS[0], 1, sender=alice)
    assert inbox.count("held", stake_token.address) == cap


def test_enqueue_record__signed_kinds_of_their_length_only(inbox, mallory):
    transfer = _a_transfer()
    with ape.reverts("inbox: bad record"):
        inbox.contract.enqueueRecord(b"", sender=mallory)
    with ape.reverts("inbox: bad record"):
        inbox.contract.enqueueRecord(transfer[:-1], sender=mallory)
    with ape.reverts("inbox: bad record"):
        inbox.contract.enqueueRecord(deposit_record(0, L2_ADDRS[0], ETH, 1), sender=mallory)
    with pytest.raises(BatchError, match="deposits enter the queue"):  # the client refuses it first
        inbox.enqueue_record(mallory, deposit_record(0, L2_ADDRS[0], ETH, 1))
    with ape.reverts("inbox: bad record"):
        inbox.contract.enqueueRecord(b"\x09" + transfer[1:], sender=mallory)
    index = inbox.enqueue_record(mallory, transfer)
    assert index == 0 and inbox.pending_queue()[0].record == transfer


def test_forced_inclusion__an_overdue_withdrawal_must_come_first(
    chain, inbox, sequencer, alice, mallory, params
):
    inbox.deposit_eth(alice, L2_ADDRS[0], 1_000)
    deposit = decode(inbox.pending_queue()[0].record)
    inbox.append_batch(sequencer, Batch((_block(chain, deposit),)))
    forced = _withdraw(inbox, 0, 400, alice.address, 0)
    inbox.enqueue_record(mallory, _record(forced))
    other = _transfer(inbox, 0, L2_ADDRS[1], 1, 0)
    # Before the delay the sequencer may leave it out (and carry it later).
    inbox.append_batch(sequencer, Batch((_block(chain, other),)))
    chain.mine(1, deltatime=params.force_inclusion_delay + 1)
    with ape.reverts("inbox: overdue queue entry left out"):
        inbox.contract.appendBatch(Batch((_block(chain),)).encode(), ZERO, sender=sequencer)
    with ape.reverts("inbox: overdue queue entry left out"):
        inbox.contract.appendBatch(Batch((_block(chain, other, forced),)).encode(), ZERO, sender=sequencer)
    inbox.append_batch(sequencer, Batch((_block(chain, forced, other),)))
    assert inbox.count("queueHead") == 2


def _record(tx) -> bytes:
    return encode(tx)


def test_forced_inclusion__python_rules_agree(chain, inbox, alice, mallory, params):
    inbox.deposit_eth(alice, L2_ADDRS[0], 1_000)
    forced = _withdraw(inbox, 0, 1, alice.address, 0)
    inbox.enqueue_record(mallory, _record(forced))
    pending = inbox.pending_queue()
    deposit = decode(pending[0].record)
    late = _now(chain) + params.force_inclusion_delay + 100
    assert consume(Batch((Block(0, (deposit, forced)),)), pending, late, params.force_inclusion_delay) == 2
    with pytest.raises(BatchError, match="overdue"):
        consume(Batch((Block(0, (forced,)),)), pending, late, params.force_inclusion_delay)
    assert consume(Batch((Block(0, ()),)), pending, _now(chain), params.force_inclusion_delay) == 0


# -- claims, finality, disputes -----------------------------------------------------------------


def test_claims__stake_backed_for_the_leader_bonded_for_others(
    chain, inbox, sequencer, mallory, params, sequencer_set
):
    with ape.reverts("inbox: stake backs this claim"):
        inbox.contract.appendBatch(Batch((_block(chain),)).encode(), b"\x01" * 32, sender=sequencer, value=1)
    with ape.reverts("inbox: value without a claim"):
        inbox.contract.appendBatch(Batch((_block(chain),)).encode(), ZERO, sender=sequencer, value=1)
    inbox.append_batch(sequencer, Batch((_block(chain),)), b"\x01" * 32)
    claim = inbox.claim(0)
    assert (claim.root, claim.proposer, claim.bond) == (b"\x01" * 32, sequencer.address, 0)
    assert sequencer_set.getOperator(sequencer).lastClaimAt == claim.proposed_at
    inbox.append_batch(sequencer, Batch((_block(chain),)))  # data only
    with ape.reverts("inbox: not the next claim"):
        inbox.contract.proposeRoot(2, b"\x02" * 32, sender=mallory, value=params.proposer_bond)
    with ape.reverts("inbox: zero root"):
        inbox.contract.proposeRoot(1, ZERO, sender=mallory, value=params.proposer_bond)
    with ape.reverts("inbox: wrong bond"):
        inbox.contract.proposeRoot(1, b"\x02" * 32, sender=mallory, value=1)
    inbox.propose_root(mallory, 1, b"\x02" * 32, bond=params.proposer_bond)
    assert inbox.claim(1).bond == params.proposer_bond and inbox.count("claimCount") == 2
    assert inbox.contract.preStateRoot(1) == b"\x01" * 32 and inbox.contract.preStateRoot(0) == ZERO
    with ape.reverts("inbox: no claim before"):
        inbox.contract.preStateRoot(3)


def test_finality__after_the_window_in_order_with_bonds_back(chain, inbox, sequencer, mallory, params):
    inbox.append_batch(sequencer, Batch((_block(chain),)), b"\x01" * 32)
    inbox.append_batch(sequencer, Batch((_block(chain),)))
    inbox.propose_root(mallory, 1, b"\x02" * 32, bond=params.proposer_bond)
    with ape.reverts("inbox: bad finalize count"):
        inbox.contract.finalize(0, sender=mallory)
    assert inbox.finalize(mallory) == 0
    chain.mine(1, deltatime=params.challenge_window)
    assert inbox.finalize(mallory) == 2
    assert inbox.claim(0).final and inbox.claim(1).final
    assert inbox.contract.unitsOf(sequencer) == 1 and inbox.contract.unitsOf(mallory) == 1
    assert inbox.count("credits", mallory.address) == params.proposer_bond
    before = mallory.balance
    receipt = inbox.contract.withdrawCredit(sender=mallory)
    assert mallory.balance == before + params.proposer_bond - receipt.total_fees_paid
    with ape.reverts("inbox: nothing to withdraw"):
        inbox.contract.withdrawCredit(sender=mallory)


def test_disputes__block_finality_and_remove_the_claim_and_every_later_one(
    chain, inbox, sequencer, mallory, game, params
):
    inbox.append_batch(sequencer, Batch((_block(chain),)), b"\x01" * 32)
    inbox.append_batch(sequencer, Batch((_block(chain),)))
    inbox.propose_root(mallory, 1, b"\x02" * 32, bond=params.proposer_bond)
    inbox.append_batch(sequencer, Batch((_block(chain),)), b"\x03" * 32)
    with ape.reverts("inbox: not dispute game"):
        inbox.contract.noteDispute(0, True, sender=mallory)
    with ape.reverts("inbox: not dispute game"):
        inbox.contract.removeClaimsFrom(0, sender=mallory)
    with ape.reverts("inbox: no open dispute"):
        game.noteClaimDispute(0, False, sender=mallory)
    game.noteClaimDispute(0, True, sender=mallory)
    chain.mine(1, deltatime=params.challenge_window)
    assert inbox.finalize(mallory) == 0  # claim 0 is disputed; the others wait for it
    with ape.reverts("inbox: claim not disputable"):
        game.noteClaimDispute(1, True, sender=mallory)  # its window has passed
    game.noteClaimDispute(0, False, sender=mallory)
    # The game found claim 1 wrong: it and claim 2 go, the batches stay.
    assert inbox.finalize(mallory, 1) == 1
    with ape.reverts("inbox: claim not removable"):
        game.removeClaimsFrom(0, sender=mallory)  # final
    receipt = game.removeClaimsFrom(1, sender=mallory)
    assert receipt.return_value == params.proposer_bond  # the wrong claim's bond goes to the game
    assert inbox.count("claimCount") == 1 and inbox.count("batchCount") == 3
    with ape.reverts("inbox: claims await re-proposal"):
        inbox.contract.appendBatch(Batch((_block(chain),)).encode(), b"\x04" * 32, sender=sequencer)
    inbox.append_batch(sequencer, Batch((_block(chain),)))  # data is still taken
    with ape.reverts("inbox: no bond"):
        inbox.contract.releaseBond(2, sender=mallory)  # stake-backed
    with ape.reverts("inbox: claim stands"):
        inbox.contract.releaseBond(0, sender=mallory)
    # Any bonded proposer claims the right roots again, in order.
    inbox.propose_root(mallory, 1, b"\x22" * 32, bond=params.proposer_bond)
    inbox.propose_root(sequencer, 2, b"\x33" * 32)
    assert inbox.claim(1).root == b"\x22" * 32 and inbox.count("claimCount") == 3


def test_disputes__a_removed_later_claims_bond_goes_back(chain, inbox, sequencer, mallory, bob, game, params):
    inbox.append_batch(sequencer, Batch((_block(chain),)), b"\x01" * 32)
    inbox.append_batch(sequencer, Batch((_block(chain),)))
    inbox.propose_root(bob, 1, b"\x02" * 32, bond=params.proposer_bond)
    game.removeClaimsFrom(0, sender=mallory)
    inbox.contract.releaseBond(1, sender=mallory)
    assert inbox.count("credits", bob.address) == params.proposer_bond
    with ape.reverts("inbox: no bond"):
        inbox.contract.releaseBond(1, sender=mallory)


# -- withdrawals --------------------------------------------------------------------------------


def test_withdrawal__paid_once_against_a_final_root_never_a_pending_or_removed_one(
    chain, inbox, sequencer, alice, bob, mallory, game, params
):
    inbox.deposit_eth(alice, L2_ADDRS[0], 10**18)
    deposit = decode(inbox.pending_queue()[0].record)
    withdraw = _withdraw(inbox, 0, 4 * 10**17, bob.address, 0)
    batch = Batch((_block(chain, deposit, withdraw),))
    state, statuses, _ = execute_batch(State(), batch, CHAIN_ID, inbox.address, sequencer.address)
    assert statuses == [Status.OK, Status.OK]
    inbox.append_batch(sequencer, batch, state.root)
    key = withdrawal_key(L2_ADDRS[0], 0)
    proof = state.tree.prove(state.root, key).encode()
    leaf = Withdrawal(account=L2_ADDRS[0], nonce=0, token=ETH, amount=4 * 10**17, recipient=bob.address)
    with pytest.raises(ContractReverted, match="inbox: claim not final"):
        inbox.finalize_withdrawal(mallory, 0, leaf, proof)
    chain.mine(1, deltatime=params.challenge_window)
    inbox.finalize(mallory)
    wrong = leaf.model_copy(update={"amount": 5 * 10**17})
    with pytest.raises(ContractReverted, match="inbox: bad withdrawal proof"):
        inbox.finalize_withdrawal(mallory, 0, wrong, proof)
    before = bob.balance
    inbox.finalize_withdrawal(mallory, 0, leaf, proof)  # anyone may call; the leaf names bob
    assert bob.balance == before + 4 * 10**17
    assert inbox.count("held", ETH) == 6 * 10**17 and inbox.withdrawn(key)
    with pytest.raises(ContractReverted, match="inbox: already withdrawn"):
        inbox.finalize_withdrawal(mallory, 0, leaf, proof)


def test_withdrawal__not_against_a_removed_claim(chain, inbox, sequencer, alice, bob, mallory, game, params):
    inbox.deposit_eth(alice, L2_ADDRS[0], 10**18)
    deposit = decode(inbox.pending_queue()[0].record)
    withdraw = _withdraw(inbox, 0, 10**18, bob.address, 0)
    batch = Batch((_block(chain, deposit, withdraw),))
    state, _, _ = execute_batch(State(), batch, CHAIN_ID, inbox.address, sequencer.address)
    inbox.append_batch(sequencer, batch, state.root)
    game.removeClaimsFrom(0, sender=mallory)
    chain.mine(1, deltatime=params.challenge_window)
    assert inbox.finalize(mallory) == 0
    proof = state.tree.prove(state.root, withdrawal_key(L2_ADDRS[0], 0)).encode()
    leaf = Withdrawal(account=L2_ADDRS[0], nonce=0, token=ETH, amount=10**18, recipient=bob.address)
    with pytest.raises(ContractReverted, match="inbox: claim not final"):
        inbox.finalize_withdrawal(mallory, 0, leaf, proof)


def test_views__queue_entry_bounds(inbox, alice, chain):
    with ape.reverts("inbox: no such entry"):
        inbox.contract.queueEntry(0)
    inbox.deposit_eth(alice, L2_ADDRS[0], 1)
    record_hash, queued_at = inbox.contract.queueEntry(0)
    assert (bytes(record_hash), queued_at) == (keccak(deposit_record(0, L2_ADDRS[0], ETH, 1)), _now(chain))


def test_derivation__replays_l1_data_and_proves_a_withdrawal_the_inbox_pays(
    chain, inbox, sequencer, alice, bob, mallory, params
):
    inbox.deposit_eth(alice, L2_ADDRS[0], 10**18)
    deposit = decode(inbox.pending_queue()[0].record)
    inbox.append_batch(sequencer, Batch((_block(chain, deposit),)))  # data only: roots come later
    withdraw = _withdraw(inbox, 0, 3 * 10**17, bob.address, 0)
    inbox.append_batch(sequencer, Batch((_block(chain, withdraw, _transfer(inbox, 0, L2_ADDRS[1], 5, 1)),)))
    derivation = Derivation(inbox, CHAIN_ID)
    assert derivation.sync() == 2
    inbox.propose_root(sequencer, 0, derivation.root(0))
    inbox.propose_root(sequencer, 1, derivation.root(1))
    chain.mine(1, deltatime=params.challenge_window)
    inbox.finalize(mallory)
    leaf, proof = derivation.withdrawal_proof(1, L2_ADDRS[0], 0)
    assert (leaf.amount, leaf.recipient) == (3 * 10**17, bob.address)
    before = bob.balance
    inbox.finalize_withdrawal(mallory, 1, leaf, proof)
    assert bob.balance == before + 3 * 10**17
    with pytest.raises(DerivationError, match="no withdrawal"):
        derivation.withdrawal_proof(1, L2_ADDRS[0], 1)


def test_derivation__each_sync_reads_only_the_blocks_since_the_last(chain, inbox, sequencer, alice):
    """A sync finds a batch appended after the last one, reads no block twice, and keeps a batch
    its poster added with `extend` (its own state) instead of replaying it."""
    inbox.append_batch(sequencer, Batch((_block(chain),)))
    derivation = Derivation(inbox, CHAIN_ID)
    assert derivation.sync() == 1
    first_empty = chain.blocks.head.number + 1
    assert derivation.next_block == first_empty
    inbox.deposit_eth(alice, L2_ADDRS[0], 10**18)  # blocks without a batch
    chain.mine(2)
    assert derivation.sync() == 1 and derivation.next_block == chain.blocks.head.number + 1
    assert inbox.batches(first_empty, chain.blocks.head.number) == []
    deposit = decode(inbox.pending_queue()[0].record)
    inbox.append_batch(sequencer, Batch((_block(chain, deposit),)))
    assert [b.index for b in inbox.batches(first_empty)] == [1]
    assert derivation.sync() == 2 and derivation.root(1) != derivation.root(0)
    inbox.append_batch(sequencer, Batch((_block(chain),)))
    own = derivation.states[1]  # the poster's state after its empty batch: the same root
    derivation.extend(inbox.batches()[-1], own)
    assert derivation.sync() == 3 and derivation.states[2] is own


def test_escrow__a_service_bounty_pays_the_sequencer_per_final_batch(
    project, chain, deployer, registries, inbox, sequencer, sequencer_set, mallory, params
):
    escrow = Escrow.deploy(deployer, registries)
    terms = ServiceTerms(
        amount=10**18, term_end=_now(chain) + 86_400, attester=inbox.address, rate=10**16, spec_uri="slots"
    )
    bounty = escrow.create_service(deployer, terms)
    agent_id = int(sequencer_set.getOperator(sequencer).agentId)
    escrow.join(sequencer, bounty, agent_id)
    for root in (b"\x01" * 32, b"\x02" * 32):
        inbox.append_batch(sequencer, Batch((_block(chain),)), root)
    assert escrow.pay_out(mallory, bounty, sequencer.address) == 0  # nothing final yet
    chain.mine(1, deltatime=params.challenge_window)
    inbox.finalize(mallory)
    assert escrow.pay_out(mallory, bounty, sequencer.address) == 2 * 10**16
