// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// Interfaces
import {IIdentityRegistry} from "../interfaces/IIdentityRegistry.sol";

/// @title ReputationRegistry
/// @notice ERC-8004 reputation registry (interface of the 25 Jan 2026 ERC text, contracts 2.0.0).
///         Clients leave signed-decimal feedback (value, valueDecimals) with two tags; anyone may
///         append responses; summaries are computed over a caller-chosen list of clients, which
///         is the standard's defence against Sybil reviewers.
/// @dev    Differences from the reference implementation, all deliberate:
///         - no owner, no proxy;
///         - tags, endpoint and URIs are bounded, and every read is bounded (clients per query,
///           feedback entries scanned per query, page sizes), with a clear revert past a bound;
///         - a client listed twice in a query is counted once;
///         - the agent's verified wallet may not review its own agent either;
///         - a summary that does not fit int128 reverts instead of wrapping.
///         Summary arithmetic: each value is scaled to 18 decimals, the mean is taken with
///         truncation toward zero, then scaled (again truncating) to the most frequent
///         valueDecimals among the counted entries, the lowest on a tie.
contract ReputationRegistry {
    /// @notice Most feedback entries one client may leave for one agent.
    uint64 public constant MAX_FEEDBACK_PER_CLIENT = 1000;

    /// @notice Longest tag, in bytes.
    uint256 public constant MAX_TAG_BYTES = 64;

    /// @notice Longest endpoint, in bytes.
    uint256 public constant MAX_ENDPOINT_BYTES = 512;

    /// @notice Longest feedback or response URI, in bytes.
    uint256 public constant MAX_URI_BYTES = 2048;

    /// @notice Largest valueDecimals.
    uint8 public constant MAX_VALUE_DECIMALS = 18;

    /// @notice Largest absolute feedback value (as the reference).
    int128 public constant MAX_ABS_VALUE = 1e38;

    /// @notice Most distinct clients (or responders) one query may name.
    uint256 public constant MAX_ADDRESSES_PER_QUERY = 100;

    /// @notice Most feedback entries (times responders, for response counts) one query may scan.
    uint256 public constant MAX_SCAN_PER_QUERY = 5000;

    /// @notice Largest page of `getClientsPage`, and the longest list `getClients` returns.
    uint256 public constant MAX_PAGE = 1000;

    /// @dev One feedback entry; value, decimals and the revoked flag share a slot.
    struct Feedback {
        int128 value;
        uint8 valueDecimals;
        bool isRevoked;
        string tag1;
        string tag2;
    }

    /// @dev The rows `readAllFeedback` returns, kept together to stay within the stack.
    struct Rows {
        address[] clients;
        uint64[] feedbackIndexes;
        int128[] values;
        uint8[] valueDecimals;
        string[] tag1s;
        string[] tag2s;
        bool[] revokedStatuses;
        uint256 length;
    }

    /// @dev The identity registry whose agents this registry rates.
    IIdentityRegistry private immutable _IDENTITY;

    /// @dev agentId => client => feedbackIndex (from 1) => entry.
    mapping(uint256 agentId => mapping(address client => mapping(uint64 index => Feedback))) private _feedback;

    /// @dev agentId => client => index of its latest entry (0: none yet).
    mapping(uint256 agentId => mapping(address client => uint64 index)) private _lastIndex;

    /// @dev agentId => clients in order of their first feedback.
    mapping(uint256 agentId => address[] clients) private _clients;

    /// @dev agentId => client => feedbackIndex => responses from anyone.
    mapping(uint256 agentId => mapping(address client => mapping(uint64 index => uint64 count))) private
        _responseTotal;

    /// @dev agentId => client => feedbackIndex => responder => responses from that responder.
    mapping(
        uint256 agentId => mapping(address client => mapping(uint64 index => mapping(address responder => uint64)))
    ) private _responseCount;

    /// @notice A client left feedback.
    event NewFeedback(
        uint256 indexed agentId,
        address indexed clientAddress,
        uint64 feedbackIndex,
        int128 value,
        uint8 valueDecimals,
        string indexed indexedTag1,
        string tag1,
        string tag2,
        string endpoint,
        string feedbackURI,
        bytes32 feedbackHash
    );

    /// @notice A client revoked one of its entries.
    event FeedbackRevoked(uint256 indexed agentId, address indexed clientAddress, uint64 indexed feedbackIndex);

    /// @notice Someone responded to a feedback entry.
    event ResponseAppended(
        uint256 indexed agentId,
        address indexed clientAddress,
        uint64 feedbackIndex,
        address indexed responder,
        string responseURI,
        bytes32 responseHash
    );

    /// @param identityRegistry_ The ERC-8004 identity registry.
    constructor(address identityRegistry_) {
        require(identityRegistry_.code.length != 0, "reputation: identity registry not a contract");
        _IDENTITY = IIdentityRegistry(identityRegistry_);
    }

    // -------------------------------------------------------------------------------------------
    // Writes
    // -------------------------------------------------------------------------------------------

    /// @notice Leaves feedback for an agent.
    /// @dev The agent's owner, approved address, operators and verified wallet may not.
    /// @param agentId The agent (must exist).
    /// @param value The rating as a signed decimal mantissa, |value| <= 1e38.
    /// @param valueDecimals Decimals of `value`, 0..18.
    /// @param tag1 First tag (at most 64 bytes).
    /// @param tag2 Second tag (at most 64 bytes).
    /// @param endpoint The endpoint rated (at most 512 bytes; emitted only).
    /// @param feedbackURI Off-chain feedback file (at most 2048 bytes; emitted only).
    /// @param feedbackHash Hash of that file (emitted only).
    function giveFeedback(
        uint256 agentId,
        int128 value,
        uint8 valueDecimals,
        string calldata tag1,
        string calldata tag2,
        string calldata endpoint,
        string calldata feedbackURI,
        bytes32 feedbackHash
    ) external {
        require(valueDecimals <= MAX_VALUE_DECIMALS, "reputation: too many decimals");
        require(value <= MAX_ABS_VALUE && value >= -MAX_ABS_VALUE, "reputation: value out of range");
        require(
            bytes(tag1).length <= MAX_TAG_BYTES && bytes(tag2).length <= MAX_TAG_BYTES, "reputation: tag too long"
        );
        require(bytes(endpoint).length <= MAX_ENDPOINT_BYTES, "reputation: endpoint too long");
        require(bytes(feedbackURI).length <= MAX_URI_BYTES, "reputation: uri too long");
        // Reverts with "identity: unknown agent" for an agent that does not exist.
        require(
            !_IDENTITY.isAuthorizedOrOwner(msg.sender, agentId) && _IDENTITY.getAgentWallet(agentId) != msg.sender,
            "reputation: self-feedback"
        );

        uint64 last = _lastIndex[agentId][msg.sender];
        require(last < MAX_FEEDBACK_PER_CLIENT, "reputation: feedback limit reached");
        if (last == 0) _clients[agentId].push(msg.sender);
        uint64 index = last + 1;
        _lastIndex[agentId][msg.sender] = index;

        Feedback storage entry = _feedback[agentId][msg.sender][index];
        entry.value = value;
        entry.valueDecimals = valueDecimals;
        if (bytes(tag1).length != 0) entry.tag1 = tag1;
        if (bytes(tag2).length != 0) entry.tag2 = tag2;

        emit NewFeedback(
            agentId, msg.sender, index, value, valueDecimals, tag1, tag1, tag2, endpoint, feedbackURI, feedbackHash
        );
    }

    /// @notice Revokes one of the caller's own feedback entries (it stays readable, marked revoked).
    /// @param agentId The agent.
    /// @param feedbackIndex The entry's index (from 1).
    function revokeFeedback(uint256 agentId, uint64 feedbackIndex) external {
        Feedback storage entry = _entry(agentId, msg.sender, feedbackIndex);
        require(!entry.isRevoked, "reputation: already revoked");
        entry.isRevoked = true;
        emit FeedbackRevoked(agentId, msg.sender, feedbackIndex);
    }

    /// @notice Appends a response to a feedback entry (anyone: the agent, an auditor, ...).
    /// @param agentId The agent.
    /// @param clientAddress The client who left the entry.
    /// @param feedbackIndex The entry's index.
    /// @param responseURI The response (1 to 2048 bytes).
    /// @param responseHash Hash of the response file.
    function appendResponse(
        uint256 agentId,
        address clientAddress,
        uint64 feedbackIndex,
        string calldata responseURI,
        bytes32 responseHash
    ) external {
        uint256 uriLength = bytes(responseURI).length;
        require(uriLength != 0 && uriLength <= MAX_URI_BYTES, "reputation: bad response uri");
        _entry(agentId, clientAddress, feedbackIndex);
        ++_responseTotal[agentId][clientAddress][feedbackIndex];
        ++_responseCount[agentId][clientAddress][feedbackIndex][msg.sender];
        emit ResponseAppended(agentId, clientAddress, feedbackIndex, msg.sender, responseURI, responseHash);
    }

    // -------------------------------------------------------------------------------------------
    // Reads
    // -------------------------------------------------------------------------------------------

    /// @notice The identity registry this registry rates agents of.
    /// @return The address.
    function getIdentityRegistry() external view returns (address) {
        return address(_IDENTITY);
    }

    /// @notice The summary of the non-revoked feedback from the given clients.
    /// @param agentId The agent.
    /// @param clientAddresses The clients to trust (1 to 100; duplicates count once).
    /// @param tag1 Only entries with this tag1 ("" for any).
    /// @param tag2 Only entries with this tag2 ("" for any).
    /// @return count Entries counted.
    /// @return summaryValue Their mean, at `summaryValueDecimals` decimals.
    /// @return summaryValueDecimals The most frequent decimals among them (lowest on a tie).
    function getSummary(uint256 agentId, address[] calldata clientAddresses, string calldata tag1, string calldata tag2)
        external
        view
        returns (uint64 count, int128 summaryValue, uint8 summaryValueDecimals)
    {
        require(clientAddresses.length != 0, "reputation: client list required");
        address[] memory clients = _distinct(clientAddresses);
        _requireScanWithin(agentId, clients, 1);
        bytes32 tag1Hash = _filterHash(tag1);
        bytes32 tag2Hash = _filterHash(tag2);

        int256 sum18;
        uint256[19] memory perDecimals;
        for (uint256 i; i < clients.length; ++i) {
            uint64 last = _lastIndex[agentId][clients[i]];
            for (uint64 j = 1; j <= last; ++j) {
                Feedback storage entry = _feedback[agentId][clients[i]][j];
                if (entry.isRevoked || !_matches(entry, tag1Hash, tag2Hash)) continue;
                sum18 += int256(entry.value) * int256(uint256(10) ** (18 - entry.valueDecimals));
                ++perDecimals[entry.valueDecimals];
                ++count;
            }
        }
        if (count == 0) return (0, 0, 0);

        for (uint8 d = 1; d <= MAX_VALUE_DECIMALS; ++d) {
            if (perDecimals[d] > perDecimals[summaryValueDecimals]) summaryValueDecimals = d;
        }
        int256 mean = (sum18 / int256(uint256(count))) / int256(uint256(10) ** (18 - summaryValueDecimals));
        require(mean >= type(int128).min && mean <= type(int128).max, "reputation: summary overflow");
        summaryValue = int128(mean);
    }

    /// @notice One feedback entry.
    /// @param agentId The agent.
    /// @param clientAddress The client.
    /// @param feedbackIndex The index (from 1).
    /// @return value The value.
    /// @return valueDecimals Its decimals.
    /// @return tag1 The first tag.
    /// @return tag2 The second tag.
    /// @return isRevoked Whether the client revoked it.
    function readFeedback(uint256 agentId, address clientAddress, uint64 feedbackIndex)
        external
        view
        returns (int128 value, uint8 valueDecimals, string memory tag1, string memory tag2, bool isRevoked)
    {
        Feedback storage entry = _entry(agentId, clientAddress, feedbackIndex);
        return (entry.value, entry.valueDecimals, entry.tag1, entry.tag2, entry.isRevoked);
    }

    /// @notice All feedback from the given clients (all the agent's clients if the list is empty).
    /// @dev Scans at most MAX_SCAN_PER_QUERY entries: past that, page with `getClientsPage` and
    ///      pass the clients page by page.
    /// @param agentId The agent.
    /// @param clientAddresses Clients (at most 100; duplicates count once), or empty.
    /// @param tag1 Only entries with this tag1 ("" for any).
    /// @param tag2 Only entries with this tag2 ("" for any).
    /// @param includeRevoked Whether to include revoked entries.
    /// @return clients Client of each row.
    /// @return feedbackIndexes Index of each row.
    /// @return values Value of each row.
    /// @return valueDecimals Decimals of each row.
    /// @return tag1s First tag of each row.
    /// @return tag2s Second tag of each row.
    /// @return revokedStatuses Revoked flag of each row.
    function readAllFeedback(
        uint256 agentId,
        address[] calldata clientAddresses,
        string calldata tag1,
        string calldata tag2,
        bool includeRevoked
    )
        external
        view
        returns (
            address[] memory clients,
            uint64[] memory feedbackIndexes,
            int128[] memory values,
            uint8[] memory valueDecimals,
            string[] memory tag1s,
            string[] memory tag2s,
            bool[] memory revokedStatuses
        )
    {
        address[] memory list = clientAddresses.length == 0 ? _allClients(agentId) : _distinct(clientAddresses);
        Rows memory rows = _newRows(_requireScanWithin(agentId, list, 1));
        bytes32 tag1Hash = _filterHash(tag1);
        bytes32 tag2Hash = _filterHash(tag2);
        for (uint256 i; i < list.length; ++i) {
            uint64 last = _lastIndex[agentId][list[i]];
            for (uint64 j = 1; j <= last; ++j) {
                Feedback storage entry = _feedback[agentId][list[i]][j];
                if ((entry.isRevoked && !includeRevoked) || !_matches(entry, tag1Hash, tag2Hash)) continue;
                _pushRow(rows, list[i], j, entry);
            }
        }
        _trimRows(rows);
        return (
            rows.clients,
            rows.feedbackIndexes,
            rows.values,
            rows.valueDecimals,
            rows.tag1s,
            rows.tag2s,
            rows.revokedStatuses
        );
    }

    /// @notice Counts responses.
    /// @dev clientAddress zero: over all the agent's clients; feedbackIndex zero: over all of the
    ///      client's entries; responders empty: from anyone (else only from those listed, once each).
    /// @param agentId The agent.
    /// @param clientAddress A client, or zero.
    /// @param feedbackIndex An entry, or zero.
    /// @param responders Responders to count (at most 100), or empty.
    /// @return count The number of responses.
    function getResponseCount(
        uint256 agentId,
        address clientAddress,
        uint64 feedbackIndex,
        address[] calldata responders
    ) external view returns (uint64 count) {
        address[] memory who = _distinct(responders);
        uint256 perEntry = who.length == 0 ? 1 : who.length;
        if (clientAddress != address(0) && feedbackIndex != 0) {
            return _responses(agentId, clientAddress, feedbackIndex, who);
        }
        address[] memory clients;
        if (clientAddress == address(0)) {
            clients = _allClients(agentId);
        } else {
            clients = new address[](1);
            clients[0] = clientAddress;
        }
        _requireScanWithin(agentId, clients, perEntry);
        for (uint256 i; i < clients.length; ++i) {
            uint64 last = _lastIndex[agentId][clients[i]];
            for (uint64 j = 1; j <= last; ++j) {
                count += _responses(agentId, clients[i], j, who);
            }
        }
    }

    /// @notice The agent's clients, in order of first feedback.
    /// @dev Reverts past 1000 clients: use `getClientsPage` then.
    /// @param agentId The agent.
    /// @return The clients.
    function getClients(uint256 agentId) external view returns (address[] memory) {
        require(_clients[agentId].length <= MAX_PAGE, "reputation: too many clients, use getClientsPage");
        return _clients[agentId];
    }

    /// @notice A page of the agent's clients.
    /// @param agentId The agent.
    /// @param offset Position of the first client returned.
    /// @param limit Most clients returned (1 to 1000).
    /// @return page The clients.
    function getClientsPage(uint256 agentId, uint256 offset, uint256 limit)
        external
        view
        returns (address[] memory page)
    {
        require(limit != 0 && limit <= MAX_PAGE, "reputation: bad page size");
        address[] storage all = _clients[agentId];
        uint256 end = offset + limit < all.length ? offset + limit : all.length;
        page = new address[](offset < end ? end - offset : 0);
        for (uint256 i; i < page.length; ++i) {
            page[i] = all[offset + i];
        }
    }

    /// @notice How many clients left feedback for the agent.
    /// @param agentId The agent.
    /// @return The count.
    function getClientCount(uint256 agentId) external view returns (uint256) {
        return _clients[agentId].length;
    }

    /// @notice The index of the client's latest entry for the agent (0: none).
    /// @param agentId The agent.
    /// @param clientAddress The client.
    /// @return The index.
    function getLastIndex(uint256 agentId, address clientAddress) external view returns (uint64) {
        return _lastIndex[agentId][clientAddress];
    }

    // -------------------------------------------------------------------------------------------
    // Internal
    // -------------------------------------------------------------------------------------------

    function _entry(uint256 agentId, address client, uint64 index) private view returns (Feedback storage) {
        require(index != 0 && index <= _lastIndex[agentId][client], "reputation: unknown feedback");
        return _feedback[agentId][client][index];
    }

    function _responses(uint256 agentId, address client, uint64 index, address[] memory who)
        private
        view
        returns (uint64 count)
    {
        if (who.length == 0) return _responseTotal[agentId][client][index];
        for (uint256 k; k < who.length; ++k) {
            count += _responseCount[agentId][client][index][who[k]];
        }
    }

    /// @dev The list without repeats (first occurrence kept), at most MAX_ADDRESSES_PER_QUERY long.
    function _distinct(address[] calldata list) private pure returns (address[] memory out) {
        require(list.length <= MAX_ADDRESSES_PER_QUERY, "reputation: too many addresses");
        out = new address[](list.length);
        uint256 n;
        for (uint256 i; i < list.length; ++i) {
            bool seen;
            for (uint256 k; k < n; ++k) {
                if (out[k] == list[i]) {
                    seen = true;
                    break;
                }
            }
            if (!seen) out[n++] = list[i];
        }
        assembly ("memory-safe") {
            mstore(out, n)
        }
    }

    /// @dev Every client of the agent; each has at least one entry, so the scan bound
    ///      (MAX_SCAN_PER_QUERY) that every caller applies bounds this list too.
    function _allClients(uint256 agentId) private view returns (address[] memory) {
        require(_clients[agentId].length <= MAX_SCAN_PER_QUERY, "reputation: query too large");
        return _clients[agentId];
    }

    /// @dev Reverts if the query would scan more than MAX_SCAN_PER_QUERY cells; returns the entries.
    function _requireScanWithin(uint256 agentId, address[] memory clients, uint256 perEntry)
        private
        view
        returns (uint256 entries)
    {
        for (uint256 i; i < clients.length; ++i) {
            entries += _lastIndex[agentId][clients[i]];
        }
        require(entries * perEntry <= MAX_SCAN_PER_QUERY, "reputation: query too large");
    }

    function _filterHash(string calldata tag) private pure returns (bytes32) {
        return bytes(tag).length == 0 ? bytes32(0) : keccak256(bytes(tag));
    }

    function _matches(Feedback storage entry, bytes32 tag1Hash, bytes32 tag2Hash) private view returns (bool) {
        return (tag1Hash == 0 || keccak256(bytes(entry.tag1)) == tag1Hash)
            && (tag2Hash == 0 || keccak256(bytes(entry.tag2)) == tag2Hash);
    }

    function _newRows(uint256 capacity) private pure returns (Rows memory rows) {
        rows.clients = new address[](capacity);
        rows.feedbackIndexes = new uint64[](capacity);
        rows.values = new int128[](capacity);
        rows.valueDecimals = new uint8[](capacity);
        rows.tag1s = new string[](capacity);
        rows.tag2s = new string[](capacity);
        rows.revokedStatuses = new bool[](capacity);
    }

    function _pushRow(Rows memory rows, address client, uint64 index, Feedback storage entry) private view {
        uint256 n = rows.length++;
        rows.clients[n] = client;
        rows.feedbackIndexes[n] = index;
        rows.values[n] = entry.value;
        rows.valueDecimals[n] = entry.valueDecimals;
        rows.tag1s[n] = entry.tag1;
        rows.tag2s[n] = entry.tag2;
        rows.revokedStatuses[n] = entry.isRevoked;
    }

    /// @dev Shortens the row arrays (allocated for every scanned entry) to the rows filled.
    function _trimRows(Rows memory rows) private pure {
        uint256 n = rows.length;
        address[] memory a = rows.clients;
        uint64[] memory b = rows.feedbackIndexes;
        int128[] memory c = rows.values;
        uint8[] memory d = rows.valueDecimals;
        string[] memory e = rows.tag1s;
        string[] memory f = rows.tag2s;
        bool[] memory g = rows.revokedStatuses;
        assembly ("memory-safe") {
            mstore(a, n)
            mstore(b, n)
            mstore(c, n)
            mstore(d, n)
            mstore(e, n)
            mstore(f, n)
            mstore(g, n)
        }
    }
}
