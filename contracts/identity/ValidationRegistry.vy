# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title ValidationRegistry
@custom:contract-name ValidationRegistry
@license MIT
@notice ERC-8004 validation registry (interface of the 25 Jan 2026 ERC text,
        contracts 2.0.0). An agent's owner asks a named validator to check its
        work; only that validator answers, with a score from 0 to 100, as often
        as it likes (the latest answer counts).
@dev Differences from the reference implementation, all deliberate:
     - `requestHash` must equal `computeRequestHash(validator, agentId, requestURI)`,
       so no one else can take a request's hash first (front-running a request to
       block it is not possible: a copy names the same agent and validator);
     - an agent's owner, operators and wallet cannot validate the agent;
     - URIs and tags are bounded, lists are bounded or paged: an agent may make
       any number of requests, its list and `getSummary` cover its latest 1024
       (older ones stay readable by hash);
     - a request's fixed fields share one storage slot.
     Every revert carries a reason of the form "validation: ...".
"""


interface IIdentityRegistry:
    def isAuthorizedOrOwner(spender: address, agentId: uint256) -> bool: view
    def getAgentWallet(agentId: uint256) -> address: view


# @notice Longest request or response URI, in bytes.
MAX_URI_BYTES: public(constant(uint256)) = 2048
# @notice Longest tag, in bytes (a tag is stored in one word).
MAX_TAG_BYTES: public(constant(uint256)) = 32
# @notice Highest response score.
MAX_RESPONSE: public(constant(uint8)) = 100
# @notice How many of an agent's latest requests its list and summary cover.
AGENT_REQUEST_WINDOW: public(constant(uint256)) = 1024
# @notice Largest page of a validator's requests.
MAX_PAGE: public(constant(uint256)) = 1000
# @notice Most validators one summary query may name.
MAX_VALIDATORS_PER_QUERY: public(constant(uint256)) = 100

# Layout of a request's packed word.
_RESPONSE_SHIFT: constant(uint256) = 160
_RESPONDED_BIT: constant(uint256) = 1 << 168
_TAG_LENGTH_SHIFT: constant(uint256) = 169
_LAST_UPDATE_SHIFT: constant(uint256) = 176
_ADDRESS_MASK: constant(uint256) = (1 << 160) - 1


# The identity registry whose agents are validated.
_IDENTITY: immutable(IIdentityRegistry)

# requestHash => validator | response << 160 | responded << 168
#                | tag length << 169 | lastUpdate << 176 (zero: unknown request).
_packed: HashMap[bytes32, uint256]
# requestHash => agentId.
_agent: HashMap[bytes32, uint256]
# requestHash => latest responseHash.
_responseHash: HashMap[bytes32, bytes32]
# requestHash => latest tag, left-aligned (its length is in the packed word).
_tag: HashMap[bytes32, bytes32]
# agentId => position % AGENT_REQUEST_WINDOW => requestHash (a ring of its latest requests).
_agentRequests: HashMap[uint256, HashMap[uint256, bytes32]]
# validator => position => requestHash.
_validatorRequests: HashMap[address, HashMap[uint256, bytes32]]
# validator => number of requests naming it.
_validatorRequestCount: HashMap[address, uint256]
# agentId => number of requests it ever made.
_agentRequestCount: HashMap[uint256, uint256]


event ValidationRequest:
    validatorAddress: indexed(address)
    agentId: indexed(uint256)
    requestURI: String[MAX_URI_BYTES]
    requestHash: indexed(bytes32)


event ValidationResponse:
    validatorAddress: indexed(address)
    agentId: indexed(uint256)
    requestHash: indexed(bytes32)
    response: uint8
    responseURI: String[MAX_URI_BYTES]
    responseHash: bytes32
    tag: String[MAX_TAG_BYTES]


@deploy
def __init__(identity_registry: address):
    """
    @param identity_registry The ERC-8004 identity registry.
    """
    assert identity_registry.is_contract, "validation: identity registry not a contract"
    _IDENTITY = IIdentityRegistry(identity_registry)


@external
def validationRequest(
    validatorAddress: address,
    agentId: uint256,
    requestURI: String[MAX_URI_BYTES],
    requestHash: bytes32,
):
    """
    @notice Asks `validatorAddress` to validate the agent's work described at `requestURI`.
    @dev Owner, approved address or operator of the agent only.
    @param validatorAddress The validator; not the agent's owner, operator or wallet.
    @param agentId The agent (must exist).
    @param requestURI Where the validator finds the request (at most 2048 bytes).
    @param requestHash computeRequestHash(validatorAddress, agentId, requestURI).
    """
    assert validatorAddress != empty(address), "validation: zero validator"
    # Reverts with "identity: unknown agent" for an agent that does not exist.
    assert staticcall _IDENTITY.isAuthorizedOrOwner(msg.sender, agentId), "validation: not authorized"
    assert not staticcall _IDENTITY.isAuthorizedOrOwner(validatorAddress, agentId), "validation: self-validation"
    assert staticcall _IDENTITY.getAgentWallet(agentId) != validatorAddress, "validation: self-validation"
    assert requestHash == self._request_hash(validatorAddress, agentId, requestURI), "validation: bad request hash"
    assert self._packed[requestHash] == 0, "validation: request exists"

    self._packed[requestHash] = convert(validatorAddress, uint256)
    self._agent[requestHash] = agentId
    made: uint256 = self._agentRequestCount[agentId]
    self._agentRequests[agentId][made % AGENT_REQUEST_WINDOW] = requestHash
    self._agentRequestCount[agentId] = made + 1
    position: uint256 = self._validatorRequestCount[validatorAddress]
    self._validatorRequests[validatorAddress][position] = requestHash
    self._validatorRequestCount[validatorAddress] = position + 1
    log ValidationRequest(
        validatorAddress=validatorAddress, agentId=agentId, requestURI=requestURI, requestHash=requestHash
    )


@external
def validationResponse(
    requestHash: bytes32,
    response: uint8,
    responseURI: String[MAX_URI_BYTES],
    responseHash: bytes32,
    tag: String[MAX_TAG_BYTES],
):
    """
    @notice Answers a request; a later answer replaces an earlier one.
    @dev The request's named validator only.
    @param requestHash The request.
    @param response The score, 0 (failed) to 100 (passed).
    @param responseURI Evidence (at most 2048 bytes; emitted only).
    @param responseHash Hash of the evidence.
    @param tag A label for the answer (at most 32 bytes).
    """
    packed: uint256 = self._packed[requestHash]
    assert packed != 0, "validation: unknown request"
    validator: address = convert(packed & _ADDRESS_MASK, address)
    assert msg.sender == validator, "validation: not the validator"
    assert response <= MAX_RESPONSE, "validation: response out of range"

    self._packed[requestHash] = (
        convert(validator, uint256)
        | (convert(response, uint256) << _RESPONSE_SHIFT)
        | _RESPONDED_BIT
        | (len(tag) << _TAG_LENGTH_SHIFT)
        | (block.timestamp << _LAST_UPDATE_SHIFT)
    )
    if self._responseHash[requestHash] != responseHash:
        self._responseHash[requestHash] = responseHash
    stored_tag: bytes32 = empty(bytes32)
    if len(tag) != 0:
        stored_tag = convert(convert(tag, Bytes[MAX_TAG_BYTES]), bytes32)
    if self._tag[requestHash] != stored_tag:
        self._tag[requestHash] = stored_tag
    log ValidationResponse(
        validatorAddress=validator,
        agentId=self._agent[requestHash],
        requestHash=requestHash,
        response=response,
        responseURI=responseURI,
        responseHash=responseHash,
        tag=tag,
    )


@view
@external
def getValidationStatus(
    requestHash: bytes32,
) -> (address, uint256, uint8, bytes32, String[MAX_TAG_BYTES], uint256):
    """
    @notice A request and its latest answer.
    @param requestHash The request (must exist).
    @return validatorAddress, agentId, response, responseHash, tag, lastUpdate
            (response 0, empty tag and lastUpdate 0 until the first answer).
    """
    packed: uint256 = self._packed[requestHash]
    assert packed != 0, "validation: unknown request"
    return (
        convert(packed & _ADDRESS_MASK, address),
        self._agent[requestHash],
        convert((packed >> _RESPONSE_SHIFT) & 255, uint8),
        self._responseHash[requestHash],
        self._tag_of(requestHash, packed),
        packed >> _LAST_UPDATE_SHIFT,
    )


@view
@external
def getSummary(
    agentId: uint256,
    validatorAddresses: DynArray[address, MAX_VALIDATORS_PER_QUERY],
    tag: String[MAX_TAG_BYTES],
) -> (uint64, uint8):
    """
    @notice Count and mean score of the agent's answered requests, among its latest 1024.
    @param agentId The agent.
    @param validatorAddresses Only answers from these (at most 100), or empty for any.
    @param tag Only answers with this tag, or "" for any.
    @return count Answered requests counted.
    @return averageResponse Their mean score, truncated (0 when none).
    """
    count: uint256 = 0
    total: uint256 = 0
    latest: DynArray[bytes32, AGENT_REQUEST_WINDOW] = self._latest(agentId)
    for request_hash: bytes32 in latest:
        packed: uint256 = self._packed[request_hash]
        if packed & _RESPONDED_BIT == 0:
            continue
        if len(validatorAddresses) != 0 and convert(packed & _ADDRESS_MASK, address) not in validatorAddresses:
            continue
        if len(tag) != 0 and keccak256(self._tag_of(request_hash, packed)) != keccak256(tag):
            continue
        total += (packed >> _RESPONSE_SHIFT) & 255
        count += 1
    if count == 0:
        return 0, 0
    return convert(count, uint64), convert(total // count, uint8)


@view
@external
def getAgentValidations(agentId: uint256) -> DynArray[bytes32, AGENT_REQUEST_WINDOW]:
    """
    @notice The agent's latest requests (at most 1024), oldest first.
    @param agentId The agent.
    @return The request hashes.
    """
    return self._latest(agentId)


@view
@external
def getAgentRequestCount(agentId: uint256) -> uint256:
    """
    @notice How many requests the agent ever made (its list holds the latest 1024).
    @param agentId The agent.
    @return The count.
    """
    return self._agentRequestCount[agentId]


@view
@external
def getValidatorRequests(validatorAddress: address) -> DynArray[bytes32, MAX_PAGE]:
    """
    @notice The requests naming a validator, oldest first.
    @dev Reverts past 1000 requests: use `getValidatorRequestsPage` then.
    @param validatorAddress The validator.
    @return The request hashes.
    """
    count: uint256 = self._validatorRequestCount[validatorAddress]
    assert count <= MAX_PAGE, "validation: too many requests, use getValidatorRequestsPage"
    return self._page(validatorAddress, 0, count)


@view
@external
def getValidatorRequestsPage(
    validatorAddress: address, offset: uint256, limit: uint256
) -> DynArray[bytes32, MAX_PAGE]:
    """
    @notice A page of the requests naming a validator.
    @param validatorAddress The validator.
    @param offset Position of the first request returned.
    @param limit Most requests returned (1 to 1000).
    @return The request hashes.
    """
    assert limit != 0 and limit <= MAX_PAGE, "validation: bad page size"
    return self._page(validatorAddress, offset, limit)


@view
@external
def getValidatorRequestCount(validatorAddress: address) -> uint256:
    """
    @notice How many requests name a validator.
    @param validatorAddress The validator.
    @return The count.
    """
    return self._validatorRequestCount[validatorAddress]


@view
@external
def computeRequestHash(
    validatorAddress: address, agentId: uint256, requestURI: String[MAX_URI_BYTES]
) -> bytes32:
    """
    @notice The requestHash a request must carry: keccak256(abi.encode(validator, agentId, requestURI)).
    @dev Commit to the request's content through the URI (an ipfs:// CID does so by itself).
    @param validatorAddress The validator.
    @param agentId The agent.
    @param requestURI The request's URI.
    @return The hash.
    """
    return self._request_hash(validatorAddress, agentId, requestURI)


@view
@external
def getIdentityRegistry() -> address:
    """
    @notice The identity registry whose agents are validated.
    @return The address.
    """
    return _IDENTITY.address


@pure
@internal
def _request_hash(validator: address, agent_id: uint256, request_uri: String[MAX_URI_BYTES]) -> bytes32:
    return keccak256(abi_encode(validator, agent_id, request_uri))


@view
@internal
def _tag_of(request_hash: bytes32, packed: uint256) -> String[MAX_TAG_BYTES]:
    length: uint256 = (packed >> _TAG_LENGTH_SHIFT) & 63
    if length == 0:
        return ""
    return convert(slice(self._tag[request_hash], 0, length), String[MAX_TAG_BYTES])


@view
@internal
def _latest(agent_id: uint256) -> DynArray[bytes32, AGENT_REQUEST_WINDOW]:
    made: uint256 = self._agentRequestCount[agent_id]
    first: uint256 = 0
    if made > AGENT_REQUEST_WINDOW:
        first = made - AGENT_REQUEST_WINDOW
    latest: DynArray[bytes32, AGENT_REQUEST_WINDOW] = []
    for position: uint256 in range(first, first + AGENT_REQUEST_WINDOW, bound=AGENT_REQUEST_WINDOW):
        if position >= made:
            break
        latest.append(self._agentRequests[agent_id][position % AGENT_REQUEST_WINDOW])
    return latest


@view
@internal
def _page(validator: address, offset: uint256, limit: uint256) -> DynArray[bytes32, MAX_PAGE]:
    count: uint256 = self._validatorRequestCount[validator]
    page: DynArray[bytes32, MAX_PAGE] = []
    if offset >= count:
        return page
    for i: uint256 in range(limit, bound=MAX_PAGE):
        if offset + i >= count:
            break
        page.append(self._validatorRequests[validator][offset + i])
    return page
