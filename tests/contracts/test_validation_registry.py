"""ValidationRegistry: every external function, its events, and every revert with its reason."""

from __future__ import annotations

import ape

from tests.conftest import set_storage, vyper_hashmap_slot

HASH = b"\x22" * 32
URI = "ipfs://request-1"
ZERO = "0x" + "00" * 20
# Storage slots of ValidationRegistry's state (vyper -f layout).
VALIDATOR_COUNT_SLOT = 6


def _request(validation, agent_id, owner, validator, uri=URI):
    request_hash = validation.computeRequestHash(validator, agent_id, uri)
    receipt = validation.validationRequest(validator, agent_id, uri, request_hash, sender=owner)
    return bytes(request_hash), receipt


# -- validationRequest ---------------------------------------------------------------------------


def test_validation_request__records_and_emits(validation, agent_id, alice, validator):
    request_hash, receipt = _request(validation, agent_id, alice, validator)
    (log,) = receipt.decode_logs(validation.ValidationRequest)
    assert (log.validatorAddress, log.agentId, log.requestURI) == (validator, agent_id, URI)
    assert bytes(log.requestHash) == request_hash
    assert validation.getValidationStatus(request_hash) == (validator, agent_id, 0, b"\x00" * 32, "", 0)
    assert [bytes(h) for h in validation.getAgentValidations(agent_id)] == [request_hash]
    assert [bytes(h) for h in validation.getValidatorRequests(validator)] == [request_hash]
    assert validation.getValidatorRequestCount(validator) == 1


def test_validation_request__hash_binds_validator_agent_and_uri(validation, agent_id, validator):
    from eth_abi import encode
    from eth_utils import keccak

    expected = keccak(encode(["address", "uint256", "string"], [validator.address, agent_id, URI]))
    assert bytes(validation.computeRequestHash(validator, agent_id, URI)) == expected


def test_validation_request__by_operator__succeeds(
    identity, validation, agent_id, alice, operator, validator
):
    identity.setApprovalForAll(operator, True, sender=alice)
    _request(validation, agent_id, operator, validator)
    assert len(validation.getAgentValidations(agent_id)) == 1


def test_validation_request__by_stranger__fails(validation, agent_id, mallory, validator):
    with ape.reverts("validation: not authorized"):
        _request(validation, agent_id, mallory, validator)


def test_validation_request__unknown_agent__fails(validation, alice, validator):
    with ape.reverts("identity: unknown agent"):
        _request(validation, 10**9, alice, validator)


def test_validation_request__zero_validator__fails(validation, agent_id, alice):
    with ape.reverts("validation: zero validator"):
        validation.validationRequest(ZERO, agent_id, URI, HASH, sender=alice)


def test_validation_request__self_validation__fails(
    registries, identity, validation, agent_id, alice, operator, validator
):
    with ape.reverts("validation: self-validation"):
        _request(validation, agent_id, alice, alice)
    identity.setApprovalForAll(operator, True, sender=alice)
    with ape.reverts("validation: self-validation"):
        _request(validation, agent_id, alice, operator)
    registries.set_agent_wallet_with_key(alice, agent_id, validator.private_key)
    with ape.reverts("validation: self-validation"):
        _request(validation, agent_id, alice, validator)


def test_validation_request__front_run_copy_for_another_agent__fails(
    registries, validation, agent_id, alice, carol, validator
):
    # carol sees alice's pending request and tries to take its hash for her own agent first.
    request_hash = bytes(validation.computeRequestHash(validator, agent_id, URI))
    carols_agent = registries.register(carol)
    with ape.reverts("validation: bad request hash"):
        validation.validationRequest(validator, carols_agent, URI, request_hash, sender=carol)
    _request(validation, agent_id, alice, validator)  # alice's request still goes through


def test_validation_request__twice__fails(validation, agent_id, alice, validator):
    _request(validation, agent_id, alice, validator)
    with ape.reverts("validation: request exists"):
        _request(validation, agent_id, alice, validator)


def test_validation_request__beyond_1024_per_agent__accepted_list_and_summary_cover_the_latest(
    project, deployer, identity, validation, agent_id, alice, validator
):
    # A busy agent is never refused (its 1025th request was): its list and summary are the
    # latest 1024 requests; older ones stay readable by hash.
    window = validation.AGENT_REQUEST_WINDOW()
    requester = deployer.deploy(project.validation_requester_mock)
    identity.setApprovalForAll(requester, True, sender=alice)
    for first in range(0, window, 128):
        requester.requestMany(validation, validator, agent_id, "ipfs://busy/", first, 128, sender=alice)
    oldest = bytes(validation.computeRequestHash(validator, agent_id, "ipfs://busy/0"))
    validation.validationResponse(oldest, 10, "", HASH, "", sender=validator)
    assert validation.getSummary(agent_id, [], "") == (1, 10)

    newest, _ = _request(validation, agent_id, alice, validator)
    validation.validationResponse(newest, 90, "", HASH, "", sender=validator)
    assert validation.getAgentRequestCount(agent_id) == window + 1
    listed = [bytes(h) for h in validation.getAgentValidations(agent_id)]
    assert len(listed) == window and listed[-1] == newest and oldest not in listed
    assert listed[0] == bytes(validation.computeRequestHash(validator, agent_id, "ipfs://busy/1"))
    assert validation.getSummary(agent_id, [], "") == (1, 90)  # the oldest left the window
    assert validation.getValidationStatus(oldest)[2] == 10


# -- validationResponse --------------------------------------------------------------------------


def test_validation_response__records_and_emits(chain, validation, agent_id, alice, validator):
    request_hash, _ = _request(validation, agent_id, alice, validator)
    receipt = validation.validationResponse(
        request_hash, 95, "ipfs://evidence", HASH, "tee", sender=validator
    )
    (log,) = receipt.decode_logs(validation.ValidationResponse)
    assert (log.validatorAddress, log.agentId, bytes(log.requestHash)) == (validator, agent_id, request_hash)
    assert (log.response, log.responseURI, bytes(log.responseHash), log.tag) == (
        95,
        "ipfs://evidence",
        HASH,
        "tee",
    )
    timestamp = chain.blocks.head.timestamp
    assert validation.getValidationStatus(request_hash) == (validator, agent_id, 95, HASH, "tee", timestamp)


def test_validation_response__update_replaces(validation, agent_id, alice, validator):
    request_hash, _ = _request(validation, agent_id, alice, validator)
    validation.validationResponse(request_hash, 40, "", HASH, "x" * 32, sender=validator)
    validation.validationResponse(request_hash, 100, "", b"\x00" * 32, "", sender=validator)
    status = validation.getValidationStatus(request_hash)
    assert (status[2], bytes(status[3]), status[4]) == (100, b"\x00" * 32, "")
    assert validation.getSummary(agent_id, [], "") == (1, 100)


def test_validation_response__unknown_request__fails(validation, validator):
    with ape.reverts("validation: unknown request"):
        validation.validationResponse(HASH, 50, "", HASH, "", sender=validator)


def test_validation_response__not_the_validator__fails(validation, agent_id, alice, validator, mallory):
    request_hash, _ = _request(validation, agent_id, alice, validator)
    with ape.reverts("validation: not the validator"):
        validation.validationResponse(request_hash, 50, "", HASH, "", sender=mallory)


def test_validation_response__above_100__fails(validation, agent_id, alice, validator):
    request_hash, _ = _request(validation, agent_id, alice, validator)
    with ape.reverts("validation: response out of range"):
        validation.validationResponse(request_hash, 101, "", HASH, "", sender=validator)
    assert validation.getValidationStatus(request_hash)[5] == 0


def test_validation_response__tag_beyond_its_type__fails(validation, agent_id, alice, validator):
    # Vyper's ABI decoder refuses a String[32] argument of 33 bytes before any code runs:
    # the revert carries no reason string, and nothing changes.
    request_hash, _ = _request(validation, agent_id, alice, validator)
    with ape.reverts():
        validation.validationResponse(request_hash, 50, "", HASH, "t" * 33, sender=validator)
    assert validation.getValidationStatus(request_hash)[5] == 0


# -- reads ---------------------------------------------------------------------------------------


def test_get_validation_status__unknown__fails(validation):
    with ape.reverts("validation: unknown request"):
        validation.getValidationStatus(HASH)


def test_get_summary__counts_answered_with_filters(validation, agent_id, alice, validator, bob, carol):
    first, _ = _request(validation, agent_id, alice, validator, "ipfs://1")
    second, _ = _request(validation, agent_id, alice, bob, "ipfs://2")
    _request(validation, agent_id, alice, carol, "ipfs://3")  # never answered
    validation.validationResponse(first, 90, "", HASH, "tee", sender=validator)
    validation.validationResponse(second, 61, "", HASH, "zk", sender=bob)
    assert validation.getSummary(agent_id, [], "") == (2, 75)
    assert validation.getSummary(agent_id, [validator], "") == (1, 90)
    assert validation.getSummary(agent_id, [bob, validator], "zk") == (1, 61)
    assert validation.getSummary(agent_id, [carol], "") == (0, 0)


def test_validator_requests_page_and_bounds(chain, validation, agent_id, alice, validator):
    first, _ = _request(validation, agent_id, alice, validator, "ipfs://1")
    second, _ = _request(validation, agent_id, alice, validator, "ipfs://2")
    assert [bytes(h) for h in validation.getValidatorRequestsPage(validator, 1, 5)] == [second]
    assert [bytes(h) for h in validation.getValidatorRequestsPage(validator, 0, 1)] == [first]
    assert validation.getValidatorRequestsPage(validator, 2**255, 5) == []
    with ape.reverts("validation: bad page size"):
        validation.getValidatorRequestsPage(validator, 0, 0)
    with ape.reverts("validation: bad page size"):
        validation.getValidatorRequestsPage(validator, 0, validation.MAX_PAGE() + 1)
    slot = vyper_hashmap_slot(validator.address, VALIDATOR_COUNT_SLOT)
    set_storage(chain, validation.address, slot, validation.MAX_PAGE() + 1)
    with ape.reverts("validation: too many requests, use getValidatorRequestsPage"):
        validation.getValidatorRequests(validator)


def test_get_identity_registry(validation, identity):
    assert validation.getIdentityRegistry() == identity.address


def test_constructor__identity_not_a_contract__fails(project, deployer, bob):
    with ape.reverts("validation: identity registry not a contract"):
        deployer.deploy(project.ValidationRegistry, bob.address)
