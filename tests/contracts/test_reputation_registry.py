"""ReputationRegistry: every external function, its events, and every revert with its reason."""

from __future__ import annotations

import ape
import pytest

from tests.conftest import set_storage, solidity_mapping_slot

HASH = b"\x11" * 32
# Storage slots of ReputationRegistry's state (declaration order).
LAST_INDEX_SLOT = 1
CLIENTS_SLOT = 2


def _give(reputation, agent_id, client, value=87, decimals=0, tag1="quality", tag2="fast"):
    return reputation.giveFeedback(
        agent_id, value, decimals, tag1, tag2, "https://svc.example/api", "ipfs://fb", HASH, sender=client
    )


def _set_last_index(chain, reputation, agent_id, client, value):
    inner = solidity_mapping_slot(agent_id, LAST_INDEX_SLOT)
    set_storage(chain, reputation.address, solidity_mapping_slot(client.address, inner), value)


# -- giveFeedback --------------------------------------------------------------------------------


def test_give_feedback__stores_entry_and_emits(reputation, agent_id, bob):
    receipt = _give(reputation, agent_id, bob, value=-1234, decimals=2)
    (log,) = receipt.decode_logs(reputation.NewFeedback)
    assert log.agentId == agent_id and log.clientAddress == bob and log.feedbackIndex == 1
    assert (log.value, log.valueDecimals, log.tag1, log.tag2) == (-1234, 2, "quality", "fast")
    assert (log.endpoint, log.feedbackURI, bytes(log.feedbackHash)) == (
        "https://svc.example/api",
        "ipfs://fb",
        HASH,
    )
    assert reputation.readFeedback(agent_id, bob, 1) == (-1234, 2, "quality", "fast", False)
    assert reputation.getLastIndex(agent_id, bob) == 1
    assert reputation.getClients(agent_id) == [bob]


def test_give_feedback__indexes_start_at_one_per_client(reputation, agent_id, bob, carol):
    _give(reputation, agent_id, bob)
    _give(reputation, agent_id, bob)
    _give(reputation, agent_id, carol)
    assert reputation.getLastIndex(agent_id, bob) == 2
    assert reputation.getLastIndex(agent_id, carol) == 1
    assert reputation.getClients(agent_id) == [bob, carol]
    assert reputation.getClientCount(agent_id) == 2


def test_give_feedback__too_many_decimals__fails(reputation, agent_id, bob):
    with ape.reverts("reputation: too many decimals"):
        _give(reputation, agent_id, bob, decimals=19)
    assert reputation.getLastIndex(agent_id, bob) == 0


@pytest.mark.parametrize("value", [10**38 + 1, -(10**38) - 1], ids=["above", "below"])
def test_give_feedback__value_out_of_range__fails(reputation, agent_id, bob, value):
    with ape.reverts("reputation: value out of range"):
        _give(reputation, agent_id, bob, value=value)


def test_give_feedback__value_at_the_bounds__succeeds(reputation, agent_id, bob):
    _give(reputation, agent_id, bob, value=10**38)
    _give(reputation, agent_id, bob, value=-(10**38))
    assert reputation.getLastIndex(agent_id, bob) == 2


def test_give_feedback__long_strings__fail(reputation, agent_id, bob):
    with ape.reverts("reputation: tag too long"):
        _give(reputation, agent_id, bob, tag1="t" * 65)
    with ape.reverts("reputation: tag too long"):
        _give(reputation, agent_id, bob, tag2="t" * 65)
    with ape.reverts("reputation: endpoint too long"):
        reputation.giveFeedback(agent_id, 1, 0, "", "", "e" * 513, "", HASH, sender=bob)
    with ape.reverts("reputation: uri too long"):
        reputation.giveFeedback(agent_id, 1, 0, "", "", "", "u" * 2049, HASH, sender=bob)


def test_give_feedback__unknown_agent__fails(reputation, bob):
    with ape.reverts("identity: unknown agent"):
        _give(reputation, 10**9, bob)


def test_give_feedback__by_owner_approved_operator_or_wallet__fails(
    registries, identity, reputation, chain, agent_id, alice, bob, carol, operator
):
    with ape.reverts("reputation: self-feedback"):
        _give(reputation, agent_id, alice)
    identity.approve(carol, agent_id, sender=alice)
    with ape.reverts("reputation: self-feedback"):
        _give(reputation, agent_id, carol)
    identity.setApprovalForAll(operator, True, sender=alice)
    with ape.reverts("reputation: self-feedback"):
        _give(reputation, agent_id, operator)
    registries.set_agent_wallet_with_key(alice, agent_id, bob.private_key)
    with ape.reverts("reputation: self-feedback"):
        _give(reputation, agent_id, bob)
    assert reputation.getClientCount(agent_id) == 0


def test_give_feedback__limit_per_client__fails(reputation, chain, agent_id, bob):
    limit = reputation.MAX_FEEDBACK_PER_CLIENT()
    _give(reputation, agent_id, bob)
    _set_last_index(chain, reputation, agent_id, bob, limit)
    with ape.reverts("reputation: feedback limit reached"):
        _give(reputation, agent_id, bob)


# -- revokeFeedback ------------------------------------------------------------------------------


def test_revoke_feedback__marks_revoked_and_emits(reputation, agent_id, bob):
    _give(reputation, agent_id, bob)
    receipt = reputation.revokeFeedback(agent_id, 1, sender=bob)
    (log,) = receipt.decode_logs(reputation.FeedbackRevoked)
    assert (log.agentId, log.clientAddress, log.feedbackIndex) == (agent_id, bob, 1)
    assert reputation.readFeedback(agent_id, bob, 1)[4] is True


def test_revoke_feedback__twice__fails(reputation, agent_id, bob):
    _give(reputation, agent_id, bob)
    reputation.revokeFeedback(agent_id, 1, sender=bob)
    with ape.reverts("reputation: already revoked"):
        reputation.revokeFeedback(agent_id, 1, sender=bob)


@pytest.mark.parametrize("index", [0, 2], ids=["zero", "past-last"])
def test_revoke_feedback__unknown_index__fails(reputation, agent_id, bob, index):
    _give(reputation, agent_id, bob)
    with ape.reverts("reputation: unknown feedback"):
        reputation.revokeFeedback(agent_id, index, sender=bob)


def test_revoke_feedback__of_another_client__fails(reputation, agent_id, bob, carol):
    _give(reputation, agent_id, bob)
    with ape.reverts("reputation: unknown feedback"):
        reputation.revokeFeedback(agent_id, 1, sender=carol)
    assert reputation.readFeedback(agent_id, bob, 1)[4] is False


# -- appendResponse and getResponseCount ---------------------------------------------------------


def test_append_response__counts_and_emits(reputation, agent_id, alice, bob, carol, mallory):
    _give(reputation, agent_id, bob)
    _give(reputation, agent_id, bob)
    _give(reputation, agent_id, carol)
    receipt = reputation.appendResponse(agent_id, bob, 1, "ipfs://reply", HASH, sender=alice)
    (log,) = receipt.decode_logs(reputation.ResponseAppended)
    assert (log.agentId, log.clientAddress, log.feedbackIndex, log.responder) == (agent_id, bob, 1, alice)
    assert (log.responseURI, bytes(log.responseHash)) == ("ipfs://reply", HASH)
    reputation.appendResponse(agent_id, bob, 1, "ipfs://again", HASH, sender=alice)
    reputation.appendResponse(agent_id, bob, 2, "ipfs://audit", HASH, sender=mallory)
    reputation.appendResponse(agent_id, carol, 1, "ipfs://audit", HASH, sender=mallory)

    assert reputation.getResponseCount(agent_id, bob, 1, []) == 2
    assert reputation.getResponseCount(agent_id, bob, 1, [alice]) == 2
    assert reputation.getResponseCount(agent_id, bob, 1, [mallory]) == 0
    assert reputation.getResponseCount(agent_id, bob, 0, []) == 3  # all of bob's entries
    assert reputation.getResponseCount(agent_id, bob, 0, [alice, alice]) == 2  # a repeat counts once
    assert reputation.getResponseCount(agent_id, "0x" + "00" * 20, 0, []) == 4  # all clients
    assert reputation.getResponseCount(agent_id, "0x" + "00" * 20, 0, [mallory]) == 2


def test_append_response__bad_uri__fails(reputation, agent_id, alice, bob):
    _give(reputation, agent_id, bob)
    with ape.reverts("reputation: bad response uri"):
        reputation.appendResponse(agent_id, bob, 1, "", HASH, sender=alice)
    with ape.reverts("reputation: bad response uri"):
        reputation.appendResponse(agent_id, bob, 1, "u" * 2049, HASH, sender=alice)


def test_append_response__unknown_feedback__fails(reputation, agent_id, alice, bob):
    with ape.reverts("reputation: unknown feedback"):
        reputation.appendResponse(agent_id, bob, 1, "ipfs://reply", HASH, sender=alice)


def test_get_response_count__too_large__fails(reputation, chain, agent_id, bob):
    _give(reputation, agent_id, bob)
    _set_last_index(chain, reputation, agent_id, bob, reputation.MAX_SCAN_PER_QUERY() + 1)
    with ape.reverts("reputation: query too large"):
        reputation.getResponseCount(agent_id, bob, 0, [])


# -- reads ---------------------------------------------------------------------------------------


def test_read_feedback__unknown__fails(reputation, agent_id, bob):
    with ape.reverts("reputation: unknown feedback"):
        reputation.readFeedback(agent_id, bob, 1)


def test_get_summary__mixed_decimals_and_revocations(reputation, agent_id, bob, carol):
    _give(reputation, agent_id, bob, value=80)  # 80
    _give(reputation, agent_id, bob, value=9050, decimals=2)  # 90.50
    _give(reputation, agent_id, carol, value=7025, decimals=2)  # 70.25
    _give(reputation, agent_id, carol, value=10)  # revoked below
    reputation.revokeFeedback(agent_id, 2, sender=carol)
    # mean of 80, 90.50, 70.25 = 80.25; decimals 2 is the most frequent
    assert reputation.getSummary(agent_id, [bob, carol], "", "") == (3, 8025, 2)
    assert reputation.getSummary(agent_id, [bob], "", "") == (2, 85, 0)  # tie 0 vs 2: lowest; 85.25 -> 85
    assert reputation.getSummary(agent_id, [bob, carol, bob], "", "") == (3, 8025, 2)  # repeat once
    assert reputation.getSummary(agent_id, [bob], "quality", "fast") == (2, 85, 0)
    assert reputation.getSummary(agent_id, [bob], "latency", "") == (0, 0, 0)


def test_get_summary__filters_tags(reputation, agent_id, bob):
    _give(reputation, agent_id, bob, value=10, tag1="a", tag2="x")
    _give(reputation, agent_id, bob, value=20, tag1="a", tag2="y")
    _give(reputation, agent_id, bob, value=30, tag1="b", tag2="y")
    assert reputation.getSummary(agent_id, [bob], "a", "") == (2, 15, 0)
    assert reputation.getSummary(agent_id, [bob], "", "y") == (2, 25, 0)
    assert reputation.getSummary(agent_id, [bob], "a", "y") == (1, 20, 0)


def test_get_summary__empty_client_list__fails(reputation, agent_id):
    with ape.reverts("reputation: client list required"):
        reputation.getSummary(agent_id, [], "", "")


def test_get_summary__too_many_clients__fails(reputation, agent_id, accounts):
    clients = [f"0x{i:040x}" for i in range(1, reputation.MAX_ADDRESSES_PER_QUERY() + 2)]
    with ape.reverts("reputation: too many addresses"):
        reputation.getSummary(agent_id, clients, "", "")


def test_get_summary__too_many_entries__fails(reputation, chain, agent_id, bob):
    _give(reputation, agent_id, bob)
    _set_last_index(chain, reputation, agent_id, bob, reputation.MAX_SCAN_PER_QUERY() + 1)
    with ape.reverts("reputation: query too large"):
        reputation.getSummary(agent_id, [bob], "", "")


def test_get_summary__result_beyond_int128__fails(reputation, agent_id, bob):
    # 1e38 at 0 decimals, reported at 18 decimals (the most frequent), is 1e56: no int128 holds it.
    _give(reputation, agent_id, bob, value=10**38, decimals=0)
    _give(reputation, agent_id, bob, value=1, decimals=18)
    _give(reputation, agent_id, bob, value=1, decimals=18)
    with ape.reverts("reputation: summary overflow"):
        reputation.getSummary(agent_id, [bob], "", "")


def test_read_all_feedback__rows_filters_and_revoked(reputation, agent_id, bob, carol):
    _give(reputation, agent_id, bob, value=1, tag1="a")
    _give(reputation, agent_id, carol, value=2, tag1="b")
    _give(reputation, agent_id, bob, value=3, tag1="a")
    reputation.revokeFeedback(agent_id, 2, sender=bob)

    clients, indexes, values, decimals, tag1s, tag2s, revoked = reputation.readAllFeedback(
        agent_id, [], "", "", True
    )
    assert list(clients) == [bob, bob, carol] and list(indexes) == [1, 2, 1]
    assert list(values) == [1, 3, 2] and list(decimals) == [0, 0, 0]
    assert list(tag1s) == ["a", "a", "b"] and list(tag2s) == ["fast"] * 3
    assert list(revoked) == [False, True, False]

    clients, indexes, values, *_ = reputation.readAllFeedback(agent_id, [carol, bob, carol], "a", "", False)
    assert list(clients) == [bob] and list(indexes) == [1] and list(values) == [1]


def test_read_all_feedback__too_large__fails(reputation, chain, agent_id, bob):
    _give(reputation, agent_id, bob)
    _set_last_index(chain, reputation, agent_id, bob, reputation.MAX_SCAN_PER_QUERY() + 1)
    with ape.reverts("reputation: query too large"):
        reputation.readAllFeedback(agent_id, [bob], "", "", True)


def test_clients_page_and_bounds(reputation, chain, agent_id, bob, carol):
    _give(reputation, agent_id, bob)
    _give(reputation, agent_id, carol)
    assert reputation.getClientsPage(agent_id, 0, 1) == [bob]
    assert reputation.getClientsPage(agent_id, 1, 10) == [carol]
    assert reputation.getClientsPage(agent_id, 5, 10) == []
    with ape.reverts("reputation: bad page size"):
        reputation.getClientsPage(agent_id, 0, 0)
    with ape.reverts("reputation: bad page size"):
        reputation.getClientsPage(agent_id, 0, reputation.MAX_PAGE() + 1)
    # An agent with more clients than one page: the unpaged read refuses instead of running out of gas.
    set_storage(
        chain, reputation.address, solidity_mapping_slot(agent_id, CLIENTS_SLOT), reputation.MAX_PAGE() + 1
    )
    with ape.reverts("reputation: too many clients, use getClientsPage"):
        reputation.getClients(agent_id)
    # Reads over all clients are bounded by the entries they scan, never by a client count that
    # anyone can raise with throwaway addresses.
    assert len(reputation.readAllFeedback(agent_id, [], "", "", True)[0]) == 2
    set_storage(
        chain,
        reputation.address,
        solidity_mapping_slot(agent_id, CLIENTS_SLOT),
        reputation.MAX_SCAN_PER_QUERY() + 1,
    )
    with ape.reverts("reputation: query too large"):
        reputation.readAllFeedback(agent_id, [], "", "", True)
    with ape.reverts("reputation: query too large"):
        reputation.getResponseCount(agent_id, "0x" + "00" * 20, 0, [])


def test_get_identity_registry(reputation, identity):
    assert reputation.getIdentityRegistry() == identity.address


def test_constructor__identity_not_a_contract__fails(project, deployer, bob):
    with ape.reverts("reputation: identity registry not a contract"):
        deployer.deploy(project.ReputationRegistry, bob.address)
