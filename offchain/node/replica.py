"""The replica node: the L2 derived from L1 alone, kept on disk.

It replays every appended batch from the inbox's calldata with the reference STF and commits the
state after each L2 block to the LMDB store (`StateStore`, versioned by L2 block number), so it
answers reads for any block and restarts where it stopped. Beside the store, `synced.json`
records the last batch it has fully applied and that batch's hash; batch hashes chain (each
commits to the one before), so one comparison tells whether L1 still holds what the store was
built from. If it does not (an L1 reorganization), `sync` refuses with `ReorgError` and changes
nothing: the store must be rebuilt from an empty folder, never silently kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from offchain.errors import AgentL2Error
from offchain.l2.batch import Batch
from offchain.l2.stf import BlockContext, State, apply_block, authorization_key, balance_key, nonce_key
from offchain.l2.store import StateStore
from offchain.rollup.inbox import Inbox


class ReorgError(AgentL2Error):
    """L1 no longer holds the batch the store was built from."""


class ReplicaNode:
    def __init__(self, inbox: Inbox, chain_id: int, path: Path | str):
        self.inbox = inbox
        self.chain_id = chain_id
        self.path = Path(path)
        self.store = StateStore(self.path / "state")
        self._synced_file = self.path / "synced.json"

    def close(self) -> None:
        self.store.close()

    # -- deriving --------------------------------------------------------------------------------

    @property
    def synced(self) -> tuple[int, bytes] | None:
        """The last batch applied in full and its hash (None: none yet)."""
        if not self._synced_file.exists():
            return None
        raw = json.loads(self._synced_file.read_text())
        return raw["batch"], bytes.fromhex(raw["batch_hash"])

    def sync(self) -> int:
        """Applies the batches appended since the last sync; returns how many batches it holds."""
        batches = self.inbox.batches()
        synced = self.synced
        if synced is not None:
            index, batch_hash = synced
            if index >= len(batches) or batches[index].batch_hash != batch_hash:
                raise ReorgError(
                    f"L1 no longer holds batch {index} as this node applied it (an L1 reorganization): "
                    f"rebuild the node from an empty folder"
                )
        start = 0 if synced is None else synced[0] + 1
        for appended in batches[start:]:
            batch = Batch.decode(self.inbox.batch_data(appended))
            latest = self.store.latest()
            state = self.store.state_at()
            for k, block in enumerate(batch.blocks):
                number = appended.first_l2_block + k
                if latest is not None and number <= latest:
                    continue  # committed before a restart in the middle of this batch
                ctx = BlockContext(self.chain_id, self.inbox.address, block.timestamp, appended.poster)
                state = apply_block(state, ctx, list(block.txs)).state
                self.store.commit(number, state)
            self._write_synced(appended.index, appended.batch_hash)
        return len(batches)

    def _write_synced(self, index: int, batch_hash: bytes) -> None:
        temporary = self._synced_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"batch": index, "batch_hash": batch_hash.hex()}))
        os.replace(temporary, self._synced_file)  # atomic: a crash leaves the old or the new record

    # -- reads -----------------------------------------------------------------------------------

    def batch_root(self, index: int) -> bytes:
        """The state root after batch `index` (the root its claim must be)."""
        appended = self.inbox.batches()[index]
        last_block = appended.first_l2_block + appended.block_count - 1
        if last_block < 0:
            return State().root
        return self.store.root_at(last_block)

    def balance(self, account: str, token: str) -> int:
        latest = self.store.latest()
        raw = None if latest is None else self.store.read(latest, balance_key(account, token))
        return int.from_bytes(raw, "big") if raw else 0

    def nonce(self, account: str) -> int:
        latest = self.store.latest()
        raw = None if latest is None else self.store.read(latest, nonce_key(account))
        return int.from_bytes(raw, "big") if raw else 0

    def authorization_used(self, authorizer: str, nonce: bytes) -> bool:
        latest = self.store.latest()
        return (
            latest is not None and self.store.read(latest, authorization_key(authorizer, nonce)) is not None
        )

    def disagreements(self) -> list[tuple[int, bytes, bytes]]:
        """The standing claims whose root is not the derived one: (batch, claimed, derived)."""
        synced = self.synced
        out = []
        last = -1 if synced is None else synced[0]
        for index in range(min(self.inbox.count("claimCount"), last + 1)):
            claimed, derived = self.inbox.claim(index).root, self.batch_root(index)
            if claimed != derived:
                out.append((index, claimed, derived))
        return out
