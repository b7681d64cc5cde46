"""L1 gas per L2 transaction in full batches, against a direct EIP-3009 payment on L1.

On a fresh anvil chain (ape-foundry starts and stops it) this spins up a rollup through the
RollupFactory, stakes one operator, and appends full batches made by the Python encoder: 2,048
deposits (queued first), 780 transfers, 680 authorizations (x402's kind) and a mixed batch. Each
batch's gasUsed per L2 transaction is printed next to a direct `transferWithAuthorization` on
AgentUSD to a recipient that already holds tokens, measured in the same run, with their ratio.

The current fork (anvil's default, after Prague) charges calldata at least 10 gas per zero byte
and 40 per nonzero byte (EIP-7623): `floor = 21,000 + 10 * (zeros + 4 * nonzeros)`. A batch can
cost no less, so the best ratio a calldata batch can reach is `direct / (floor / n)`: the
*limit*. The table prints each batch's ratio, its limit, the share of the limit reached (goal:
at least 95 % for transfers and authorizations, i.e. the inbox's execution hidden under the
floor) and how far its gasUsed is above the floor. Also printed: a deposit, a queued record, a
withdrawal paid on L1, and `createRollup`.

Run from the repository root:  python bench/rollup_gas.py
Writes reports/bench/rollup_gas.json. It reports; it does not assert.
"""

from __future__ import annotations

import json
from pathlib import Path

from ape import accounts, chain, networks, project
from ape.logging import logger
from eth_account import Account
from rich.console import Console
from rich.table import Table

from offchain.chain.eip712 import Eip712Domain
from offchain.hashing import keccak
from offchain.identity.registries import Erc8004
from offchain.l2.batch import Batch, Block, execute_batch
from offchain.l2.codec import Deposit, Transfer, TransferWithAuthorization, Tx, Withdraw, decode, encode
from offchain.l2.signing import authorization_digest, sign, transfer_digest, withdraw_digest
from offchain.l2.stf import DEPOSITS_KEY, State, Status, withdrawal_key
from offchain.rollup.dispute import deploy_implementation
from offchain.rollup.factory import RollupFactory
from offchain.rollup.inbox import Withdrawal
from offchain.rollup.params import RollupParams
from offchain.x402.eip3009 import authorize_transfer

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench" / "rollup_gas.json"
ETH = "0x" + "00" * 20
CHAIN_ID = 9_001
KEYS = [keccak(b"bench user" + i.to_bytes(2, "big")) for i in range(64)]
ADDRS = [Account.from_key(k).address for k in KEYS]


def floor_gas(calldata: bytes) -> int:
    """EIP-7623's least gasUsed of a transaction carrying `calldata`."""
    zeros = calldata.count(0)
    return 21_000 + 10 * (zeros + 4 * (len(calldata) - zeros))


def _transfers(inbox: str, n: int) -> list[Tx]:
    out: list[Tx] = []
    for i in range(n):
        k = i % len(KEYS)
        fields = (ADDRS[k], ADDRS[(k + 1) % len(KEYS)], ETH, 10**15 + i, 10**12, i // len(KEYS))
        unsigned = Transfer(*fields, b"\0" * 65)
        out.append(Transfer(*fields, sign(KEYS[k], transfer_digest(unsigned, CHAIN_ID, inbox))))
    return out


def _authorizations(n: int, now: int) -> list[Tx]:
    out: list[Tx] = []
    for i in range(n):
        k = i % len(KEYS)
        nonce = keccak(b"auth" + i.to_bytes(4, "big"))
        fields = (ADDRS[k], ADDRS[(k + 7) % len(KEYS)], ETH, 10_000 + i, now - 60, now + 3_600, nonce)
        unsigned = TransferWithAuthorization(*fields, b"\0" * 65)
        out.append(
            TransferWithAuthorization(*fields, sign(KEYS[k], authorization_digest(unsigned, CHAIN_ID)))
        )
    return out


def _withdrawals(inbox: str, n: int, recipient: str) -> list[Tx]:
    out: list[Tx] = []
    for i in range(n):
        k = i % len(KEYS)
        fields = (ADDRS[k], ETH, 10**14, 10**12, recipient, 1_000 + i // len(KEYS))
        unsigned = Withdraw(*fields, b"\0" * 65)
        out.append(Withdraw(*fields, sign(KEYS[k], withdraw_digest(unsigned, CHAIN_ID, inbox))))
    return out


def _measure(inbox, sequencer, sequencer_set, txs: list[Tx]) -> dict:
    # The sequencer set records the seeds of epochs begun since its last call; do that first so
    # that the batch's gas is the inbox's own work (a leader posting every slot pays it rarely).
    sequencer_set.currentLeader(sender=sequencer)
    batch = Batch((Block(chain.blocks.head.timestamp, tuple(txs)),))
    data = batch.encode()
    receipt = inbox.contract.appendBatch(data, b"\x01" * 32, sender=sequencer)
    calldata = bytes(chain.provider.web3.eth.get_transaction(receipt.txn_hash)["input"])
    return {"txs": len(txs), "bytes": len(data), "gas": receipt.gas_used, "floor": floor_gas(calldata)}


def main() -> None:
    logger.set_level("WARNING")
    console = Console()
    with networks.parse_network_choice("ethereum:local:foundry"):
        deployer, sequencer, depositor, merchant = (accounts.test_accounts[i] for i in (0, 1, 2, 3))
        registries = Erc8004.deploy(deployer)
        token = deployer.deploy(project.AgentUSD, deployer)

        # Baseline: a direct x402 payment on L1 (transferWithAuthorization to a funded merchant).
        payer = Account.create()
        token.mint(payer.address, 10**12, sender=deployer)
        token.mint(merchant, 1, sender=deployer)
        domain = Eip712Domain.from_eip5267(token.eip712Domain())
        direct = []
        for _ in range(10):
            auth, signature = authorize_transfer(
                "0x" + bytes(payer.key).hex(),
                domain,
                merchant.address,
                10_000,
                valid_before=chain.blocks.head.timestamp + 3_600,
            )
            direct.append(
                token.transferWithAuthorization(*auth.as_args(), signature, sender=deployer).gas_used
            )
        direct_gas = sum(direct) / len(direct)

        game = deploy_implementation(deployer)
        factory = RollupFactory.deploy(deployer, registries.identity.address, str(game.address))
        params = RollupParams(
            chain_id=CHAIN_ID,
            stake_token=str(token.address),
            min_stake=10**6,
            slot_length=4,
            slots_per_epoch=64,
        )
        receipt = factory.contract.createRollup(params.as_tuple(), sender=deployer)
        other = {"createRollup": receipt.gas_used}
        rollup = factory.rollup(CHAIN_ID)
        inbox = rollup.inbox_client()
        sequencer_set = project.SequencerSet.at(rollup.sequencer_set)
        agent = registries.register(sequencer, "data:application/json,{}")
        token.mint(sequencer, 10**6, sender=deployer)
        token.approve(sequencer_set.address, 10**6, sender=sequencer)
        sequencer_set.join(agent, 10**6, sender=sequencer)
        chain.mine(2 * 4 * 64 + 1)

        other["depositETH"] = inbox.contract.depositETH(ADDRS[0], sender=depositor, value=10**18).gas_used
        token.mint(depositor, 10**12, sender=deployer)
        token.approve(inbox.address, 10**12, sender=depositor)
        other["depositERC20"] = inbox.contract.depositERC20(token, ADDRS[1], 10**6, sender=depositor).gas_used
        transfers = _transfers(inbox.address, 780)
        other["enqueueRecord (a transfer)"] = inbox.contract.enqueueRecord(
            encode(transfers[0]), sender=depositor
        ).gas_used
        rows = {}
        # Carry the three queue entries, then queue 2,048 deposits for the deposit batch.
        queued = [decode(e.record) for e in inbox.pending_queue()]
        inbox.append_batch(
            sequencer, Batch((Block(chain.blocks.head.timestamp, tuple(queued)),)), b"\x01" * 32
        )
        with console.status("queueing 2,048 deposits"):
            # Straight to the node (anvil's accounts are unlocked): 2,048 ape round trips are slow.
            web3 = chain.provider.web3
            for i in range(2_048):
                call = inbox.contract.depositETH.as_transaction(
                    ADDRS[i % len(ADDRS)], sender=depositor, value=10**15
                )
                web3.eth.send_transaction(
                    {
                        "from": depositor.address,
                        "to": inbox.address,
                        "value": 10**15,
                        "data": call.data,
                        "gas": 200_000,
                    }
                )
        deposits = [decode(e.record) for e in inbox.pending_queue()]
        assert len(deposits) == 2_048 and all(isinstance(d, Deposit) for d in deposits)
        with console.status("appending batches"):
            rows["2,048 deposits"] = _measure(inbox, sequencer, sequencer_set, deposits)
            rows["780 transfers"] = _measure(inbox, sequencer, sequencer_set, transfers)
            rows["680 authorizations"] = _measure(
                inbox, sequencer, sequencer_set, _authorizations(680, chain.blocks.head.timestamp)
            )
            mixed = (
                transfers[:300]
                + _authorizations(300, chain.blocks.head.timestamp)[:300]
                + _withdrawals(inbox.address, 100, depositor.address)
            )
            rows["mixed: 300 transfers, 300 authorizations, 100 withdrawals"] = _measure(
                inbox, sequencer, sequencer_set, mixed
            )
        other["finalizeWithdrawal (ETH)"] = _withdrawal_gas(
            inbox, sequencer, sequencer_set, depositor, params
        )

    table = Table(
        title=f"L1 gas per L2 transaction (direct transferWithAuthorization: {direct_gas:,.0f} gas)"
    )
    for column in ("batch", "bytes", "gasUsed", "per tx", "ratio", "limit", "of limit", "above floor"):
        table.add_column(column, justify="left" if column == "batch" else "right")
    report = {"direct_transferWithAuthorization": direct_gas, "batches": {}, "operations": other}
    for name, row in rows.items():
        per_tx = row["gas"] / row["txs"]
        ratio, limit = direct_gas / per_tx, direct_gas / (row["floor"] / row["txs"])
        above = row["gas"] / row["floor"] - 1
        report["batches"][name] = {
            **row,
            "per_tx": per_tx,
            "ratio": ratio,
            "limit": limit,
            "of_limit": ratio / limit,
        }
        table.add_row(
            name,
            f"{row['bytes']:,}",
            f"{row['gas']:,}",
            f"{per_tx:,.0f}",
            f"{ratio:.2f} x",
            f"{limit:.2f} x",
            f"{ratio / limit:.1%}",
            f"{above:+.1%}",
        )
    console.print(table)
    ops = Table(title="Other operations (gasUsed, 21k base included)")
    ops.add_column("operation")
    ops.add_column("gasUsed", justify="right")
    for name, gas in other.items():
        ops.add_row(name, f"{gas:,}")
    console.print(ops)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"JSON report: {REPORT}")


def _withdrawal_gas(inbox, sequencer, sequencer_set, depositor, params: RollupParams) -> int:
    """Deposit, withdraw on L2, claim the root, wait out the window, pay the withdrawal on L1."""
    key = KEYS[5]
    account = ADDRS[5]
    inbox.contract.depositETH(account, sender=depositor, value=10**17)
    (entry,) = inbox.pending_queue()
    fields = (account, ETH, 10**16, 0, depositor.address, 0)
    withdraw = Withdraw(
        *fields, sign(key, withdraw_digest(Withdraw(*fields, b"\0" * 65), CHAIN_ID, inbox.address))
    )
    batch = Batch((Block(chain.blocks.head.timestamp, (decode(entry.record), withdraw)),))
    # The batches before carried made-up claims: only this claim's root matters to the proof,
    # so the state is this batch alone over a tree that has counted the earlier deposits.
    deposit = decode(entry.record)
    pre = State().apply({DEPOSITS_KEY: deposit.index.to_bytes(8, "big")})
    state, statuses, _ = execute_batch(pre, batch, CHAIN_ID, inbox.address, sequencer.address)
    assert statuses == [Status.OK, Status.OK], statuses
    sequencer_set.currentLeader(sender=sequencer)
    index = inbox.append_batch(sequencer, batch, state.root)
    chain.mine(1, deltatime=params.challenge_window + 1)
    inbox.finalize(sequencer)
    if not inbox.claim(index).final:
        raise RuntimeError(
            f"claim {index} not final: {inbox.claim(index)} of {inbox.count('finalizedCount')} final"
        )
    proof = state.tree.prove(state.root, withdrawal_key(account, 0)).encode()
    leaf = Withdrawal(account=account, nonce=0, token=ETH, amount=10**16, recipient=depositor.address)
    receipt = inbox.contract.finalizeWithdrawal(
        index, leaf.account, leaf.nonce, leaf.token, leaf.amount, leaf.recipient, proof, sender=depositor
    )
    return receipt.gas_used


if __name__ == "__main__":
    main()
