"""getSummary on chain equals a plain Python model, over random feedback sets.

Values with mixed decimals, revocations, tag filters, and client lists with repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import ape
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzzing


@dataclass
class Entry:
    client: int
    value: int
    decimals: int
    tag1: str
    tag2: str
    revoked: bool = False


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as the EVM's SDIV."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def model_summary(
    entries: list[Entry], query: list[int], tag1: str, tag2: str
) -> tuple[int, int, int] | None:
    """ERC-8004 getSummary as our registry defines it (see ReputationRegistry's NatSpec).

    None where the mean does not fit int128 (the registry reverts).
    """
    clients = list(dict.fromkeys(query))  # repeats count once
    rows = [
        e
        for c in clients
        for e in entries
        if e.client == c and not e.revoked and tag1 in ("", e.tag1) and tag2 in ("", e.tag2)
    ]
    if not rows:
        return (0, 0, 0)
    per_decimals = [sum(1 for e in rows if e.decimals == d) for d in range(19)]
    mode = per_decimals.index(max(per_decimals))  # the lowest on a tie
    total18 = sum(e.value * 10 ** (18 - e.decimals) for e in rows)
    mean = _trunc_div(_trunc_div(total18, len(rows)), 10 ** (18 - mode))
    if not -(2**127) <= mean < 2**127:
        return None
    return (len(rows), mean, mode)


entry_strategy = st.builds(
    Entry,
    client=st.integers(0, 2),
    value=st.one_of(st.integers(-(10**6), 10**6), st.integers(-(10**30), 10**30)),
    decimals=st.sampled_from([0, 0, 2, 6, 18, 18]),
    tag1=st.sampled_from(["", "quality", "speed"]),
    tag2=st.sampled_from(["", "x"]),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    entries=st.lists(entry_strategy, min_size=0, max_size=8),
    revoke=st.lists(st.integers(0, 7), max_size=3, unique=True),
    query=st.lists(st.integers(0, 2), min_size=1, max_size=5),
    tag1=st.sampled_from(["", "quality"]),
    tag2=st.sampled_from(["", "x"]),
)
def test_get_summary__matches_python_model(
    chain, reputation, agent_id, bob, carol, accounts, entries, revoke, query, tag1, tag2
):
    clients = [bob, carol, accounts[7]]
    with chain.isolate():
        indexes: dict[int, int] = {}
        positions = []
        for entry in entries:
            client = clients[entry.client]
            reputation.giveFeedback(
                agent_id,
                entry.value,
                entry.decimals,
                entry.tag1,
                entry.tag2,
                "",
                "",
                b"\x00" * 32,
                sender=client,
            )
            indexes[entry.client] = indexes.get(entry.client, 0) + 1
            positions.append(indexes[entry.client])
        for i in revoke:
            if i < len(entries):
                entries[i].revoked = True
                reputation.revokeFeedback(agent_id, positions[i], sender=clients[entries[i].client])

        expected = model_summary(entries, query, tag1, tag2)
        query_addresses = [clients[i] for i in query]
        if expected is None:
            with ape.reverts("reputation: summary overflow"):
                reputation.getSummary(agent_id, query_addresses, tag1, tag2)
        else:
            assert tuple(reputation.getSummary(agent_id, query_addresses, tag1, tag2)) == expected
