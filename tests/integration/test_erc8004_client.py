"""The typed ERC-8004 client and the deployments file, on anvil: results and typed errors."""

from __future__ import annotations

import json

import pytest

from offchain.chain.deployments import load_deployment, save_deployment
from offchain.errors import ConfigError, ContractReverted, InvalidInput, RegistrationFileError
from offchain.identity.registration import RegistrationFile, Service
from offchain.identity.registries import Erc8004


def _file(name: str = "svc") -> RegistrationFile:
    return RegistrationFile(
        name=name, services=[Service(name="web", endpoint="http://127.0.0.1:9000/x")], x402Support=True
    )


def test_register_from_file__round_trips_through_the_chain(registries, alice, chain):
    agent_id = registries.register(alice, _file())
    assert registries.owner_of(agent_id) == alice.address
    assert registries.registration_file(agent_id) == _file()
    updated = _file().with_registration(agent_id, chain.chain_id, str(registries.identity.address))
    registries.set_agent_uri(alice, agent_id, updated)
    assert registries.registration_file(agent_id).registrations[0].agentId == agent_id


def test_register_with_metadata_and_wallet(registries, alice, carol):
    agent_id = registries.register(alice, "ipfs://a", metadata={"model": b"m1"})
    assert registries.get_metadata(agent_id, "model") == b"m1"
    assert registries.agent_wallet(agent_id) == alice.address
    assert registries.set_agent_wallet_with_key(alice, agent_id, carol.private_key) == carol.address
    assert registries.agent_wallet(agent_id) == carol.address
    registries.unset_agent_wallet(alice, agent_id)
    assert registries.agent_wallet(agent_id) is None


def test_feedback_flow(registries, agent_id, alice, bob, carol):
    assert registries.give_feedback(bob, agent_id, 9050, 2, tag1="quality") == 1
    assert registries.give_feedback(carol, agent_id, 80, tag1="quality") == 1
    feedback = registries.read_feedback(agent_id, bob.address, 1)
    assert str(feedback.amount) == "90.50" and not feedback.revoked
    summary = registries.summary(agent_id, [bob.address, carol.address])
    assert (summary.count, summary.value, summary.decimals) == (2, 85, 0)
    registries.respond_to_feedback(alice, agent_id, bob.address, 1, "ipfs://thanks")
    registries.revoke_feedback(bob, agent_id, 1)
    assert registries.summary(agent_id, [bob.address, carol.address]).count == 1
    assert registries.clients(agent_id) == [bob.address, carol.address]


def test_validation_flow(registries, agent_id, alice, validator):
    request = registries.request_validation(alice, agent_id, validator.address, "ipfs://job-1")
    assert not registries.validation_status(request).answered
    registries.respond_validation(validator, request, 88, tag="audit")
    status = registries.validation_status(request)
    assert status.answered and status.response == 88 and status.tag == "audit"
    assert registries.validation_summary(agent_id) == (1, 88)


def test_contract_rule_broken__raises_contract_reverted_and_sends_nothing(registries, agent_id, alice, chain):
    nonce = alice.nonce
    with pytest.raises(ContractReverted) as info:
        registries.give_feedback(alice, agent_id, 50)
    assert info.value.reason == "reputation: self-feedback"
    assert "ReputationRegistry.giveFeedback reverted: reputation: self-feedback" in str(info.value)
    assert alice.nonce == nonce  # stopped at estimation: no transaction, no gas


def test_unknown_agent__raises_readable_error(registries):
    with pytest.raises(ContractReverted, match="identity: unknown agent"):
        registries.owner_of(10**9)
    with pytest.raises(ContractReverted, match="identity: unknown agent"):
        registries.agent_uri(10**9)


def test_unencodable_argument__raises_invalid_input(registries, agent_id, alice, bob):
    with pytest.raises(InvalidInput):
        registries.give_feedback(bob, agent_id, 2**130)  # not an int128
    with pytest.raises(InvalidInput):
        registries.summary(agent_id, [])
    with pytest.raises(InvalidInput, match="must be bytes"):
        registries.set_metadata(alice, agent_id, "k", 5)
    with pytest.raises(InvalidInput, match="private key"):
        registries.set_agent_wallet_with_key(alice, agent_id, "0x1234")
    with pytest.raises(InvalidInput, match="not an address"):
        registries.agent_wallet_digest(agent_id, "0xnope", alice.address, 1)


def test_registration_file_of_a_non_data_uri__raises(registries, agent_id):
    with pytest.raises(RegistrationFileError, match="data: URI"):
        registries.registration_file(agent_id)


def test_deployments_file__save_load_and_staleness(registries, deployer, tmp_path, chain):
    record = registries.deployment(deployer)
    path = save_deployment(record, tmp_path)
    loaded = load_deployment(record.network, tmp_path)
    assert loaded == record
    again = Erc8004.from_deployment(loaded)
    assert again.identity.address == registries.identity.address

    stale = record.model_copy(
        update={"contracts": {**record.contracts, "IdentityRegistry": "0x" + "12" * 20}}
    )
    save_deployment(stale, tmp_path)
    with pytest.raises(ConfigError, match="stale"):
        load_deployment(record.network, tmp_path)

    path.write_text(json.dumps({"network": 1}))
    with pytest.raises(ConfigError, match="malformed"):
        load_deployment(record.network, tmp_path)
    with pytest.raises(ConfigError, match="no deployments file"):
        load_deployment("ethereum:nowhere", tmp_path)
