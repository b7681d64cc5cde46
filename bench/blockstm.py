"""Block execution: three executors in one run, at five contention levels.

Each block holds N signed L2 transfers (10,000 by default) on a state of funded accounts:
- none: every transaction has its own sender and receiver;
- 10 hot / 1 hot: every transaction pays one of 10 hot receivers, or the same one;
- 10 hot senders / 1 hot sender: every transaction comes from one of 10 senders, or from the
  same one, each sender's nonces in turn, so that a transaction reads what an earlier one wrote.
The executors, each checking every signature (recovery included) and computing the block's
state root, interleaved round by round so that a slow spell hits them all (every other round in
reverse order, so that none always runs right after another):
- single: sequential execution in one process, no workers;
- pooled: sequential execution with the worker pool checking the signatures meanwhile and
  computing the root (one subtree each): the strongest pipeline without parallel execution;
- processes: Block-STM with its execution tasks in the same pool (`executor/processes.py`),
  as run by default: a chunk goes to the workers to execute when the parent has fallen behind
  them ("chunks in workers" counts them) and its footprint shows no conflict with the chunks
  before it ("kept", counted after the slash), else the parent executes it;
- speculative: the same with every chunk executed in the workers (speculation="always"), what
  the executor does once there are cores enough for the workers to outrun the parent.
Goals on a 2-core machine (issue 15): processes at least 1.0 x pooled at every level, and at
least 95 % of the 2-core limit (half the single-process time) with no contention.

Also printed, for the speculative runs: the parent's profile (send, wait, validate, merge,
execute, root; ms per block), and an Amdahl projection past two cores from the CPU time that
stays serial (the parent process's, `time.process_time`) and the workers' (from /proc), per
transaction: speedup(N) = single-process time / (serial + parallel / N). It assumes the work
keeps splitting into at least N tasks (the chunks and subtrees get finer as the pool grows):
a projection from this machine's measurements, not a measurement on N cores.

The ratios of processes to pooled scatter round by round on a shared VM (a tenth either way is
common): the bench prints their mean with two standard errors too, and `--levels` runs fewer
levels so that more rounds fit in the same time.

The bench runs with the thread switch interval that `ape run sequencer` sets (1 ms): the pool's
threads in this process hand the workers their tasks and take back their results, and with
Python's default 5 ms they wait that long for the GIL behind the executing thread (single runs
one thread, so it is unaffected).

Run from the repository root:
  python bench/blockstm.py [--txs 10000] [--workers 2] [--rounds 7] [--levels "none,1 hot sender"]
Writes reports/bench/blockstm.json. It reports; it does not assert.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from eth_account import Account
from eth_hash.auto import keccak
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from offchain.executor.block import run_block
from offchain.executor.merkle import worker_pool
from offchain.l2.codec import Deposit, Transfer
from offchain.l2.signing import sign, transfer_digest
from offchain.l2.stf import BlockContext, apply_block
from offchain.l2.store import StateStore

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "blockstm.json"
CHAIN, INBOX, TOKEN = 424_242, "0x" + "1b" * 20, "0x" + "0a" * 20
CTX = BlockContext(chain_id=CHAIN, inbox=INBOX, timestamp=1_000, sequencer="0x" + "5e" * 20)
EXECUTORS = ("single", "pooled", "processes", "speculative")
LEVELS = ("none", "10 hot", "1 hot", "10 hot senders", "1 hot sender")
CORES = (2, 4, 8, 16, 32)
TICK = os.sysconf("SC_CLK_TCK")


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


def _workers_cpu(pool: ProcessPoolExecutor) -> float:
    """CPU seconds the pool's processes have used (user and system, from /proc)."""
    total = 0
    for pid in list(pool._processes):  # the pool names its processes nowhere else
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{statistics.median(ordered):.2f} ({ordered[0]:.2f}-{ordered[-1]:.2f})"


def _mean_and_error(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {2 * statistics.stdev(values) / len(values) ** 0.5:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="processes in the pool")
    parser.add_argument("--rounds", type=int, default=7, help="runs of each executor per level (medians)")
    parser.add_argument(
        "--levels",
        default=",".join(LEVELS),
        help="contention levels to run, comma-separated (more rounds of fewer levels: finer ratios)",
    )
    options = parser.parse_args()
    levels = [level.strip() for level in options.levels.split(",") if level.strip()]
    unknown = [level for level in levels if level not in LEVELS]
    if unknown or not levels:
        parser.error(f"no contention level {', '.join(unknown) or '(none given)'}: {', '.join(LEVELS)}")
    sys.setswitchinterval(0.001)  # as `ape run sequencer` does: see the docstring
    console = Console(width=175)
    n = options.txs

    with Progress(console=console, transient=True) as progress:
        progress.add_task(f"Signing {len(levels) * n:,} transactions", total=None)
        senders = _keys(n)
        distinct = [address for _, address in _keys(2 * n)[n:]]
        shapes = {
            "none": (senders, distinct),
            "10 hot": (senders, distinct[:10]),
            "1 hot": (senders, distinct[:1]),
            "10 hot senders": (senders[:10], distinct),
            "1 hot sender": (senders[:1], distinct),
        }
        blocks = {level: _block(*shapes[level], n) for level in levels}
        deposits: list = [Deposit(i, a, TOKEN, 11 * n) for i, (_, a) in enumerate(senders)]

    rows = []
    with tempfile.TemporaryDirectory() as directory, worker_pool(options.workers) as pool:
        store = StateStore(directory)
        genesis = apply_block(store.state_at(), CTX, deposits).state
        store.commit(0, genesis)
        expected_of = {level: apply_block(genesis, CTX, txs) for level, txs in blocks.items()}
        store.discard()
        run_block(genesis, CTX, blocks[levels[0]][:2_000], "processes", pool=pool, store=store)  # start them

        def run(executor: str, txs: list) -> tuple[float, object]:
            store.discard()
            started = time.perf_counter()
            if executor == "single":
                executed = run_block(genesis, CTX, txs, "sequential")
            else:
                kind = "sequential" if executor == "pooled" else "processes"
                speculation = "always" if executor == "speculative" else "auto"
                executed = run_block(
                    genesis,
                    CTX,
                    txs,
                    kind,
                    pool=pool,
                    store=store,
                    speculation=speculation,  # type: ignore[arg-type]
                )
            return time.perf_counter() - started, executed

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("Running blocks", total=len(blocks) * options.rounds)
            for level, txs in blocks.items():
                expected = expected_of[level]
                seconds: dict[str, list[float]] = {name: [] for name in EXECUTORS}
                serial, parallel, profiles, auto = [], [], [], []
                for round_ in range(options.rounds):
                    for name in EXECUTORS if round_ % 2 == 0 else EXECUTORS[::-1]:
                        cpu, workers = time.process_time(), _workers_cpu(pool)
                        took, executed = run(name, txs)
                        if (executed.state.root, executed.statuses) != (
                            expected.state.root,
                            expected.statuses,
                        ):
                            raise SystemExit(f"{name} diverged from stf.apply_block at {level}")
                        seconds[name].append(took)
                        if name == "processes":
                            auto.append(executed.profile)
                        if name == "speculative":
                            serial.append(time.process_time() - cpu)
                            parallel.append(_workers_cpu(pool) - workers)
                            profiles.append(executed.profile)
                    progress.advance(task)
                single = statistics.median(seconds["single"])
                s, p = statistics.median(serial) / n, statistics.median(parallel) / n
                rows.append(
                    {
                        "contention": level,
                        "tps": {name: n / statistics.median(t) for name, t in seconds.items()},
                        "processes_over_pooled": [
                            a / b for a, b in zip(seconds["pooled"], seconds["processes"], strict=True)
                        ],
                        "processes_over_single": [
                            a / b for a, b in zip(seconds["single"], seconds["processes"], strict=True)
                        ],
                        "pooled_over_single": [
                            a / b for a, b in zip(seconds["single"], seconds["pooled"], strict=True)
                        ],
                        "profile_ms": {
                            part: 1_000 * statistics.median(getattr(q, part) for q in profiles)
                            for part in ("send", "wait", "validate", "merge", "execute", "root")
                        },
                        "aborted_chunks": profiles[-1].aborted_chunks,
                        "reexecuted": profiles[-1].reexecuted,
                        "speculated_chunks_auto": statistics.median(q.speculated_chunks for q in auto),
                        "predicted_conflicts_auto": statistics.median(q.predicted_conflicts for q in auto),
                        "serial_us_per_tx": 1e6 * s,
                        "parallel_us_per_tx": 1e6 * p,
                        "single_us_per_tx": 1e6 * single / n,
                        "amdahl": {cores: single / n / (s + p / cores) for cores in CORES},
                    }
                )
        store.close()

    table = Table(
        title=f"Blocks of {n:,} transfers: tx/s, and ratios as median (min-max) of {options.rounds} rounds"
    )
    for column in (
        "contention",
        "single tx/s",
        "pooled tx/s",
        "processes tx/s",
        "speculative tx/s",
        "processes / pooled",
        "processes / single",
        "pooled / single",
        "chunks in workers / kept",
        "speculative: re-executed",
    ):
        table.add_column(column, justify="left" if column == "contention" else "right")
    for row in rows:
        tps = row["tps"]
        table.add_row(
            row["contention"],
            *(f"{tps[name]:,.0f}" for name in EXECUTORS),
            _spread(row["processes_over_pooled"]),
            _spread(row["processes_over_single"]),
            _spread(row["pooled_over_single"]),
            f"{row['speculated_chunks_auto']:.0f} / {row['predicted_conflicts_auto']:.0f}",
            f"{row['reexecuted']:,} ({row['aborted_chunks']} aborted)",
        )
    console.print(table)

    profile = Table(
        title="Every chunk executed in the workers (speculative): the parent's time (ms per block), "
        "and the projection past 2 cores"
    )
    for column in (
        "contention",
        "send",
        "wait",
        "validate",
        "merge",
        "execute",
        "root",
        "serial µs/tx",
        "parallel µs/tx",
        *(f"{cores} cores" for cores in CORES),
    ):
        profile.add_column(column, justify="left" if column == "contention" else "right")
    for row in rows:
        parts = row["profile_ms"]
        profile.add_row(
            row["contention"],
            *(f"{parts[part]:.0f}" for part in ("send", "wait", "validate", "merge", "execute", "root")),
            f"{row['serial_us_per_tx']:.1f}",
            f"{row['parallel_us_per_tx']:.1f}",
            *(f"{row['amdahl'][cores]:.1f} x" for cores in CORES),
        )
    console.print(profile)

    # The round-by-round ratios scatter by several percent on a shared VM: their mean and its
    # standard error say how far a median from 1.0 is more than that noise.
    console.print(
        "processes / pooled, mean ± 2 standard errors of the rounds' ratios: "
        + "; ".join(f"{row['contention']} {_mean_and_error(row['processes_over_pooled'])}" for row in rows)
    )
    ratio = {row["contention"]: statistics.median(row["processes_over_pooled"]) for row in rows}
    goals = [
        f"processes >= 1.0 x pooled at every level: {'met' if min(ratio.values()) >= 1.0 else 'NOT met'} "
        f"(lowest {min(ratio.values()):.2f} x, {min(ratio, key=ratio.get)})"
    ]
    free = next((row for row in rows if row["contention"] == "none"), None)
    if free is not None:
        limit = statistics.median(free["processes_over_single"]) / 2
        at16 = free["amdahl"][16]
        goals.append(
            f"no contention >= 95 % of the 2-core limit: {'met' if limit >= 0.95 else 'NOT met'} ({100 * limit:.0f} %)"
        )
        goals.append(f"projected >= 6 x at 16 cores: {'met' if at16 >= 6 else 'NOT met'} ({at16:.1f} x)")
    console.print("Goals: " + "; ".join(goals))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps({"txs": n, "workers": options.workers, "rounds": options.rounds, "rows": rows}, indent=2)
        + "\n"
    )
    console.print(f"JSON report: {REPORT}")


if __name__ == "__main__":
    main()
