"""Disputes between processes, on one anvil. A lying `ape run sequencer --fault wrong-root`
defends its story move by move; `ape run watchtower` is killed with -9 in the middle of the game
and restarted on nothing but L1, goes on from where the game stands and wins it with the
one-step proof. A liar started with `--silent-after 1` stops answering after its first move and
loses on time. Either way the users' transactions stay in the batch and the right root is
proposed."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from offchain.hashing import keccak
from offchain.l2.codec import Transfer, encode
from offchain.l2.signing import sign, transfer_digest
from tests.integration.processes import CHAIN_ID, Service, free_port, rollup_on_anvil, rpc, wait_until
from tests.integration.test_scripts import _ape_run
from tests.integration.test_sequencer_process import _get

ETH = "0x" + "00" * 20
USER_KEY = keccak(b"dispute process user")
USER = Account.from_key(USER_KEY).address
TRANSFERS = 40  # with the deposit, 41 transactions: two rounds of dissection before the proof


def _transfer(inbox: str, nonce: int) -> bytes:
    fields = (USER, "0x" + "33" * 20, ETH, 10**12, 10**9, nonce)
    digest = transfer_digest(Transfer(*fields, b"\x00" * 65), CHAIN_ID, inbox)
    return encode(Transfer(*fields, sign(USER_KEY, digest)))


@pytest.fixture
def liar_batch(tmp_path: Path):
    """A lying sequencer process that posted one batch of a deposit and 40 transfers; yields the
    network, the liar and the transfers' hashes."""
    api_port = free_port()
    stack = ExitStack()
    processes: list[Service] = []

    def start(*args: str) -> tuple[str, Service, list[str]]:
        network = stack.enter_context(rollup_on_anvil(tmp_path))
        # The liar posts only at its slot's last block, so that the deposit and every transfer
        # land in one batch.
        liar = Service(CHAIN_ID,
            "sequencer", network, tmp_path, "--join", "--port", str(api_port), "--fault", "wrong-root",
            *args, AGENTL2_SEQUENCER_POST_INTERVAL="3600",
        )  # fmt: skip
        processes.append(liar)
        api = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: _get(f"{api}/v1/sequencer") is not None, 120, "the liar's API")
        rpc(network, "anvil_mine", [80])  # eligible two epochs after joining
        deposit = ("rollup", "deposit", "--chain-id", str(CHAIN_ID), "--to", USER, "--amount", "1")
        done = _ape_run(*deposit, "--network", network, deployments=tmp_path)
        assert done.returncode == 0, done.stderr + done.stdout
        inbox = _get(f"{api}/v1/sequencer").json()["inbox"]
        hashes = []
        for nonce in range(TRANSFERS):
            record = "0x" + _transfer(inbox, nonce).hex()
            answer = httpx.post(f"{api}/v1/transactions", json={"record": record}, timeout=10)
            assert answer.status_code == 200, answer.text
            hashes.append(answer.json()["tx_hash"])
        receipt = f"{api}/v1/transactions/{hashes[-1]}"

        def posted() -> bool:
            rpc(network, "anvil_mine", [1])  # on to the slot's last block
            return _get(receipt).json()["stage"] == "posted"

        wait_until(posted, 60, "the liar's batch")
        assert all(_get(f"{api}/v1/transactions/{h}").json()["batch"] == 0 for h in hashes)
        return network, liar, hashes

    try:
        yield start, processes
    finally:
        for process in processes:
            if process.process.poll() is None:
                process.process.kill()
        stack.close()


def _stops_cleanly(*processes: Service) -> None:
    for process in processes:
        process.process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.process.wait(timeout=60) == 0, process.output()


def test_a_watchtower_killed_mid_dispute__restarts_and_wins_against_a_defending_liar(tmp_path, liar_batch):
    start, processes = liar_batch
    network, liar, _ = start()
    node_port, data = free_port(), str(tmp_path / "node")
    node = Service(CHAIN_ID, "node", network, tmp_path, "--data", data, "--port", str(node_port))
    first = Service(CHAIN_ID, "watchtower", network, tmp_path)
    processes += [node, first]
    wait_until(lambda: first.said("opened game 0"), 90, "the dispute")
    wait_until(lambda: first.said("game 0: picked part"), 60, "the watchtower's first pick")
    wait_until(lambda: node.said("claim 0: root 0x"), 60, "the node's report of the lie")
    for process in (first, node):  # -9, in the middle of the game
        process.process.kill()
        process.process.wait(timeout=10)
    assert not first.said("one-step proof")
    node = Service(CHAIN_ID, "node", network, tmp_path, "--data", data, "--port", str(node_port))
    processes.append(node)

    second = Service(CHAIN_ID, "watchtower", network, tmp_path)
    processes.append(second)
    try:
        wait_until(lambda: second.said("proposed the derived root"), 180, "the right root")
    except AssertionError:
        raise AssertionError(
            f"first:\n{first.output()}\nsecond:\n{second.output()}\nliar:\n{liar.output()}"
        ) from None
    assert not second.said("opened game")  # it went on with the game it had opened
    assert second.said("game 0: picked part") and second.said("CHALLENGER_WON")
    assert liar.said("game 0: revealed the roots of transactions [0, 41)")  # the liar defended
    assert sum("revealed the roots" in line for line in liar.lines) == 2
    # The restarted node went on from its folder and holds the root the watchtower proposed.
    node_api = f"http://127.0.0.1:{node_port}"
    wait_until(lambda: _get(f"{node_api}/v1/status") is not None, 60, "the restarted node")
    claim = next(line for line in second.lines if "proposed the derived root" in line)
    derived = _get(f"{node_api}/v1/batches/0/root").json()["root"]
    assert derived[2:14] == claim.rsplit("0x", 1)[1].strip()[:12]
    _stops_cleanly(liar, second, node)


def test_a_liar_that_falls_silent_mid_dispute__loses_on_time(tmp_path, liar_batch):
    start, processes = liar_batch
    network, liar, _ = start("--silent-after", "1")
    watchtower = Service(CHAIN_ID, "watchtower", network, tmp_path)
    processes.append(watchtower)
    wait_until(lambda: watchtower.said("game 0: picked part"), 120, "the watchtower's first pick")
    assert liar.said("game 0: revealed the roots of transactions [0, 41)")
    rpc(network, "evm_increaseTime", [400])  # past the liar's 300 s clock, with no answer
    rpc(network, "anvil_mine", [1])
    try:
        wait_until(lambda: watchtower.said("proposed the derived root"), 120, "the right root")
    except AssertionError:
        raise AssertionError(f"watchtower:\n{watchtower.output()}\nliar:\n{liar.output()}") from None
    assert sum("revealed the roots" in line for line in liar.lines) == 1  # silent after one move
    assert watchtower.said("game 0: a side ran out of time: CHALLENGER_WON")
    assert not watchtower.said("one-step proof")
    _stops_cleanly(liar, watchtower)
