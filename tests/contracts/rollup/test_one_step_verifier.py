"""OneStepVerifier on anvil: every vector gives its status and post-state root, every rejection the
spec lists reverts with its reason, and the Python verifier (`offchain/l2/onestep.py`) agrees on
each proof, valid or corrupted: one set of rules, two implementations."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ape
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.hashing import keccak
from offchain.l2.batch import Batch, Block, TxProof, batch_preimage, execute_batch
from offchain.l2.codec import decode
from offchain.l2.onestep import OneStepError, OneStepProof, prove_step, verify_step
from offchain.l2.smt import EMPTY, Internal, Leaf, Proof
from offchain.l2.stf import State, apply_block
from offchain.l2.witness import Entry, Witness
from tests.l2_blocks import ADDRS, CHAIN, CTX, INBOX, deposits, signed_tx

VECTORS = Path(__file__).parents[2] / "vectors"
TX_VECTORS = {v["name"]: v for v in json.loads((VECTORS / "l2_transactions.json").read_text())["vectors"]}
STEPS = json.loads((VECTORS / "l2_steps.json").read_text())["batch"]


def _b(hex_string: str) -> bytes:
    return bytes.fromhex(hex_string[2:])


@dataclasses.dataclass
class Step:
    """Everything one verifyStep call takes."""

    batch_hash: bytes
    preimage: bytes
    index: int
    agreed: bytes
    chain_id: int
    inbox: str
    proof: bytes

    def args(self) -> tuple:
        return (
            self.batch_hash,
            self.preimage,
            self.index,
            self.agreed,
            self.chain_id,
            self.inbox,
            self.proof,
        )

    def replace(self, **changes) -> Step:
        return dataclasses.replace(self, **changes)

    def with_proof(self, proof: OneStepProof) -> Step:
        return self.replace(proof=proof.encode())


def _single(name: str) -> tuple[Step, dict]:
    """Transaction vector `name` as the only transaction of a batch (the first of its inbox)."""
    vector = TX_VECTORS[name]
    ctx, record = vector["context"], _b(vector["record"])
    batch = Batch((Block(ctx["timestamp"], (decode(record),)),))
    preimage = batch_preimage(b"\x00" * 32, batch.encode(), batch.tx_root(), 1, ctx["sequencer"])
    proof = OneStepProof(0, ctx["timestamp"], record, batch.prove(0), Witness.decode(_b(vector["witness"])))
    step = Step(
        keccak(preimage),
        preimage,
        0,
        _b(vector["preStateRoot"]),
        ctx["chainId"],
        ctx["inbox"],
        proof.encode(),
    )
    return step, vector


def _posted_step(index: int) -> Step:
    """Step `index` of the committed step vectors' batch."""
    step = STEPS["steps"][index]
    return Step(
        _b(STEPS["batchHash"]),
        _b(STEPS["preimage"]),
        index,
        _b(step["agreedRoot"]),
        STEPS["chainId"],
        STEPS["inbox"],
        _b(step["proof"]),
    )


def _rejected(verifier, step: Step, reason: str) -> None:
    """Both verifiers refuse `step`: on chain with `reason`, in Python with OneStepError."""
    with ape.reverts(reason):
        verifier.verifyStep(*step.args())
    with pytest.raises(OneStepError):
        verify_step(*step.args())


def _decoded(step: Step) -> OneStepProof:
    return OneStepProof.decode(step.proof)


def _with_entries(step: Step, entries: list[Entry]) -> Step:
    proof = _decoded(step)
    return step.with_proof(dataclasses.replace(proof, witness=Witness(tuple(entries))))


@pytest.fixture(scope="module")
def verifier(project, deployer):
    return deployer.deploy(project.OneStepVerifier)


# -- every vector ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TX_VECTORS))
def test_every_transaction_vector__gives_its_status_and_root(verifier, name):
    step, vector = _single(name)
    status, root = verifier.verifyStep(*step.args())
    assert (status, "0x" + bytes(root).hex()) == (vector["status"], vector["postStateRoot"])


@pytest.mark.parametrize("index", range(STEPS["txCount"]))
def test_every_posted_step__gives_its_status_and_root(verifier, index):
    status, root = verifier.verifyStep(*_posted_step(index).args())
    expected = STEPS["steps"][index]
    assert (status, "0x" + bytes(root).hex()) == (expected["status"], expected["postStateRoot"])


def test_the_statuses__are_the_specs(verifier):
    names = [
        "OK",
        "BAD_SIGNATURE",
        "BAD_NONCE",
        "INSUFFICIENT_BALANCE",
        "NOT_YET_VALID",
        "EXPIRED",
        "AUTHORIZATION_USED",
        "BAD_DEPOSIT_INDEX",
    ]
    assert [getattr(verifier, name)() for name in names] == list(range(8))
    assert verifier.PREIMAGE_LENGTH() == 120 and verifier.MAX_VALUE() == 56


# -- the batch, the index and the inclusion ---------------------------------------------------------


def test_a_preimage_of_another_batch__is_refused(verifier):
    step = _posted_step(2)
    _rejected(verifier, step.replace(batch_hash=keccak(b"another")), "verifier: bad batch preimage")
    _rejected(verifier, step.replace(preimage=step.preimage[:-1]), "verifier: bad batch preimage")
    forged = step.preimage[:96] + (7).to_bytes(4, "big") + step.preimage[100:]  # another count
    _rejected(verifier, step.replace(preimage=forged), "verifier: bad batch preimage")


def test_a_proof_of_another_index__is_refused(verifier):
    step = _posted_step(2)
    _rejected(verifier, step.replace(index=3), "verifier: not the disputed index")


def test_an_index_past_the_batch__is_refused(verifier):
    step = _posted_step(5)
    proof = dataclasses.replace(_decoded(step), index=6)
    _rejected(verifier, step.replace(index=6).with_proof(proof), "verifier: index out of range")


def test_a_bad_inclusion_proof__is_refused(verifier):
    step = _posted_step(3)
    proof = _decoded(step)
    siblings = list(proof.tx_proof.siblings)
    siblings[1] = keccak(siblings[1])
    wrong_sibling = dataclasses.replace(proof, tx_proof=TxProof(tuple(siblings)))
    _rejected(verifier, step.with_proof(wrong_sibling), "verifier: bad inclusion proof")
    short = dataclasses.replace(proof, tx_proof=TxProof(proof.tx_proof.siblings[:-1]))
    _rejected(verifier, step.with_proof(short), "verifier: bad inclusion proof")
    other_time = dataclasses.replace(proof, timestamp=proof.timestamp + 1)
    _rejected(verifier, step.with_proof(other_time), "verifier: bad inclusion proof")


def test_a_record_of_an_unknown_kind__is_refused(verifier):
    step = _posted_step(0)
    raw = bytearray(step.proof)
    raw[12] = 9
    _rejected(verifier, step.replace(proof=bytes(raw)), "verifier: unknown record kind")


def test_a_proof_cut_short__is_refused(verifier):
    step = _posted_step(0)
    _rejected(verifier, step.replace(proof=step.proof[:12]), "verifier: proof too short")
    _rejected(verifier, step.replace(proof=step.proof[: 12 + 166]), "verifier: proof ends in its record")
    _rejected(
        verifier, step.replace(proof=step.proof[: 12 + 166 + 5]), "verifier: proof ends in its tx proof"
    )
    tx_proof_end = 12 + 166 + 1 + 32 * 3
    _rejected(verifier, step.replace(proof=step.proof[:tx_proof_end]), "verifier: empty witness")


# -- the witness's encoding ---------------------------------------------------------------------------


def test_a_truncated_witness_or_bytes_after_it__are_refused(verifier):
    step, _ = _single("transfer-ok")
    for cut in (1, 40, 65):
        _rejected(verifier, step.replace(proof=step.proof[:-cut]), "verifier: witness truncated")
    _rejected(verifier, step.replace(proof=step.proof + b"\x00"), "verifier: bytes after the witness")


def _witness_at(step: Step) -> int:
    proof = _decoded(step)
    return 12 + len(proof.record) + len(proof.tx_proof.encode())


def test_a_value_over_56_bytes__is_refused(verifier):
    step, _ = _single("transfer-ok")
    raw = bytearray(step.proof)
    raw[_witness_at(step) + 1 + 32] = 57  # the first entry's value length
    _rejected(verifier, step.replace(proof=bytes(raw)), "verifier: witness value too long")


def test_a_bad_proof_terminal_or_hint_kind__is_refused(verifier):
    step, _ = _single("deposit-into-empty-state")  # entries with no siblings: fixed offsets
    first = _decoded(step).witness.entries[0]
    at = _witness_at(step) + 1 + 33 + len(first.value or b"") + 1  # the first entry's terminal byte
    raw = bytearray(step.proof)
    raw[at] = 2
    _rejected(verifier, step.replace(proof=bytes(raw)), "verifier: bad proof terminal")
    assert first.proof.terminal is None  # so its hint byte follows the terminal byte
    raw = bytearray(step.proof)
    raw[at + 1] = 3
    _rejected(verifier, step.replace(proof=bytes(raw)), "verifier: bad hint kind")


def test_unsorted_or_repeated_keys__are_refused(verifier):
    step, _ = _single("transfer-ok")
    entries = list(_decoded(step).witness.entries)
    swapped = entries[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    # The Python Witness refuses to hold unsorted keys: write the bytes by hand.
    head = step.proof[: _witness_at(step)]
    encoded = bytes([len(swapped)]) + b"".join(entry.encode() for entry in swapped)
    _rejected(verifier, step.replace(proof=head + encoded), "verifier: witness keys not ascending")
    repeated = bytes([2]) + entries[0].encode() + entries[0].encode()
    _rejected(verifier, step.replace(proof=head + repeated), "verifier: witness keys not ascending")


# -- the witness's contents -----------------------------------------------------------------------------


def test_a_missing_read_entry__is_refused(verifier):
    step, _ = _single("transfer-ok")
    entries = list(_decoded(step).witness.entries)
    for j in range(len(entries)):  # every entry of a transfer is read
        _rejected(
            verifier, _with_entries(step, entries[:j] + entries[j + 1 :]), "verifier: read without an entry"
        )


def test_a_missing_written_entry__is_refused(verifier):
    step, vector = _single("withdraw-ok")
    entries = list(_decoded(step).witness.entries)
    # The withdrawal leaf is only written: the one entry whose key no vector read lists.
    read = {leaf["key"] for leaf in vector["reads"]}
    (j,) = [j for j, entry in enumerate(entries) if "0x" + entry.key.hex() not in read]
    _rejected(
        verifier, _with_entries(step, entries[:j] + entries[j + 1 :]), "verifier: write without an entry"
    )


def test_a_needless_entry__is_refused(verifier):
    step, _ = _single("transfer-bad-nonce")  # reads only the sender's nonce
    entries = list(_decoded(step).witness.entries)
    donor, _ = _single("transfer-ok")
    extra = [e for e in _decoded(donor).witness.entries if e.key not in {x.key for x in entries}]
    # A leaf it never reads, with a valid proof against the same pre-state root.
    witness = sorted(entries + extra[:1], key=lambda entry: entry.key)
    _rejected(verifier, _with_entries(step, witness), "verifier: needless entry")


def test_a_wrong_value_sibling_or_pre_state_root__is_refused(verifier):
    step, _ = _single("transfer-ok")
    entries = list(_decoded(step).witness.entries)
    present = next(j for j, e in enumerate(entries) if e.value is not None and e.proof.siblings)
    wrong_value = entries[:]
    value = entries[present].value
    wrong_value[present] = dataclasses.replace(entries[present], value=value[:-1] + bytes([value[-1] ^ 1]))
    _rejected(verifier, _with_entries(step, wrong_value), "verifier: bad leaf proof")
    wrong_sibling = entries[:]
    siblings = list(entries[present].proof.siblings)
    siblings[0] = keccak(siblings[0])
    proof = Proof(tuple(siblings), entries[present].proof.terminal)
    wrong_sibling[present] = dataclasses.replace(entries[present], proof=proof)
    _rejected(verifier, _with_entries(step, wrong_sibling), "verifier: bad leaf proof")
    _rejected(verifier, step.replace(agreed=keccak(step.agreed)), "verifier: bad leaf proof")


def test_an_entry_proven_against_the_pre_state_not_the_root_so_far__is_refused(verifier):
    # Entry j is proven against the root after entries 0 … j-1; the vector's reads are proven
    # against the pre-state root, which differs for a leaf after a changed one.
    step, vector = _single("transfer-ok")
    entries = list(_decoded(step).witness.entries)
    stale = {_b(leaf["key"]): Proof.decode(_b(leaf["proof"])) for leaf in vector["reads"]}
    out_of_place = [j for j, e in enumerate(entries) if j and stale[e.key] != e.proof]
    assert out_of_place
    for j in out_of_place:
        changed = entries[:]
        changed[j] = dataclasses.replace(entries[j], proof=stale[entries[j].key])
        _rejected(verifier, _with_entries(step, changed), "verifier: bad leaf proof")


def test_a_missing_needless_or_wrong_hint__is_refused(verifier):
    step, _ = _single("transfer-whole-balance")  # deletes ALICE's leaf: a leaf hint is due
    entries = list(_decoded(step).witness.entries)
    j = next(j for j, e in enumerate(entries) if e.hint is not None)
    missing = entries[:]
    missing[j] = dataclasses.replace(entries[j], hint=None)
    _rejected(verifier, _with_entries(step, missing), "smt: deletion needs a hint")
    wrong = entries[:]
    wrong[j] = dataclasses.replace(entries[j], hint=Leaf(keccak(b"k"), keccak(b"v")))
    _rejected(verifier, _with_entries(step, wrong), "smt: hint is not the deepest sibling")
    as_internal = entries[:]
    hint = entries[j].hint
    as_internal[j] = dataclasses.replace(entries[j], hint=Internal(hint.key, hint.value_hash))
    _rejected(verifier, _with_entries(step, as_internal), "smt: hint is not the deepest sibling")
    needless = entries[:]
    k = next(k for k, e in enumerate(entries) if e.hint is None)
    needless[k] = dataclasses.replace(entries[k], hint=Leaf(keccak(b"k"), keccak(b"v")))
    _rejected(verifier, _with_entries(step, needless), "smt: needless hint")


def test_a_hint_on_a_leaf_that_does_not_change__is_refused(verifier):
    step, _ = _single("transfer-zero-amount-to-new-account")  # DAVE's leaf: read, stays absent
    entries = list(_decoded(step).witness.entries)
    j = next(j for j, e in enumerate(entries) if e.value is None)
    entries[j] = dataclasses.replace(entries[j], hint=Internal(EMPTY, EMPTY))
    _rejected(verifier, _with_entries(step, entries), "smt: needless hint")


# -- random batches -------------------------------------------------------------------------------------

PRE = apply_block(State(), CTX, deposits(8)).state
POSTER = ADDRS[7]
_kinds = st.sampled_from(["transfer", "withdraw", "authorization"])
_tx = st.tuples(
    _kinds, st.integers(0, 7), st.integers(0, 9), st.integers(0, 60), st.integers(0, 2), st.booleans()
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blocks=st.lists(st.lists(_tx, max_size=6), min_size=1, max_size=3), pick=st.integers(0, 10**6))
def test_random_batches__the_verifier_gives_the_python_trace(verifier, blocks, pick):
    batch = Batch(
        tuple(
            Block(
                1_000 + 100 * b,
                tuple(
                    signed_tx(kind, sender, to, amount, nonce, bad_sig=bad and amount % 5 == 0)
                    for kind, sender, to, amount, nonce, bad in txs
                ),
            )
            for b, txs in enumerate(blocks)
        )
    )
    if batch.tx_count == 0:
        return
    _, statuses, roots = execute_batch(PRE, batch, CHAIN, INBOX, POSTER)
    index = pick % batch.tx_count
    preimage = batch_preimage(keccak(b"before"), batch.encode(), batch.tx_root(), batch.tx_count, POSTER)
    proof = prove_step(PRE, batch, index, CHAIN, INBOX, POSTER).encode()
    agreed = roots[index - 1] if index else PRE.root
    status, root = verifier.verifyStep(keccak(preimage), preimage, index, agreed, CHAIN, INBOX, proof)
    assert (status, bytes(root)) == (statuses[index], roots[index])


# A state of 4,096 other leaves: every leaf a transaction touches lies 12 levels deep or so (the
# vectors' and the random batches' states are a few levels deep; a proof with 8 or more siblings
# once overflowed the verifier's witness decoder).
DEEP = PRE.apply({keccak(b"filler" + i.to_bytes(4, "big")): b"\x01" for i in range(4_096)})


@pytest.mark.parametrize("kind", ["transfer", "withdraw", "authorization", "deposit", "bad nonce"])
def test_a_step_in_a_deep_tree__gives_the_python_trace(verifier, kind):
    if kind == "deposit":
        tx = deposits(9)[8]
    else:
        tx = signed_tx("transfer" if kind == "bad nonce" else kind, 1, 2, 7, 5 if kind == "bad nonce" else 0)
    batch = Batch((Block(1_000, (signed_tx("transfer", 0, 1, 3, 0), tx)),))
    _, statuses, roots = execute_batch(DEEP, batch, CHAIN, INBOX, POSTER)
    preimage = batch_preimage(keccak(b"before"), batch.encode(), batch.tx_root(), batch.tx_count, POSTER)
    proof = prove_step(DEEP, batch, 1, CHAIN, INBOX, POSTER)
    assert min(len(e.proof.siblings) for e in proof.witness.entries) >= 8
    status, root = verifier.verifyStep(keccak(preimage), preimage, 1, roots[0], CHAIN, INBOX, proof.encode())
    assert (status, bytes(root)) == (statuses[1], roots[1])
