"""`ape run watchtower` and a lying `ape run sequencer --fault wrong-root` as processes on one
anvil: the watchtower disputes the lie, wins it with the one-step proof and proposes the right
root; both stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from tests.integration.processes import CHAIN_ID, ROOT, free_port, rollup_on_anvil, rpc, wait_until
from tests.integration.test_scripts import _ape_run
from tests.integration.test_sequencer_process import _get


def _launch(script: str, network: str, tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "AGENTL2_DEPLOYMENTS_DIR": str(tmp_path),
        "AGENTL2_SEQUENCER_POST_INTERVAL": "1",
        "AGENTL2_WATCHTOWER_POLL": "0.5",
        "PYTHONWARNINGS": "ignore",
    }
    ape = Path(sys.executable).with_name("ape")
    return subprocess.Popen(
        [str(ape), "run", script, "--network", network, "--chain-id", str(CHAIN_ID), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_lie__is_disputed_won_and_the_right_root_proposed(tmp_path: Path):
    api_port = free_port()
    stack = ExitStack()
    processes: list[subprocess.Popen] = []
    try:
        network = stack.enter_context(rollup_on_anvil(tmp_path))
        liar = _launch(
            "sequencer", network, tmp_path, "--join", "--port", str(api_port), "--fault", "wrong-root"
        )
        processes.append(liar)
        api = f"http://127.0.0.1:{api_port}"
        wait_until(
            lambda: (r := _get(f"{api}/v1/sequencer")) is not None and r.status_code == 200, 120, "the API"
        )
        rpc(network, "anvil_mine", [80])
        watchtower = _launch("watchtower", network, tmp_path)
        processes.append(watchtower)
        deposit = (
            "rollup",
            "deposit",
            "--chain-id",
            str(CHAIN_ID),
            "--to",
            "0x" + "22" * 20,
            "--amount",
            "0.5",
        )
        done = _ape_run(*deposit, "--network", network, deployments=tmp_path)
        assert done.returncode == 0, done.stderr + done.stdout
        # The liar posts the deposit with a wrong root; the watchtower opens a game on it.
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.extend(iter(watchtower.stdout.readline, "")), daemon=True
        )
        reader.start()
        wait_until(lambda: any("opened game 0" in line for line in lines), 90, "the dispute")
        # One transaction: the game opens at width one and the watchtower's proof decides at once.
        try:
            wait_until(
                lambda: any("proposed the derived root" in line for line in lines), 120, "the right root"
            )
        except AssertionError:
            raise AssertionError("the watchtower never proposed the right root:\n" + "".join(lines)) from None
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(timeout=60) == 0, "".join(lines)
        reader.join(timeout=10)
        assert any(line.strip() == "stopped" for line in lines)
        assert any("one-step proof of transaction 0: CHALLENGER_WON" in line for line in lines)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        stack.close()
