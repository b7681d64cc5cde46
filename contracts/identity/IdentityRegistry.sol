// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// Contracts
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

// Libraries
import {ERC721Utils} from "@openzeppelin/contracts/token/ERC721/utils/ERC721Utils.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title IdentityRegistry
/// @notice ERC-8004 identity registry (interface of the 25 Jan 2026 ERC text, contracts 2.0.0).
///         Each agent is an ERC-721 token: agentId is the tokenId, agentURI the tokenURI, which
///         points at the agent's registration file.
/// @dev    Differences from the reference implementation, all deliberate:
///         - no owner, no proxy, nothing upgradeable or seizable;
///         - agent ids start at 1, so that 0 always means "no agent" in other contracts;
///         - URIs, metadata keys, metadata values and metadata lists are bounded;
///         - the agent wallet is stored once (as an address) and served through the reserved
///           `agentWallet` metadata key, instead of being stored twice;
///         - every revert carries a reason string of the form "identity: ...".
contract IdentityRegistry is ERC721URIStorage, EIP712 {
    /// @notice One metadata entry given at registration.
    struct MetadataEntry {
        string metadataKey;
        bytes metadataValue;
    }

    /// @notice Longest agentURI accepted, in bytes (a registration file as a data: URI fits).
    uint256 public constant MAX_URI_BYTES = 8192;

    /// @notice Longest metadata key, in bytes.
    uint256 public constant MAX_METADATA_KEY_BYTES = 64;

    /// @notice Longest metadata value, in bytes.
    uint256 public constant MAX_METADATA_VALUE_BYTES = 1024;

    /// @notice Most metadata entries accepted by one `register` call.
    uint256 public constant MAX_METADATA_ENTRIES = 16;

    /// @notice Furthest a wallet proof's deadline may lie in the future (as the reference).
    uint256 public constant MAX_DEADLINE_DELAY = 5 minutes;

    /// @notice EIP-712 type of the proof that a wallet accepts to be an agent's wallet.
    bytes32 public constant AGENT_WALLET_SET_TYPEHASH =
        keccak256("AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)");

    /// @dev Hash of the reserved metadata key, which only `setAgentWallet` may change.
    bytes32 private constant _AGENT_WALLET_KEY_HASH = keccak256("agentWallet");

    /// @dev The id the next registered agent receives.
    uint256 private _nextAgentId = 1;

    /// @dev agentId => metadata key => value.
    mapping(uint256 agentId => mapping(string metadataKey => bytes metadataValue)) private _metadata;

    /// @dev agentId => verified wallet (zero when unset).
    mapping(uint256 agentId => address wallet) private _agentWallet;

    /// @notice An agent was registered.
    event Registered(uint256 indexed agentId, string agentURI, address indexed owner);

    /// @notice A metadata entry was set (`agentWallet` included).
    event MetadataSet(
        uint256 indexed agentId, string indexed indexedMetadataKey, string metadataKey, bytes metadataValue
    );

    /// @notice An agent's URI changed.
    event URIUpdated(uint256 indexed agentId, string newURI, address indexed updatedBy);

    constructor() ERC721("ERC-8004 Agent", "AGENT") EIP712("ERC8004IdentityRegistry", "1") {}

    // -------------------------------------------------------------------------------------------
    // Registration
    // -------------------------------------------------------------------------------------------

    /// @notice Registers a new agent owned by the caller, with no URI yet.
    /// @return agentId The new agent's id.
    function register() external returns (uint256 agentId) {
        agentId = _register("");
        _checkReceiver(agentId);
    }

    /// @notice Registers a new agent owned by the caller.
    /// @param agentURI Where the agent's registration file lives (ipfs://, https:// or data:).
    /// @return agentId The new agent's id.
    function register(string calldata agentURI) external returns (uint256 agentId) {
        agentId = _register(agentURI);
        _checkReceiver(agentId);
    }

    /// @notice Registers a new agent owned by the caller, with metadata entries.
    /// @param agentURI Where the agent's registration file lives.
    /// @param metadata Entries to set; the reserved `agentWallet` key is refused.
    /// @return agentId The new agent's id.
    function register(string calldata agentURI, MetadataEntry[] calldata metadata)
        external
        returns (uint256 agentId)
    {
        require(metadata.length <= MAX_METADATA_ENTRIES, "identity: too many metadata entries");
        agentId = _register(agentURI);
        for (uint256 i; i < metadata.length; ++i) {
            _setMetadata(agentId, metadata[i].metadataKey, metadata[i].metadataValue);
        }
        _checkReceiver(agentId);
    }

    /// @notice Points an agent at a new registration file.
    /// @dev Owner, approved address or operator only.
    /// @param agentId The agent.
    /// @param newURI The new agentURI.
    function setAgentURI(uint256 agentId, string calldata newURI) external {
        _requireAuthorized(agentId);
        require(bytes(newURI).length <= MAX_URI_BYTES, "identity: uri too long");
        _setTokenURI(agentId, newURI);
        emit URIUpdated(agentId, newURI, msg.sender);
    }

    // -------------------------------------------------------------------------------------------
    // Metadata
    // -------------------------------------------------------------------------------------------

    /// @notice Sets one metadata entry of an agent.
    /// @dev Owner, approved address or operator only; `agentWallet` is reserved.
    /// @param agentId The agent.
    /// @param metadataKey A key of 1 to 64 bytes.
    /// @param metadataValue A value of at most 1024 bytes; empty clears the entry.
    function setMetadata(uint256 agentId, string calldata metadataKey, bytes calldata metadataValue) external {
        _requireAuthorized(agentId);
        _setMetadata(agentId, metadataKey, metadataValue);
    }

    /// @notice Reads one metadata entry; `agentWallet` gives the wallet's 20 bytes (empty if unset).
    /// @param agentId The agent (must exist).
    /// @param metadataKey The key.
    /// @return The value, empty if never set.
    function getMetadata(uint256 agentId, string calldata metadataKey) external view returns (bytes memory) {
        _requireAgent(agentId);
        if (keccak256(bytes(metadataKey)) == _AGENT_WALLET_KEY_HASH) {
            return _walletBytes(_agentWallet[agentId]);
        }
        return _metadata[agentId][metadataKey];
    }

    // -------------------------------------------------------------------------------------------
    // Agent wallet
    // -------------------------------------------------------------------------------------------

    /// @notice Sets the wallet where the agent receives payments, with the wallet's consent.
    /// @dev Owner, approved address or operator only. The wallet signs the EIP-712 struct
    ///      AgentWalletSet(agentId, newWallet, owner, deadline): an EOA with ECDSA, a contract
    ///      wallet through ERC-1271. Binding the current owner makes a proof useless after a
    ///      transfer; the deadline must lie within 5 minutes from now.
    /// @param agentId The agent.
    /// @param newWallet The wallet (not zero).
    /// @param deadline Last timestamp at which the proof is valid.
    /// @param signature The wallet's signature (65-byte ECDSA, or whatever its ERC-1271 accepts).
    function setAgentWallet(uint256 agentId, address newWallet, uint256 deadline, bytes calldata signature)
        external
    {
        require(newWallet != address(0), "identity: zero wallet");
        require(block.timestamp <= deadline, "identity: proof expired");
        require(deadline <= block.timestamp + MAX_DEADLINE_DELAY, "identity: deadline too far");
        address owner = _requireAuthorized(agentId);
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(AGENT_WALLET_SET_TYPEHASH, agentId, newWallet, owner, deadline)));
        require(SignatureChecker.isValidSignatureNow(newWallet, digest, signature), "identity: bad wallet proof");
        _setWallet(agentId, newWallet);
    }

    /// @notice Clears the agent's wallet.
    /// @dev Owner, approved address or operator only.
    /// @param agentId The agent.
    function unsetAgentWallet(uint256 agentId) external {
        _requireAuthorized(agentId);
        _setWallet(agentId, address(0));
    }

    /// @notice The agent's verified wallet, zero if unset.
    /// @param agentId The agent (must exist).
    /// @return The wallet.
    function getAgentWallet(uint256 agentId) external view returns (address) {
        _requireAgent(agentId);
        return _agentWallet[agentId];
    }

    // -------------------------------------------------------------------------------------------
    // Views for other registries
    // -------------------------------------------------------------------------------------------

    /// @notice Whether `spender` is the agent's owner, its approved address or an operator.
    /// @param spender The address to check.
    /// @param agentId The agent (must exist).
    /// @return True if `spender` may act for the agent.
    function isAuthorizedOrOwner(address spender, uint256 agentId) external view returns (bool) {
        address owner = _requireAgent(agentId);
        return _isAuthorized(owner, spender, agentId);
    }

    /// @notice The number of agents registered so far (ids run from 1 to this number).
    /// @return The count.
    function agentCount() external view returns (uint256) {
        return _nextAgentId - 1;
    }

    // -------------------------------------------------------------------------------------------
    // Internal
    // -------------------------------------------------------------------------------------------

    function _register(string memory agentURI) private returns (uint256 agentId) {
        require(bytes(agentURI).length <= MAX_URI_BYTES, "identity: uri too long");
        agentId = _nextAgentId++;
        // Mint first so that Transfer precedes Registered, as in the reference. The receiver
        // hook of a contract caller runs only once the agent is complete (`_checkReceiver`):
        // were it called here, it could move the agent away before its wallet and metadata
        // are written.
        _mint(msg.sender, agentId);
        if (bytes(agentURI).length != 0) _setTokenURI(agentId, agentURI);
        emit Registered(agentId, agentURI, msg.sender);
        _setWallet(agentId, msg.sender);
    }

    /// @dev ERC-721 safe-mint semantics, run last: a contract caller must accept the agent.
    function _checkReceiver(uint256 agentId) private {
        ERC721Utils.checkOnERC721Received(msg.sender, address(0), msg.sender, agentId, "");
    }

    function _setMetadata(uint256 agentId, string calldata key, bytes calldata value) private {
        uint256 keyLength = bytes(key).length;
        require(keyLength != 0 && keyLength <= MAX_METADATA_KEY_BYTES, "identity: bad metadata key");
        require(value.length <= MAX_METADATA_VALUE_BYTES, "identity: metadata value too long");
        require(keccak256(bytes(key)) != _AGENT_WALLET_KEY_HASH, "identity: reserved key");
        _metadata[agentId][key] = value;
        emit MetadataSet(agentId, key, key, value);
    }

    function _setWallet(uint256 agentId, address wallet) private {
        _agentWallet[agentId] = wallet;
        emit MetadataSet(agentId, "agentWallet", "agentWallet", _walletBytes(wallet));
    }

    /// @dev Clears the wallet whenever the agent changes hands: the new owner must prove one anew.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && _agentWallet[tokenId] != address(0)) _setWallet(tokenId, address(0));
    }

    function _requireAgent(uint256 agentId) private view returns (address owner) {
        owner = _ownerOf(agentId);
        require(owner != address(0), "identity: unknown agent");
    }

    function _requireAuthorized(uint256 agentId) private view returns (address owner) {
        owner = _requireAgent(agentId);
        require(_isAuthorized(owner, msg.sender, agentId), "identity: not authorized");
    }

    function _walletBytes(address wallet) private pure returns (bytes memory) {
        return wallet == address(0) ? bytes("") : abi.encodePacked(wallet);
    }
}
