"""Block execution: the sequential executor against Block-STM, in one run, at three contention levels.

Each block holds N signed L2 transfers (10,000 by default) on a state of funded accounts:
- none: every transaction has its own sender and receiver;
- 10 hot: every transaction pays one of 10 hot receivers;
- 1 hot: every transaction pays the same receiver;
- 10 hot senders, 1 hot sender (no goal): every transaction comes from one of 10 senders, or
  from the same one, each sender's nonces in turn, so that a transaction reads what an earlier
  one wrote: Block-STM aborts and re-executes (the table shows how often).
Both executors check every signature (recovery included) and compute the block's state root;
Block-STM checks signatures in worker processes (they read no state) while its threads run the
state transition. Prints transactions per second for each, the ratio, incarnations per
transaction, validation aborts and dependency suspensions (of the last round), the time to
compute the block's state root alone, and the time to compute the per-transaction roots (the
trace, built only for a disputed batch). Goals on a 2-core machine:
Block-STM at least 1.5 x sequential with no contention, at least 0.9 x with one hot account.
Each level runs both executors `--rounds` times, interleaved, and reports medians: the ratio is
the median of the rounds' ratios (their range beside it), as a noisy machine slows runs unevenly.

Run from the repository root:
  python bench/blockstm.py [--txs 10000] [--threads 2] [--workers 2] [--rounds 5]
Writes reports/bench/blockstm.json. It reports; it does not assert.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from eth_account import Account
from eth_hash.auto import keccak
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from offchain.executor.block import commit_writes, run_block
from offchain.executor.merkle import parallel_roots, worker_pool
from offchain.l2.codec import Deposit, Transfer
from offchain.l2.signing import sign, transfer_digest
from offchain.l2.stf import BlockContext, State, apply_block
from offchain.l2.store import StateStore

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "blockstm.json"
CHAIN, INBOX, TOKEN = 424_242, "0x" + "1b" * 20, "0x" + "0a" * 20
CTX = BlockContext(chain_id=CHAIN, inbox=INBOX, timestamp=1_000, sequencer="0x" + "5e" * 20)


def _keys(n: int) -> list[tuple[bytes, str]]:
    keys = [keccak(b"bench" + i.to_bytes(4, "big")) for i in range(n)]
    return [(key, Account.from_key(key).address) for key in keys]


def _block(senders: list[tuple[bytes, str]], receivers: list[str], n: int) -> list[Transfer]:
    """n transfers: transaction i from sender i mod len(senders) (its nonces in turn) to receiver i
    mod len(receivers)."""
    txs = []
    for i in range(n):
        key, sender = senders[i % len(senders)]
        to, nonce = receivers[i % len(receivers)], i // len(senders)
        unsigned = Transfer(sender, to, TOKEN, 10, 1, nonce, b"\x00" * 65)
        txs.append(
            Transfer(sender, to, TOKEN, 10, 1, nonce, sign(key, transfer_digest(unsigned, CHAIN, INBOX)))
        )
    return txs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes that check signatures")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each executor per level (medians)")
    options = parser.parse_args()
    console = Console(width=175)
    n = options.txs

    with Progress(console=console, transient=True) as progress:
        progress.add_task(f"Signing {5 * n:,} transactions", total=None)
        senders = _keys(n)
        distinct = [address for _, address in _keys(2 * n)[n:]]
        blocks = {
            "none": _block(senders, distinct, n),
            "10 hot": _block(senders, distinct[:10], n),
            "1 hot": _block(senders, distinct[:1], n),
            # Not in the goals: senders whose nonces chain their transactions, so they conflict.
            "10 hot senders": _block(senders[:10], distinct, n),
            "1 hot sender": _block(senders[:1], distinct, n),
        }
        deposits: list = [Deposit(i, a, TOKEN, 11 * n) for i, (_, a) in enumerate(senders)]
        in_memory = apply_block(State(), CTX, deposits).state

    rows = []
    with tempfile.TemporaryDirectory() as directory, worker_pool(options.workers) as pool:
        store = StateStore(directory)
        genesis = apply_block(store.state_at(), CTX, deposits).state
        store.commit(0, genesis)
        run_block(genesis, CTX, blocks["none"][:1_000], pool=pool, store=store)  # start the processes
        for level, txs in blocks.items():
            seq_times, par_times = [], []
            for _ in range(options.rounds):  # interleaved, so that a slow spell hits both
                store.discard()
                started = time.perf_counter()
                sequential = run_block(genesis, CTX, txs, parallel=False)
                seq_times.append(time.perf_counter() - started)
                store.discard()
                started = time.perf_counter()
                parallel = run_block(genesis, CTX, txs, threads=options.threads, pool=pool, store=store)
                par_times.append(time.perf_counter() - started)
                if (parallel.state.root, parallel.statuses) != (sequential.state.root, sequential.statuses):
                    raise SystemExit("Block-STM diverged from sequential")
            in_order = [seq / par for seq, par in zip(seq_times, par_times, strict=True)]
            ratios = sorted(in_order)
            seq_seconds, par_seconds = statistics.median(seq_times), statistics.median(par_times)
            started = time.perf_counter()
            run_block(in_memory, CTX, txs, parallel=False)
            memory_seconds = time.perf_counter() - started
            merged = {k: v for writes in sequential.writes for k, v in writes.items()}
            store.discard()
            started = time.perf_counter()
            genesis.apply(merged)
            root_seconds = time.perf_counter() - started
            store.discard()
            started = time.perf_counter()
            parallel_roots(store, genesis.root, [merged], pool)
            parallel_root_seconds = time.perf_counter() - started
            store.discard()
            started = time.perf_counter()
            _, trace = commit_writes(genesis, sequential.writes)
            trace_seconds = time.perf_counter() - started
            store.discard()
            started = time.perf_counter()
            if parallel_roots(store, genesis.root, sequential.writes, pool, keep_nodes=False) != trace:
                raise SystemExit("the trace from subtrees differs")
            parallel_trace_seconds = time.perf_counter() - started
            rows.append(
                {
                    "contention": level,
                    "sequential_tps": n / seq_seconds,
                    "blockstm_tps": n / par_seconds,
                    "ratio": statistics.median(ratios),
                    "ratio_min": ratios[0],
                    "ratio_max": ratios[-1],
                    "ratios_in_order": in_order,
                    "incarnations_per_tx": parallel.stats.incarnations / n,
                    "validation_aborts": parallel.stats.validation_aborts,
                    "suspensions": parallel.stats.suspensions,
                    "sequential_in_memory_tps": n / memory_seconds,
                    "root_seconds": root_seconds,
                    "root_seconds_in_workers": parallel_root_seconds,
                    "trace_seconds": trace_seconds,
                    "trace_seconds_in_workers": parallel_trace_seconds,
                }
            )
        store.close()

    table = Table(
        title=f"Blocks of {n:,} transfers: sequential vs Block-STM ({options.threads} threads, {options.workers} processes)"
    )
    for column in (
        "contention",
        "sequential tx/s",
        "Block-STM tx/s",
        "ratio (min-max)",
        "incarnations/tx",
        "aborts / suspensions",
        "sequential, in memory tx/s",
        "block root (s): 1 process / workers",
        "trace (s): 1 process / workers",
    ):
        table.add_column(column, justify="left" if column == "contention" else "right")
    for row in rows:
        table.add_row(
            row["contention"],
            f"{row['sequential_tps']:,.0f}",
            f"{row['blockstm_tps']:,.0f}",
            f"{row['ratio']:.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})",
            f"{row['incarnations_per_tx']:.2f}",
            f"{row['validation_aborts']} / {row['suspensions']}",
            f"{row['sequential_in_memory_tps']:,.0f}",
            f"{row['root_seconds']:.2f} / {row['root_seconds_in_workers']:.2f}",
            f"{row['trace_seconds']:.2f} / {row['trace_seconds_in_workers']:.2f}",
        )
    console.print(table)
    ratio = {row["contention"]: row["ratio"] for row in rows}
    goals = (ratio["none"] >= 1.5, ratio["1 hot"] >= 0.9)
    console.print(
        f"Goals: no contention >= 1.5 x: {'met' if goals[0] else 'NOT met'}; "
        f"one hot account >= 0.9 x: {'met' if goals[1] else 'NOT met'}"
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "txs": n,
                "threads": options.threads,
                "workers": options.workers,
                "rounds": options.rounds,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"JSON report: {REPORT}")


if __name__ == "__main__":
    main()
