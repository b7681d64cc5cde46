"""A web3 connection for our services (facilitator, sequencer, clients)."""

from __future__ import annotations

from web3 import Web3


def connect(url: str, timeout: float = 30.0) -> Web3:
    """An HTTP JSON-RPC connection that caches what cannot change (eth_chainId, ...).

    web3 validates every call against the chain id: uncached, that doubles the round trips.
    """
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}, cache_allowed_requests=True))
