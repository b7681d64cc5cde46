"""IdentityRegistry: every external function, its events, and every revert with its reason."""

from __future__ import annotations

import ape
import pytest
from eth_account import Account

from offchain.identity.registries import Erc8004

URI = "https://agents.example/alice.json"
ZERO = "0x0000000000000000000000000000000000000000"


def _logs(receipt, contract, name):
    return [log for log in receipt.decode_logs(getattr(contract, name))]


# -- register ------------------------------------------------------------------------------------


def test_register__without_uri__mints_id_sets_wallet_and_emits(identity, alice):
    before = identity.agentCount()
    receipt = identity.register(sender=alice)
    agent_id = before + 1
    assert identity.ownerOf(agent_id) == alice
    assert identity.tokenURI(agent_id) == ""
    assert identity.getAgentWallet(agent_id) == alice
    assert identity.agentCount() == agent_id

    (registered,) = _logs(receipt, identity, "Registered")
    assert registered.agentId == agent_id and registered.agentURI == "" and registered.owner == alice
    (wallet,) = _logs(receipt, identity, "MetadataSet")
    assert wallet.agentId == agent_id and wallet.metadataKey == "agentWallet"
    assert bytes(wallet.metadataValue) == bytes.fromhex(alice.address[2:])
    (transfer,) = _logs(receipt, identity, "Transfer")
    assert transfer.event_arguments["from"] == ZERO and transfer.event_arguments["to"] == alice


def test_register__ids_start_at_one_and_increase(deployer, alice):
    fresh = Erc8004.deploy(deployer)
    assert fresh.register(alice) == 1
    assert fresh.register(alice, "ipfs://b") == 2
    assert fresh.agent_count() == 2


def test_register__with_uri__stores_uri(identity, alice):
    receipt = identity.register(URI, sender=alice)
    (registered,) = _logs(receipt, identity, "Registered")
    assert registered.agentURI == URI and registered.owner == alice
    assert identity.tokenURI(registered.agentId) == URI


def test_register__with_metadata__sets_entries_in_order(identity, alice):
    entries = [("model", b"llama"), ("price", b"\x01\x02")]
    receipt = identity.register(URI, entries, sender=alice)
    (registered,) = _logs(receipt, identity, "Registered")
    agent_id = registered.agentId
    assert identity.getMetadata(agent_id, "model") == b"llama"
    assert identity.getMetadata(agent_id, "price") == b"\x01\x02"
    keys = [log.metadataKey for log in _logs(receipt, identity, "MetadataSet")]
    assert keys == ["agentWallet", "model", "price"]


def test_register__with_reserved_key__fails(identity, alice):
    with ape.reverts("identity: reserved key"):
        identity.register(URI, [("agentWallet", b"\x00" * 20)], sender=alice)


def test_register__with_too_many_entries__fails(identity, alice):
    entries = [(f"k{i}", b"v") for i in range(identity.MAX_METADATA_ENTRIES() + 1)]
    with ape.reverts("identity: too many metadata entries"):
        identity.register(URI, entries, sender=alice)


@pytest.mark.parametrize("key", ["", "k" * 65], ids=["empty", "65 bytes"])
def test_register__with_bad_key__fails(identity, alice, key):
    with ape.reverts("identity: bad metadata key"):
        identity.register(URI, [(key, b"v")], sender=alice)


def test_register__with_long_value__fails(identity, alice):
    with ape.reverts("identity: metadata value too long"):
        identity.register(URI, [("k", b"v" * 1025)], sender=alice)


def test_register__with_long_uri__fails_and_mints_nothing(identity, alice):
    count = identity.agentCount()
    with ape.reverts("identity: uri too long"):
        identity.register("x" * 8193, sender=alice)
    assert identity.agentCount() == count


def test_register__with_uri_at_the_bound__succeeds(identity, alice):
    receipt = identity.register("x" * 8192, sender=alice)
    (registered,) = _logs(receipt, identity, "Registered")
    assert len(identity.tokenURI(registered.agentId)) == 8192


# -- setAgentURI ---------------------------------------------------------------------------------


def test_set_agent_uri__by_owner__updates_and_emits(identity, alice, agent_id):
    receipt = identity.setAgentURI(agent_id, "ipfs://new", sender=alice)
    assert identity.tokenURI(agent_id) == "ipfs://new"
    (updated,) = _logs(receipt, identity, "URIUpdated")
    assert updated.agentId == agent_id and updated.newURI == "ipfs://new" and updated.updatedBy == alice


def test_set_agent_uri__by_approved_and_operator__succeeds(identity, alice, operator, mallory, agent_id):
    identity.approve(mallory, agent_id, sender=alice)
    identity.setAgentURI(agent_id, "ipfs://approved", sender=mallory)
    identity.setApprovalForAll(operator, True, sender=alice)
    identity.setAgentURI(agent_id, "ipfs://operator", sender=operator)
    assert identity.tokenURI(agent_id) == "ipfs://operator"


def test_set_agent_uri__by_stranger__fails(identity, mallory, agent_id):
    with ape.reverts("identity: not authorized"):
        identity.setAgentURI(agent_id, "ipfs://x", sender=mallory)
    assert identity.tokenURI(agent_id) == URI


def test_set_agent_uri__unknown_agent__fails(identity, alice):
    with ape.reverts("identity: unknown agent"):
        identity.setAgentURI(10**9, "ipfs://x", sender=alice)


def test_set_agent_uri__too_long__fails(identity, alice, agent_id):
    with ape.reverts("identity: uri too long"):
        identity.setAgentURI(agent_id, "x" * 8193, sender=alice)


# -- metadata ------------------------------------------------------------------------------------


def test_set_metadata__by_owner__stores_and_emits(identity, alice, agent_id):
    receipt = identity.setMetadata(agent_id, "skills", b"weather,geo", sender=alice)
    assert identity.getMetadata(agent_id, "skills") == b"weather,geo"
    (log,) = _logs(receipt, identity, "MetadataSet")
    assert (
        log.agentId == agent_id and log.metadataKey == "skills" and bytes(log.metadataValue) == b"weather,geo"
    )


def test_set_metadata__by_stranger__fails(identity, mallory, agent_id):
    with ape.reverts("identity: not authorized"):
        identity.setMetadata(agent_id, "skills", b"x", sender=mallory)


def test_set_metadata__reserved_key__fails(identity, alice, mallory, agent_id):
    with ape.reverts("identity: reserved key"):
        identity.setMetadata(agent_id, "agentWallet", bytes.fromhex(mallory.address[2:]), sender=alice)
    assert identity.getAgentWallet(agent_id) == alice


def test_set_metadata__bad_key_or_value__fails(identity, alice, agent_id):
    with ape.reverts("identity: bad metadata key"):
        identity.setMetadata(agent_id, "", b"x", sender=alice)
    with ape.reverts("identity: metadata value too long"):
        identity.setMetadata(agent_id, "k", b"x" * 1025, sender=alice)


def test_set_metadata__unknown_agent__fails(identity, alice):
    with ape.reverts("identity: unknown agent"):
        identity.setMetadata(10**9, "k", b"x", sender=alice)


def test_get_metadata__agent_wallet_and_unknown_agent(identity, alice, agent_id):
    assert identity.getMetadata(agent_id, "agentWallet") == bytes.fromhex(alice.address[2:])
    assert identity.getMetadata(agent_id, "never-set") == b""
    with ape.reverts("identity: unknown agent"):
        identity.getMetadata(10**9, "k")


# -- agent wallet --------------------------------------------------------------------------------


def _proof(registries, chain, agent_id, wallet_key, owner, delay=120):
    wallet = Account.from_key(wallet_key)
    deadline = chain.pending_timestamp + delay
    digest = registries.agent_wallet_digest(agent_id, wallet.address, owner, deadline)
    return wallet.address, deadline, bytes(Account.unsafe_sign_hash(digest, wallet_key).signature), digest


def test_set_agent_wallet__eoa_proof__sets_and_emits(registries, identity, chain, alice, bob, agent_id):
    wallet, deadline, signature, _ = _proof(registries, chain, agent_id, bob.private_key, alice.address)
    receipt = identity.setAgentWallet(agent_id, wallet, deadline, signature, sender=alice)
    assert identity.getAgentWallet(agent_id) == wallet
    assert identity.getMetadata(agent_id, "agentWallet") == bytes.fromhex(wallet[2:])
    (log,) = _logs(receipt, identity, "MetadataSet")
    assert log.metadataKey == "agentWallet" and bytes(log.metadataValue) == bytes.fromhex(wallet[2:])


def test_set_agent_wallet__erc1271_wallet__accepted(
    project, registries, identity, chain, alice, bob, agent_id
):
    smart_wallet = bob.deploy(project.erc1271_wallet_mock, bob.address)
    deadline = chain.pending_timestamp + 120
    digest = registries.agent_wallet_digest(agent_id, smart_wallet.address, alice.address, deadline)
    signature = bytes(Account.unsafe_sign_hash(digest, bob.private_key).signature)
    identity.setAgentWallet(agent_id, smart_wallet.address, deadline, signature, sender=alice)
    assert identity.getAgentWallet(agent_id) == smart_wallet.address


def test_set_agent_wallet__erc1271_wallet_refuses__fails(
    project, registries, identity, chain, alice, bob, mallory, agent_id
):
    smart_wallet = bob.deploy(project.erc1271_wallet_mock, bob.address)
    deadline = chain.pending_timestamp + 120
    digest = registries.agent_wallet_digest(agent_id, smart_wallet.address, alice.address, deadline)
    signature = bytes(Account.unsafe_sign_hash(digest, mallory.private_key).signature)
    with ape.reverts("identity: bad wallet proof"):
        identity.setAgentWallet(agent_id, smart_wallet.address, deadline, signature, sender=alice)


def test_set_agent_wallet__wrong_signer__fails(registries, identity, chain, alice, bob, mallory, agent_id):
    _, deadline, signature, _ = _proof(registries, chain, agent_id, mallory.private_key, alice.address)
    with ape.reverts("identity: bad wallet proof"):
        # mallory signed, but the proof claims bob's address as the wallet
        identity.setAgentWallet(agent_id, bob.address, deadline, signature, sender=alice)
    assert identity.getAgentWallet(agent_id) == alice


def test_set_agent_wallet__expired__fails(registries, identity, chain, alice, bob, agent_id):
    wallet, deadline, signature, _ = _proof(
        registries, chain, agent_id, bob.private_key, alice.address, delay=5
    )
    chain.pending_timestamp = deadline + 1
    with ape.reverts("identity: proof expired"):
        identity.setAgentWallet(agent_id, wallet, deadline, signature, sender=alice)


def test_set_agent_wallet__deadline_too_far__fails(registries, identity, chain, alice, bob, agent_id):
    wallet, deadline, signature, _ = _proof(
        registries, chain, agent_id, bob.private_key, alice.address, delay=3600
    )
    with ape.reverts("identity: deadline too far"):
        identity.setAgentWallet(agent_id, wallet, deadline, signature, sender=alice)


def test_set_agent_wallet__zero_wallet__fails(identity, chain, alice, agent_id):
    with ape.reverts("identity: zero wallet"):
        identity.setAgentWallet(agent_id, ZERO, chain.pending_timestamp + 60, b"", sender=alice)


def test_set_agent_wallet__by_stranger__fails(registries, identity, chain, alice, bob, mallory, agent_id):
    wallet, deadline, signature, _ = _proof(registries, chain, agent_id, bob.private_key, alice.address)
    with ape.reverts("identity: not authorized"):
        identity.setAgentWallet(agent_id, wallet, deadline, signature, sender=mallory)


def test_set_agent_wallet__replay_after_transfer__fails(
    registries, identity, chain, alice, bob, carol, agent_id
):
    wallet, deadline, signature, _ = _proof(registries, chain, agent_id, bob.private_key, alice.address)
    identity.setAgentWallet(agent_id, wallet, deadline, signature, sender=alice)
    identity.transferFrom(alice, carol, agent_id, sender=alice)
    # The proof named alice as owner: carol cannot reuse it.
    with ape.reverts("identity: bad wallet proof"):
        identity.setAgentWallet(agent_id, wallet, deadline, signature, sender=carol)


def test_transfer__clears_wallet_and_emits(identity, alice, carol, agent_id):
    receipt = identity.transferFrom(alice, carol, agent_id, sender=alice)
    assert identity.getAgentWallet(agent_id) == ZERO
    assert identity.getMetadata(agent_id, "agentWallet") == b""
    (log,) = _logs(receipt, identity, "MetadataSet")
    assert log.metadataKey == "agentWallet" and bytes(log.metadataValue) == b""


def test_unset_agent_wallet__by_owner__clears_and_emits(identity, alice, agent_id):
    receipt = identity.unsetAgentWallet(agent_id, sender=alice)
    assert identity.getAgentWallet(agent_id) == ZERO
    (log,) = _logs(receipt, identity, "MetadataSet")
    assert log.metadataKey == "agentWallet" and bytes(log.metadataValue) == b""


def test_unset_agent_wallet__by_stranger__fails(identity, mallory, alice, agent_id):
    with ape.reverts("identity: not authorized"):
        identity.unsetAgentWallet(agent_id, sender=mallory)
    assert identity.getAgentWallet(agent_id) == alice


def test_get_agent_wallet__unknown_agent__fails(identity):
    with ape.reverts("identity: unknown agent"):
        identity.getAgentWallet(10**9)


# -- helpers for the other registries ------------------------------------------------------------


def test_is_authorized_or_owner(identity, alice, operator, mallory, agent_id):
    assert identity.isAuthorizedOrOwner(alice, agent_id)
    assert not identity.isAuthorizedOrOwner(mallory, agent_id)
    identity.setApprovalForAll(operator, True, sender=alice)
    assert identity.isAuthorizedOrOwner(operator, agent_id)
    with ape.reverts("identity: unknown agent"):
        identity.isAuthorizedOrOwner(alice, 10**9)


def test_erc165_and_eip712_domain(identity, chain):
    assert identity.supportsInterface(bytes.fromhex("80ac58cd"))  # ERC-721
    assert identity.supportsInterface(bytes.fromhex("49064906"))  # ERC-4906 metadata updates
    _, name, version, chain_id, verifying_contract, _, _ = identity.eip712Domain()
    assert (name, version, chain_id, verifying_contract) == (
        "ERC8004IdentityRegistry",
        "1",
        chain.chain_id,
        identity.address,
    )


# -- ERC-721 functions inherited from OpenZeppelin (their reverts are its custom errors) ----------


def test_erc721__reads_of_unknown_agent__fail(identity):
    with ape.reverts(identity.ERC721NonexistentToken, tokenId=10**9):
        identity.ownerOf(10**9)
    with ape.reverts(identity.ERC721NonexistentToken, tokenId=10**9):
        identity.tokenURI(10**9)
    with ape.reverts(identity.ERC721NonexistentToken, tokenId=10**9):
        identity.getApproved(10**9)


def test_erc721__balance_of_zero__fails(identity):
    with ape.reverts(identity.ERC721InvalidOwner, owner=ZERO):
        identity.balanceOf(ZERO)


def test_erc721__transfer_by_stranger__fails(identity, alice, mallory, agent_id):
    with ape.reverts(identity.ERC721InsufficientApproval, operator=mallory, tokenId=agent_id):
        identity.transferFrom(alice, mallory, agent_id, sender=mallory)
    assert identity.ownerOf(agent_id) == alice


def test_erc721__approve_by_stranger__fails(identity, mallory, agent_id):
    with ape.reverts(identity.ERC721InvalidApprover, approver=mallory):
        identity.approve(mallory, agent_id, sender=mallory)


def test_erc721__operator_zero__fails(identity, alice):
    with ape.reverts(identity.ERC721InvalidOperator, operator=ZERO):
        identity.setApprovalForAll(ZERO, True, sender=alice)


def test_erc721__safe_transfer_to_non_receiver__fails(identity, reputation, alice, agent_id):
    with ape.reverts(identity.ERC721InvalidReceiver, receiver=reputation.address):
        identity.safeTransferFrom(alice, reputation.address, agent_id, sender=alice)
    assert identity.ownerOf(agent_id) == alice


def test_erc721__approvals_and_transfer_emit(identity, alice, carol, operator, agent_id):
    receipt = identity.approve(carol, agent_id, sender=alice)
    (log,) = receipt.decode_logs(identity.Approval)
    assert (log.owner, log.approved, log.tokenId) == (alice, carol, agent_id)
    receipt = identity.setApprovalForAll(operator, True, sender=alice)
    (log,) = receipt.decode_logs(identity.ApprovalForAll)
    assert (log.owner, log.operator, log.approved) == (alice, operator, True)
    identity.safeTransferFrom(alice, carol, agent_id, sender=operator)
    assert identity.ownerOf(agent_id) == carol and identity.balanceOf(carol) >= 1


def test_register__by_contract_that_moves_agent_in_hook__leaves_no_stale_wallet(
    project, identity, deployer, carol
):
    hostile = deployer.deploy(project.hostile_registrant_mock, identity.address, carol.address)
    hostile.attack(sender=deployer)
    agent_id = identity.agentCount()
    # The hook ran after the wallet was written, and the transfer inside it cleared the wallet.
    assert identity.ownerOf(agent_id) == carol
    assert identity.getAgentWallet(agent_id) == ZERO


def test_register__by_contract_without_receiver__fails(identity, reputation, chain):
    count = identity.agentCount()
    chain.set_balance(reputation.address, 10**18)
    with ape.reverts(identity.ERC721InvalidReceiver):
        # ReputationRegistry has no onERC721Received: impersonate it to call register().
        identity.register(sender=ape.accounts[reputation.address])
    assert identity.agentCount() == count
