"""Our contracts at known addresses, typed by the project's own build, never by ape's caches.

ape caches contract types by address on disk for networks given by URL (`ethereum:custom`) and
detects clones as proxies of their implementation. Two local chains at one URL reuse addresses,
so a cached type or a clone's implementation can name another of our contracts (an Inbox read as
the DisputeGame of an earlier chain). We always know what we expect at an address: this says so
and replaces the cache's entry.
"""

from __future__ import annotations

from ape import chain, project
from ape.contracts import ContractInstance


def contract_at(name: str, address: str) -> ContractInstance:
    """Our contract `name` (a project contract type) at `address`."""
    return chain.contracts.instance_at(
        address,
        contract_type=getattr(project, name).contract_type,
        fetch_from_explorer=False,
        detect_proxy=False,
        replace=True,
    )
