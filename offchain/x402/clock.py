"""The clock an EIP-3009 authorization is judged by: the time of the block it will run in.

A transaction sent now runs in a block whose timestamp is never earlier than the wall clock, the
latest block's time + 1, or the time the node gives its pending block (anvil's includes its time
offset), and may be later. The latest block's own time is not that clock: on a chain that mined
nothing for a minute it is a minute behind, and an authorization judged by it looks valid for a
minute longer than it is. Client and facilitator both use `execution_clock`, with margins.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from web3 import Web3


def execution_clock(w3: Web3, wall: Callable[[], float] = time.time) -> int:
    """The earliest timestamp the next block can have (seconds): one RPC."""
    try:
        block, ahead = w3.eth.get_block("pending"), 0
    except Exception:  # a node without a pending block: the latest one, plus the least step
        block, ahead = w3.eth.get_block("latest"), 1
    return max(int(block["timestamp"]) + ahead, int(wall()))
