"""Writes a `RunReport` as report.json, report.md and three PNG charts (matplotlib, no display)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt

from offchain.report.model import PathFigures, RunReport

USD = 10**6


def write(report: RunReport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = report.model_dump(mode="json")
    if report.conservation is not None:
        data["conservation"]["holds"] = report.conservation.holds
    paths = [folder / "report.json", folder / "report.md"]
    paths[0].write_text(json.dumps(data, indent=2) + "\n")
    charts = [_paths_chart(report, folder / "payments.png"), _agents_chart(report, folder / "agents.png")]
    if report.dispute is not None:
        charts.append(_dispute_chart(report, folder / "dispute.png"))
    paths[1].write_text(markdown(report, [c.name for c in charts]))
    return paths + charts


def markdown(report: RunReport, charts: list[str]) -> str:
    lines = [
        "# Agent L2: the main job's report",
        "",
        f"Run in {report.seconds:.0f} s with {_options(report)}. Every figure below was measured in this run.",
        "",
        f"**The founder's decision:** {report.decision}.",
        "",
        "## x402 payments: L1 and the L2 side by side",
        "",
        "| | L1 (`transferWithAuthorization` per payment) | L2 (rollup, soft confirmation) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    l1, l2 = report.l1, report.l2
    rows = [
        ("payments", lambda f: f"{f.payments}", None),
        (
            "L1 gas per payment",
            lambda f: f"{f.gas_per_payment:,.0f}",
            lambda a, b: a.gas_per_payment / max(b.gas_per_payment, 1e-9),
        ),
        (
            "payments per second",
            lambda f: f"{f.per_second:.1f}",
            lambda a, b: b.per_second / max(a.per_second, 1e-9),
        ),
        (
            "latency p50 (ms)",
            lambda f: f"{f.latency_ms['p50']:.1f}",
            lambda a, b: a.latency_ms["p50"] / max(b.latency_ms["p50"], 1e-9),
        ),
        ("latency p95 (ms)", lambda f: f"{f.latency_ms['p95']:.1f}", None),
        ("latency p99 (ms)", lambda f: f"{f.latency_ms['p99']:.1f}", None),
        (
            "confirmation p50 (ms)",
            lambda f: f"{f.confirmation_ms.get('p50', 0):.1f}",
            lambda a, b: a.confirmation_ms.get("p50", 0) / max(b.confirmation_ms.get("p50", 0), 1e-9),
        ),
        ("confirmation p95 (ms)", lambda f: f"{f.confirmation_ms.get('p95', 0):.1f}", None),
    ]
    for name, cell, ratio in rows:
        right = cell(l2) if l2 else "-"
        factor = f"{ratio(l1, l2):.1f} x" if (ratio and l2) else ""
        lines.append(f"| {name} | {cell(l1)} | {right} | {factor} |")
    if l2:
        lines += [
            "",
            f"The L2 payments travelled in {l2.batches} batches; their L1 gas is the batches' own "
            f"(`appendBatch` with the claimed root), {l2.l1_gas:,} gas in all. Latency is a consumer's "
            "request to its paid response (402, sign, verify, settle, the answer), from the same threads "
            "on both networks; confirmation is the facilitator's settle alone (on L1 until the receipt, "
            "on the L2 until the sequencer's signed soft confirmation). All services share one Python "
            "process here, so the L2's figures include its operators' rounds competing for the GIL.",
        ]
    if report.dispute:
        d = report.dispute
        lines += [
            "",
            "## The dispute",
            "",
            f"{d.liar} lied (`{d.fault}`) in its claim of batch {d.claim_index}. Game {d.game_id}: "
            f"{d.outcome} in {len(d.moves)} moves and {d.gas:,} gas; {d.slashed / USD:.2f} AUSD of stake "
            f"slashed; {d.reproposed} right roots claimed again by the watchtower.",
            "",
            "| block | move | by | gas |",
            "| ---: | --- | --- | ---: |",
            *(f"| {m.block} | {m.event} | {m.by} | {m.gas:,} |" for m in d.moves),
        ]
    lines += [
        "",
        "## The agents",
        "",
        "| agent | role | agentId | earned (AUSD) | stake at the end | reputation |",
    ]
    lines.append("| --- | --- | ---: | ---: | ---: | --- |")
    for a in report.agents:
        stake = f"{a.stake.get('end', 0) / USD:.0f}" if a.stake else "-"
        last = a.reputation[-1] if a.reputation else None
        rep = f"{last.mean:.1f} ({last.ratings})" if last and last.ratings else "-"
        lines.append(f"| {a.name} | {a.role} | {a.agent_id} | {a.earned / USD:.2f} | {stake} | {rep} |")
    if report.conservation:
        c = report.conservation
        lines += [
            "",
            "## Checks",
            "",
            f"- Deposits {c.deposits / USD:.2f} AUSD = L2 balances {c.l2_balances / USD:.2f} + withdrawals "
            f"{c.withdrawals / USD:.2f}: {'holds' if c.holds else 'DOES NOT HOLD'}.",
            f"- Every payment settled once: {'yes' if report.payments_settled_once else 'NO'}"
            + (
                f" ({report.payments_resent} dropped with a leader's slot and sent again by the facilitator)."
                if report.payments_resent
                else "."
            ),
            f"- Batches posted {report.batches_posted}, final {report.batches_final}; the replica node "
            f"agrees with every claim: {'yes' if report.node_agrees else 'NO'}.",
        ]
    if report.errors:
        lines += ["", "Rounds that failed and were retried:", *(f"- `{e}`" for e in report.errors)]
    lines += ["", "## Charts", "", *(f"![{c}]({c})" for c in charts), ""]
    return "\n".join(lines)


def _options(report: RunReport) -> str:
    return ", ".join(f"{k} {'none' if v is None else v}" for k, v in report.options.items())


def _paths_chart(report: RunReport, path: Path) -> Path:
    paths: list[PathFigures] = [report.l1] + ([report.l2] if report.l2 else [])
    names = ["L1", "L2"][: len(paths)]
    colors = ["#8c8c8c", "#2a7ab0"][: len(paths)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = [
        ("L1 gas per payment", [p.gas_per_payment for p in paths]),
        ("payments per second", [p.per_second for p in paths]),
        ("confirmation p50 (ms)", [p.confirmation_ms.get("p50", 0.0) for p in paths]),
    ]
    for ax, (title, values) in zip(axes, panels, strict=True):
        bars = ax.bar(names, values, color=colors)
        ax.bar_label(bars, labels=[f"{v:,.1f}" for v in values])
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle("x402 payments, L1 and the L2, measured in one run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _dispute_chart(report: RunReport, path: Path) -> Path:
    assert report.dispute is not None
    moves = report.dispute.moves
    fig, ax = plt.subplots(figsize=(10, 3.6))
    colors = ["#c0392b" if m.by == report.dispute.liar else "#2a7ab0" for m in moves]
    ax.bar(range(len(moves)), [m.gas for m in moves], color=colors)
    ax.set_xticks(range(len(moves)), [f"{m.event}\n{m.by}" for m in moves], fontsize=7)
    ax.set_ylabel("gas")
    ax.set_title(f"The dispute's moves ({report.dispute.outcome}, {report.dispute.gas:,} gas)")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _agents_chart(report: RunReport, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    agents = report.agents
    axes[0].barh([a.name for a in agents], [a.earned / 10**6 for a in agents], color="#2a7ab0")
    axes[0].set_title("earned (AUSD)")
    for a in agents:
        if a.stake:
            axes[1].plot(list(a.stake), [v / 10**6 for v in a.stake.values()], marker="o", label=a.name)
        if any(p.ratings for p in a.reputation):  # a phase before its first rating has no mean
            means = [p.mean if p.ratings else float("nan") for p in a.reputation]
            axes[2].plot([p.phase for p in a.reputation], means, marker="o", label=a.name)
    axes[1].set_title("stake in the sequencer set (AUSD)")
    axes[2].set_title("mean ERC-8004 rating")
    for ax in axes[1:]:
        ax.tick_params(axis="x", labelsize=7, rotation=20)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
