"""The state witness of a one-step proof (docs/l2-protocol.md §One-step proof: the state witness).

At the last step of a dispute the verifier holds one transaction record, its block context, the
agreed pre-state root and a witness: every leaf the transaction reads or writes, with its value
and a proof. From these alone, with no tree store, `post_state_root` gives the transaction's
status and the true post-state root; the on-chain verifier mirrors it step by step.

    witness  count(1) ‖ entry_0 … entry_{count-1}          keys strictly ascending
    entry    key(32) ‖ valueLength(1, 0: absent) ‖ value ‖ proof ‖ hint

Entry j's proof is against the root after entries 0 … j-1 have been applied. Earlier entries only
change other keys, so entry j's value is also its value under the pre-state root.
"""

from __future__ import annotations

from dataclasses import dataclass

from offchain.errors import AgentL2Error
from offchain.hashing import keccak
from offchain.l2.codec import Tx, decode
from offchain.l2.smt import Hint, Proof, SmtError, encode_hint, read_hint, root_after, verify
from offchain.l2.stf import BlockContext, State, Status, apply_tx

MAX_VALUE = 56  # the longest leaf value: a withdrawal, token(20) ‖ amount(16) ‖ recipient(20)


class WitnessError(AgentL2Error, ValueError):
    """A witness that is malformed, incomplete, or does not prove what it claims."""


@dataclass(frozen=True)
class Entry:
    """One leaf: its value under the pre-state root (None: absent), a proof and a deletion hint."""

    key: bytes
    value: bytes | None
    proof: Proof  # against the root after the entries before this one
    hint: Hint = None

    def encode(self) -> bytes:
        value = self.value or b""
        if len(self.key) != 32 or self.value == b"" or len(value) > 255:
            raise WitnessError("an entry has a 32-byte key and an absent or 1 to 255-byte value")
        return self.key + bytes([len(value)]) + value + self.proof.encode() + encode_hint(self.hint)


@dataclass(frozen=True)
class Witness:
    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        if len(self.entries) > 255:
            raise WitnessError(f"a witness has at most 255 entries, not {len(self.entries)}")
        for j, entry in enumerate(self.entries):
            if len(entry.key) != 32:
                raise WitnessError(f"entry {j}: keys are 32 bytes")
            if entry.value is not None and not 1 <= len(entry.value) <= MAX_VALUE:
                raise WitnessError(f"entry {j}: a value is 1 to {MAX_VALUE} bytes, not {len(entry.value)}")
            if j and entry.key <= self.entries[j - 1].key:
                raise WitnessError(f"entry {j}: keys must ascend strictly (0x{entry.key.hex()})")

    def encode(self) -> bytes:
        return bytes([len(self.entries)]) + b"".join(entry.encode() for entry in self.entries)

    @classmethod
    def decode(cls, raw: bytes) -> Witness:
        """The witness `raw` holds; raises WitnessError (never anything else) on malformed bytes."""
        if not raw:
            raise WitnessError("empty witness: not even a count")
        entries, offset = [], 1
        for j in range(raw[0]):
            if offset + 33 > len(raw):
                raise WitnessError(f"entry {j}: truncated before its value length")
            key, length = raw[offset : offset + 32], raw[offset + 32]
            if length > MAX_VALUE:
                raise WitnessError(f"entry {j}: a value is at most {MAX_VALUE} bytes, not {length}")
            offset += 33
            if offset + length > len(raw):
                raise WitnessError(f"entry {j}: value truncated")
            value = raw[offset : offset + length] if length else None
            try:
                proof, offset = Proof.read(raw, offset + length)
                hint, offset = read_hint(raw, offset)
            except SmtError as exc:
                raise WitnessError(f"entry {j}: {exc}") from exc
            entries.append(Entry(key, value, proof, hint))
        if offset != len(raw):
            raise WitnessError(f"{len(raw) - offset} bytes after the last entry")
        return cls(tuple(entries))


def _hash(value: bytes | None) -> bytes | None:
    return None if value is None else keccak(value)


def prove_tx(state: State, ctx: BlockContext, tx: Tx) -> Witness:
    """The witness of `tx` on `state`: every leaf it reads or writes, proven in key order."""
    reads: set[bytes] = set()

    def read(key: bytes) -> bytes | None:
        reads.add(key)
        return state.read(key)

    _, writes = apply_tx(tx, ctx, read)
    root, entries = state.root, []
    for key in sorted(reads | writes.keys()):
        proof, old = state.tree.prove(root, key), state.read(key)
        new, hint = writes.get(key, old), None
        if new != old:
            if new is None and proof.siblings:
                hint = state.tree.node(proof.siblings[-1])
            root = state.tree.update(root, {key: _hash(new)})
        entries.append(Entry(key, old, proof, hint))
    return Witness(tuple(entries))


def recompute(pre_root: bytes, ctx: BlockContext, tx: Tx, witness: Witness) -> tuple[Status, bytes]:
    """The status of `tx` and the post-state root, from `pre_root` and `witness` alone."""
    values = {entry.key: entry.value for entry in witness.entries}
    read_keys: set[bytes] = set()

    def read(key: bytes) -> bytes | None:
        if key not in values:
            raise WitnessError(f"the transaction reads 0x{key.hex()}, which the witness lacks")
        value = values[key]
        if value is not None and len(value) > 32:  # every leaf read is a number or a flag
            raise WitnessError(
                f"the transaction reads 0x{key.hex()} as a number, but it holds {len(value)} bytes"
            )
        read_keys.add(key)
        return value

    status, writes = apply_tx(tx, ctx, read)
    missing = sorted(writes.keys() - values.keys())
    if missing:
        raise WitnessError(f"the transaction writes 0x{missing[0].hex()}, which the witness lacks")
    extra = sorted(values.keys() - read_keys - writes.keys())
    if extra:
        raise WitnessError(
            f"the witness holds 0x{extra[0].hex()}, which the transaction neither reads nor writes"
        )

    root = pre_root
    for j, entry in enumerate(witness.entries):
        if not verify(root, entry.key, _hash(entry.value), entry.proof):
            state = "absent" if entry.value is None else "its value"
            raise WitnessError(f"entry {j} (0x{entry.key.hex()}): the proof does not show it {state}")
        new = writes.get(entry.key, entry.value)
        if new == entry.value:
            if entry.hint is not None:
                raise WitnessError(f"entry {j}: a hint, but the transaction does not delete this leaf")
            continue
        try:
            root = root_after(entry.proof, entry.key, _hash(new), entry.hint)
        except SmtError as exc:
            raise WitnessError(f"entry {j} (0x{entry.key.hex()}): {exc}") from exc
    return status, root


def post_state_root(
    pre_root: bytes, ctx: BlockContext, record: bytes, witness: bytes
) -> tuple[Status, bytes]:
    """The status and post-state root of the transaction `record` on `pre_root`, given its witness.

    Raises WitnessError for a malformed, incomplete or unproven witness (never a wrong root), and
    CodecError for a record that does not decode (a batch holding one is invalid as a whole).
    """
    if len(pre_root) != 32:
        raise WitnessError("the pre-state root is 32 bytes")
    return recompute(pre_root, ctx, decode(record), Witness.decode(witness))
