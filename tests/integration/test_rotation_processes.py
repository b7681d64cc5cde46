"""Three `ape run sequencer` processes take turns on one anvil, as three operators run them: a
client sends its transfers to whichever leads (the others refuse with 503 and name the leader),
each leader builds on what the one before posted, every confirmation ends up posted exactly once,
and `ape run node` started from an empty folder reaches the root each sequencer holds."""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from eth_account import Account

from offchain.hashing import keccak
from offchain.l2.codec import Transfer, encode
from offchain.l2.signing import sign, transfer_digest
from tests.integration.processes import (
    CHAIN_ID,
    OPERATOR,
    OTHER_OPERATORS,
    Service,
    free_port,
    rollup_on_anvil,
    rpc,
    wait_until,
)
from tests.integration.test_scripts import _ape_run
from tests.integration.test_sequencer_process import _get

ETH = "0x" + "00" * 20
USER_KEY = keccak(b"rotation process user")
USER = Account.from_key(USER_KEY).address
OPERATORS = dict(zip((1, 3, 4), (OPERATOR, *OTHER_OPERATORS), strict=True))  # anvil's test accounts
AMOUNT, FEE, DEPOSIT = 10**12, 10**9, 10**18


def _transfer(inbox: str, nonce: int) -> bytes:
    fields = (USER, "0x" + "44" * 20, ETH, AMOUNT, FEE, nonce)
    digest = transfer_digest(Transfer(*fields, b"\x00" * 65), CHAIN_ID, inbox)
    return encode(Transfer(*fields, sign(USER_KEY, digest)))


def test_three_sequencer_processes__take_turns_and_a_node_from_empty_agrees(tmp_path: Path):
    stack = ExitStack()
    services: list[Service] = []
    try:
        network = stack.enter_context(rollup_on_anvil(tmp_path))
        apis: dict[str, str] = {}
        for index, address in OPERATORS.items():
            port = free_port()
            services.append(
                Service(
                    CHAIN_ID,
                    "sequencer",
                    network,
                    tmp_path,
                    "--join",
                    "--test-account",
                    str(index),
                    "--port",
                    str(port),
                    AGENTL2_SEQUENCER_POST_INTERVAL="1",
                    AGENTL2_SEQUENCER_VIEW_TTL="0.05",  # far below the 0.3 s L1 blocks of this test
                )
            )
            apis[address.lower()] = f"http://127.0.0.1:{port}"
        for api in apis.values():
            wait_until(lambda api=api: _get(f"{api}/v1/sequencer") is not None, 120, "the APIs")
        rpc(network, "anvil_mine", [80])  # all three eligible two epochs after joining
        deposit = ("rollup", "deposit", "--chain-id", str(CHAIN_ID), "--to", USER, "--amount", "1")
        done = _ape_run(*deposit, "--network", network, deployments=tmp_path)
        assert done.returncode == 0, done.stderr + done.stdout
        inbox = _get(f"{next(iter(apis.values()))}/v1/sequencer").json()["inbox"]

        # The client: each transfer to the leader of the moment, the next L1 block every 0.3 s.
        confirmed: dict[str, str] = {}  # tx hash -> the API that confirmed it
        leaders: set[str] = set()
        refused_by_other = 0
        leader = next(iter(apis))
        deadline = time.monotonic() + 90
        last_block = 0.0
        while time.monotonic() < deadline and (len(leaders) < 3 or len(confirmed) < 30):
            if time.monotonic() - last_block > 0.3:
                rpc(network, "anvil_mine", [1])
                last_block = time.monotonic()
            nonce = _get(f"{apis[leader]}/v1/accounts/{USER}/nonce").json()["nonce"]
            record = "0x" + _transfer(inbox, nonce).hex()
            answer = httpx.post(f"{apis[leader]}/v1/transactions", json={"record": record}, timeout=10)
            if answer.status_code == 503:  # "... the leader is 0x…": go there
                named = answer.json()["error"].rsplit(" ", 1)[-1].lower()
                if named in apis and named != leader:
                    refused_by_other += 1
                    leader = named
                else:  # the slot closes and its successor is not drawn yet: the next block
                    time.sleep(0.1)
                continue
            if answer.status_code == 400:  # the last leader's batch not yet seen, or no deposit yet
                time.sleep(0.1)
                continue
            assert answer.status_code == 200, answer.text
            confirmed[answer.json()["tx_hash"]] = apis[leader]
            leaders.add(leader)
        assert len(leaders) >= 2, f"only {leaders} led while the client sent"
        assert refused_by_other > 0

        # Every confirmation is posted, once: the user's balance moved exactly that many times.
        def all_posted() -> bool:
            rpc(network, "anvil_mine", [1])
            return all(
                _get(f"{api}/v1/transactions/{h}").json()["stage"] == "posted" for h, api in confirmed.items()
            )

        wait_until(all_posted, 90, "every confirmation posted")
        node_port = free_port()
        node = Service(
            CHAIN_ID, "node", network, tmp_path, "--data", str(tmp_path / "node"), "--port", str(node_port)
        )
        services.append(node)
        node_api = f"http://127.0.0.1:{node_port}"
        batch_count = max(
            int(_get(f"{api}/v1/accounts/{USER}/proof").json()["batch"]) for api in apis.values()
        )

        def agreed() -> bool:
            status = _get(f"{node_api}/v1/status")
            if status is None or status.json()["batches"] < batch_count + 1:
                return False
            root = _get(f"{node_api}/v1/batches/{batch_count}/root").json()["root"]
            return all(
                _get(f"{api}/v1/accounts/{USER}/proof").json()["root"] == root for api in apis.values()
            )

        wait_until(agreed, 120, "the node and the three sequencers on one root")
        balance = _get(f"{node_api}/v1/accounts/{USER}/balance").json()["balance"]
        assert int(balance) == DEPOSIT - len(confirmed) * (AMOUNT + FEE)
        assert sum(any("posted batch" in line for line in s.lines) for s in services[:3]) >= 2
        for service in services:
            service.process.send_signal(signal.SIGTERM)
        for service in services:
            assert service.process.wait(timeout=60) == 0, service.output()
    except BaseException:
        for service in services:  # what each service said, for the failure's report
            print(f"--- {service.process.args[2]} ---", service.output()[-20000:], sep="\n")
        raise
    finally:
        for service in services:
            if service.process.poll() is None:
                service.process.kill()
        stack.close()
