"""The moves of a dispute over one batch (docs/l2-protocol.md §Dispute game), from the batch and
its pre-state: what a defender reveals, which part a challenger picks, and the one-step proof.

The trace of a batch of n transactions is roots[0 … n]: roots[0] the pre-state root, roots[k]
the state root after its first k transactions (so roots[n] is the post-state root). A game holds
an interval (lo, hi] of it: the parties agree on roots[lo] and disagree on roots[hi]. A reveal
gives the roots at the inner cut points of `cut_points(lo, hi, arity)`; the challenger picks the
first part whose end root it disputes; at width one the proof of transaction lo decides. The
rule of the cut points is the contract's (DisputeGame.cutPoints), held to it by the game tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from offchain.errors import InvalidInput
from offchain.hashing import keccak
from offchain.l2.batch import Batch, execute_batch
from offchain.l2.onestep import prove_step
from offchain.l2.stf import State


def part_count(lo: int, hi: int, arity: int) -> int:
    """How many parts the interval (lo, hi] is cut into: `arity`, or fewer when narrower."""
    if not 0 <= lo < hi or arity < 2:
        raise InvalidInput(f"no interval ({lo}, {hi}] to cut in {arity}")
    return min(arity, hi - lo)


def cut_points(lo: int, hi: int, arity: int) -> list[int]:
    """lo, the inner cut points, hi: point j is lo + j·(hi - lo) // parts."""
    parts = part_count(lo, hi, arity)
    return [lo + j * (hi - lo) // parts for j in range(parts + 1)]


@dataclass(frozen=True)
class BatchTrace:
    """A batch, the state it starts from, and the roots a party stands behind.

    `roots` is the honest trace when made by `run`; a dishonest party's is any other list
    (`lying_from` makes one for tests and fault injection).
    """

    pre_state: State
    batch: Batch
    chain_id: int
    inbox: str
    poster: str
    roots: tuple[bytes, ...]

    @classmethod
    def run(cls, pre_state: State, batch: Batch, chain_id: int, inbox: str, poster: str) -> BatchTrace:
        """The honest trace: the batch executed on `pre_state` by the reference STF."""
        _, _, after = execute_batch(pre_state, batch, chain_id, inbox, poster)
        return cls(pre_state, batch, chain_id, inbox, poster, (pre_state.root, *after))

    @property
    def tx_count(self) -> int:
        return len(self.roots) - 1

    @property
    def post_root(self) -> bytes:
        return self.roots[-1]

    def lying_from(self, index: int, root: bytes) -> BatchTrace:
        """This trace with `root` after transaction `index` and every root after it changed too."""
        if not 0 <= index < self.tx_count:
            raise InvalidInput(f"no transaction {index} in a batch of {self.tx_count}")
        lies = [root] + [
            keccak(b"lie" + root + k.to_bytes(4, "big")) for k in range(self.tx_count - index - 1)
        ]
        return replace(self, roots=self.roots[: index + 1] + tuple(lies))

    def reveal(self, lo: int, hi: int, arity: int) -> list[bytes]:
        """The defender's move: its roots at the inner cut points of (lo, hi]."""
        return [self.roots[point] for point in cut_points(lo, hi, arity)[1:-1]]

    def pick(self, lo: int, hi: int, arity: int, revealed: list[bytes]) -> int:
        """The challenger's move: the first part whose end root differs from this trace's (the
        last part if every revealed root agrees: the defender's root at hi is the disputed one)."""
        points = cut_points(lo, hi, arity)
        if len(revealed) != len(points) - 2:
            raise InvalidInput(f"{len(revealed)} roots revealed for {len(points) - 1} parts")
        for j, root in enumerate(revealed):
            if root != self.roots[points[j + 1]]:
                return j
        return len(points) - 2

    def prove(self, index: int) -> bytes:
        """The one-step proof of transaction `index` (on the honest pre-state before it)."""
        return prove_step(self.pre_state, self.batch, index, self.chain_id, self.inbox, self.poster).encode()
