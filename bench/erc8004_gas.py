"""Gas of the ERC-8004 registries' write calls, against the reference implementation 2.0.0.

Deploys IdentityRegistry, ReputationRegistry and ValidationRegistry on a fresh local anvil chain
(ape-foundry starts and stops it), sends each write call once from the test accounts and records
its gasUsed: the whole transaction, the 21k base included. The inputs follow those of the reference
measurement in shared/reference/erc8004.md section 6, the team's notes (a 66-byte URI for register(uri),
a 32-byte value for setMetadata, ...); each row's inputs are also written to the JSON report.

Prints a table (ours, reference 2.0.0, ratio, verdict) and how many of the issue's goal operations
cost at most the reference; writes the same figures to reports/bench/erc8004_gas.json. It reports,
it does not assert: the exit code is 0 unless something crashes.

Run from the repository root (the Makefile's `bench` target does exactly this):

    python bench/erc8004_gas.py
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ape import accounts, chain, networks
from ape.api import ReceiptAPI
from ape.logging import logger
from eth_account import Account
from eth_utils import keccak
from rich.console import Console
from rich.table import Table

from offchain.identity.registries import Erc8004

NETWORK = "ethereum:local:foundry"
REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "erc8004_gas.json"
REFERENCE_NOTE = (
    "Reference: ERC-8004 contracts 2.0.0 (solc 0.8.24, viaIR, 200 runs) measured on py-evm (PragueVM) "
    "through an ERC-1967 proxy (shared/reference/erc8004.md section 6, the team's notes); ours: this repo's "
    "contracts on anvil, no proxy. Both are gasUsed including the 21k base."
)

# Inputs close to the reference run's: a 66-byte ipfs:// URI, 32-byte metadata value, CIDv0 URIs.
AGENT_URI = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
NEW_AGENT_URI = "ipfs://bafybeihkoviema7g3gxyt6la7vd5ho32ictqbilu3wnlo3rs7ewhnp7lly"
FEEDBACK_URI = "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
RESPONSE_URI = "ipfs://QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
REQUEST_URI = "ipfs://QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco"
VALIDATION_URI = "ipfs://QmZTR5bcpQD7cFgTorqxZDYaew1Wqgfbd2ud9QqGPAkK2V"
ENDPOINT = "https://agent.example/api/v1"
METADATA_VALUE = keccak(b"agent-l2 metadata value")  # 32 bytes
REGISTER_METADATA = [("name", b"agent-l2"), ("version", b"1.0.0")]

# (key, operation, reference gas of contracts 2.0.0 or None, in the goal set)
OPERATIONS: tuple[tuple[str, str, int | None, bool], ...] = (
    ("register", "register()", 123_983, False),
    ("register_uri", "register(uri), 66-byte URI", 183_552, True),
    ("register_metadata", "register(uri, 2 metadata)", 243_173, False),
    ("set_agent_uri", "setAgentURI", 49_974, False),
    ("set_metadata", "setMetadata, 32-byte value", 79_964, True),
    ("set_agent_wallet", "setAgentWallet, EOA proof", 50_404, False),
    ("feedback_first", "giveFeedback, new client, all", 213_912, True),
    ("feedback_minimal", "giveFeedback, new client, min", 152_805, False),
    ("feedback_repeat", "giveFeedback, repeat client", 132_092, True),
    ("revoke_feedback", "revokeFeedback", 36_244, True),
    ("append_response", "appendResponse", 125_407, False),
    ("validation_request", "validationRequest", 209_243, True),
    ("validation_response", "validationResponse, first", 131_454, True),
    ("validation_update", "validationResponse, update", 54_422, False),
)


@dataclass(frozen=True)
class Actors:
    owner: Any
    client: Any
    other_client: Any
    validator: Any
    wallet: Any


@dataclass(frozen=True)
class Measure:
    gas: int
    inputs: str


@dataclass(frozen=True)
class Row:
    key: str
    operation: str
    gas: int
    reference: int | None
    ratio: float | None
    ok: bool | None
    goal: bool
    inputs: str


def _gas(receipt: ReceiptAPI, inputs: str) -> Measure:
    return Measure(gas=int(receipt.gas_used), inputs=inputs)


def _agent_id(reg: Erc8004, receipt: ReceiptAPI) -> int:
    return int(next(iter(receipt.decode_logs(reg.identity.Registered))).agentId)


def _identity(reg: Erc8004, who: Actors) -> tuple[dict[str, Measure], int]:
    """Registration and identity updates, all by one owner; returns the figures and an agentId."""
    identity, owner = reg.identity, who.owner
    out = {"register": _gas(identity.register(sender=owner), "no URI; owner's first agent")}
    receipt = identity.register(AGENT_URI, sender=owner)
    out["register_uri"] = _gas(receipt, f"{len(AGENT_URI)}-byte ipfs:// URI")
    agent_id = _agent_id(reg, receipt)
    receipt = identity.register(AGENT_URI, REGISTER_METADATA, sender=owner)
    out["register_metadata"] = _gas(receipt, "66-byte URI; 2 entries, short keys and values")
    receipt = identity.setAgentURI(agent_id, NEW_AGENT_URI, sender=owner)
    out["set_agent_uri"] = _gas(receipt, "66-byte URI replacing a 66-byte URI")
    receipt = identity.setMetadata(agent_id, "digest", METADATA_VALUE, sender=owner)
    out["set_metadata"] = _gas(receipt, "new key 'digest', 32-byte value")
    out["set_agent_wallet"] = _gas(_set_wallet(reg, who, agent_id), "EOA wallet, ECDSA proof, 120 s deadline")
    return out, agent_id


def _set_wallet(reg: Erc8004, who: Actors, agent_id: int) -> ReceiptAPI:
    deadline = chain.pending_timestamp + 120
    digest = reg.agent_wallet_digest(agent_id, who.wallet.address, who.owner.address, deadline)
    signature = bytes(Account.unsafe_sign_hash(digest, who.wallet.private_key).signature)
    return reg.identity.setAgentWallet(agent_id, who.wallet.address, deadline, signature, sender=who.owner)


def _reputation(reg: Erc8004, who: Actors) -> dict[str, Measure]:
    """Feedback on a fresh agent: first client with all fields, a second client, then repeats."""
    reputation = reg.reputation
    agent_id = _agent_id(reg, reg.identity.register(AGENT_URI, sender=who.owner))
    full = (95, 0, "starred", "uptime", ENDPOINT, FEEDBACK_URI, keccak(b"feedback file"))
    minimal = (80, 0, "", "", "", "", b"\x00" * 32)
    out = {
        "feedback_first": _gas(
            reputation.giveFeedback(agent_id, *full, sender=who.client),
            "agent's first client; 2 short tags, endpoint, 53-byte feedbackURI, hash",
        ),
        "feedback_minimal": _gas(
            reputation.giveFeedback(agent_id, *minimal, sender=who.other_client),
            "agent's second client; value only",
        ),
        "feedback_repeat": _gas(
            reputation.giveFeedback(agent_id, *full, sender=who.client),
            "first client again, same fields as its first feedback",
        ),
    }
    receipt = reputation.revokeFeedback(agent_id, 2, sender=who.client)
    out["revoke_feedback"] = _gas(receipt, "client's latest entry")
    receipt = reputation.appendResponse(
        agent_id, who.client.address, 1, RESPONSE_URI, keccak(b"response"), sender=who.owner
    )
    out["append_response"] = _gas(receipt, "owner's first response; 53-byte URI, hash")
    return out


def _validation(reg: Erc8004, who: Actors, agent_id: int) -> dict[str, Measure]:
    """A request to an outside validator, its first answer, then a changed answer."""
    validation, validator = reg.validation, who.validator
    request_hash = validation.computeRequestHash(validator.address, agent_id, REQUEST_URI)
    receipt = validation.validationRequest(
        validator.address, agent_id, REQUEST_URI, request_hash, sender=who.owner
    )
    out = {"validation_request": _gas(receipt, "53-byte request URI; validator's first request")}
    answer = (VALIDATION_URI, keccak(b"evidence"), "tee")
    receipt = validation.validationResponse(request_hash, 100, *answer, sender=validator)
    out["validation_response"] = _gas(receipt, "score 100, 53-byte URI, hash, 3-byte tag")
    receipt = validation.validationResponse(request_hash, 60, *answer, sender=validator)
    out["validation_update"] = _gas(receipt, "score 60, same URI, hash and tag")
    return out


def measure() -> dict[str, Measure]:
    """Every operation's gas on a fresh anvil chain."""
    with networks.parse_network_choice(NETWORK):
        test = accounts.test_accounts
        reg = Erc8004.deploy(test[0])
        who = Actors(owner=test[1], client=test[2], other_client=test[3], validator=test[4], wallet=test[5])
        figures, agent_id = _identity(reg, who)
        figures |= _reputation(reg, who)
        figures |= _validation(reg, who, agent_id)
    return figures


def rows(figures: dict[str, Measure]) -> list[Row]:
    out = []
    for key, operation, reference, goal in OPERATIONS:
        gas = figures[key].gas
        ratio = round(gas / reference, 4) if reference else None
        ok = None if reference is None else gas <= reference
        out.append(Row(key, operation, gas, reference, ratio, ok, goal, figures[key].inputs))
    return out


def _fmt(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _verdict(row: Row) -> str:
    if row.ok is None:
        return "—"
    return "[green]ok[/green]" if row.ok else "[red]over[/red]"


def table(results: list[Row]) -> Table:
    caption = f"* in the issue's goal set; ok when ours / ref <= 1.00.\n{REFERENCE_NOTE}"
    out = Table(title="ERC-8004 registries: gasUsed per call", caption=caption, caption_justify="left")
    out.add_column("operation")
    for name in ("ours", "ref 2.0.0", "ours/ref"):
        out.add_column(name, justify="right")
    out.add_column("verdict", justify="center")
    for row in results:
        name = f"{row.operation} *" if row.goal else row.operation
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
        out.add_row(name, _fmt(row.gas), _fmt(row.reference), ratio, _verdict(row))
    return out


def summary(results: list[Row]) -> tuple[int, int]:
    """(goal operations at most the reference, goal operations)."""
    goal = [row for row in results if row.goal]
    return sum(1 for row in goal if row.ok), len(goal)


def write_report(results: list[Row], path: Path = REPORT) -> None:
    met, total = summary(results)
    report = {
        "network": NETWORK,
        "reference": REFERENCE_NOTE,
        "goal": {"met": met, "total": total},
        "results": [asdict(row) for row in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    logger.set_level("WARNING")
    results = rows(measure())
    console = Console()
    console.print(table(results))
    met, total = summary(results)
    console.print(f"Goal operations (*) at most the reference 2.0.0: {met}/{total}")
    write_report(results)
    console.print(f"JSON report: {REPORT}")


if __name__ == "__main__":
    main()
