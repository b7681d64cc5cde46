"""The execution clock of x402 authorizations: never earlier than the wall clock or the chain."""

from __future__ import annotations

from typing import Any

import pytest

from offchain.x402.clock import execution_clock


class _Eth:
    def __init__(self, latest: int, pending: int | None):
        self.latest, self.pending = latest, pending

    def get_block(self, which: str) -> dict[str, Any]:
        if which == "pending":
            if self.pending is None:
                raise ValueError("pending block not supported")
            return {"timestamp": self.pending}
        return {"timestamp": self.latest}


class _Web3:
    def __init__(self, latest: int, pending: int | None = None):
        self.eth = _Eth(latest, pending)


@pytest.mark.parametrize("pending", [None, 1_000], ids=["no-pending-block", "pending-block-as-old"])
def test_execution_clock__idle_chain__is_never_earlier_than_the_wall_clock(pending):
    # The latest block is 60 s old: the next block cannot be older than now.
    assert execution_clock(_Web3(latest=1_000, pending=pending), wall=lambda: 1_060.7) == 1_060


def test_execution_clock__chain_ahead_of_the_wall_clock__is_the_pending_block_time():
    assert execution_clock(_Web3(latest=5_000, pending=5_120), wall=lambda: 1_000.0) == 5_120


def test_execution_clock__no_pending_block__is_after_the_latest_block():
    assert execution_clock(_Web3(latest=5_000), wall=lambda: 1_000.0) == 5_001
