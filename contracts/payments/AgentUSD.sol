// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

// Contracts
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC3009} from "@openzeppelin/contracts/token/ERC20/extensions/draft-ERC3009.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

// Libraries
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title AgentUSD
/// @notice A USDC-like dollar for agents: 6 decimals, ERC-20, EIP-2612 `permit`, and EIP-3009
///         transfers by signature (the base of x402 `exact` payments), with both the v,r,s and
///         the `bytes signature` forms. The `bytes` forms accept ERC-1271 contract wallets.
///         Minting is by MINTER_ROLE (the demo faucet); nothing else is privileged.
/// @dev    Built on OpenZeppelin's ERC20, ERC20Permit, AccessControl and draft ERC3009 (random
///         32-byte nonces, as x402 clients sign them); reverts are OpenZeppelin's custom errors
///         (`ERC3009InvalidSignature`, `ERC3009InvalidAuthorizationTime`,
///         `ERC3009UsedAuthorization`, `ERC20InsufficientBalance`, ...). The EIP-712 domain is
///         (name "Agent USD", version "1", chainId, this address); `version()` returns it so
///         that clients read the domain on chain instead of guessing it. Validity windows are
///         always Unix seconds, as in USDC (OpenZeppelin's block-number mode is switched off).
contract AgentUSD is ERC20, ERC20Permit, ERC3009, AccessControl {
    /// @notice Role allowed to mint.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice EIP-712 domain version (also the `extra.version` of x402 requirements).
    string public constant VERSION = "1";

    /// @param admin Holds DEFAULT_ADMIN_ROLE and MINTER_ROLE at the start.
    constructor(address admin) ERC20("Agent USD", "AUSD") ERC20Permit("Agent USD") {
        require(admin != address(0), "agentusd: zero admin");
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice Six decimals, as USDC.
    /// @return 6
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice The EIP-712 domain version.
    /// @return "1"
    function version() external pure returns (string memory) {
        return VERSION;
    }

    /// @notice Mints `amount` to `to`.
    /// @param to The receiver.
    /// @param amount The amount, in 1e-6 units.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @notice EIP-3009 transfer by signature, `bytes` form (ECDSA for EOAs, ERC-1271 for contracts).
    /// @param from The payer, who signed.
    /// @param to The payee.
    /// @param value The amount.
    /// @param validAfter Valid strictly after this timestamp.
    /// @param validBefore Valid strictly before this timestamp.
    /// @param nonce A unique 32-byte nonce chosen by the payer.
    /// @param signature The payer's signature of the EIP-712 TransferWithAuthorization struct.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        _requireSigned(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature);
        _transferWithAuthorization(from, to, value, validAfter, validBefore, nonce);
    }

    /// @notice EIP-3009 receive by signature, `bytes` form: only the payee may submit it, so no
    ///         one can front-run the payee's own call.
    /// @param from The payer, who signed.
    /// @param to The payee, who must be the caller.
    /// @param value The amount.
    /// @param validAfter Valid strictly after this timestamp.
    /// @param validBefore Valid strictly before this timestamp.
    /// @param nonce A unique 32-byte nonce chosen by the payer.
    /// @param signature The payer's signature of the EIP-712 ReceiveWithAuthorization struct.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        _requireSigned(RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature);
        require(to == _msgSender(), ERC20InvalidReceiver(to));
        _transferWithAuthorization(from, to, value, validAfter, validBefore, nonce);
    }

    /// @notice EIP-3009 cancellation, `bytes` form: burns an unused nonce.
    /// @param authorizer Whose nonce.
    /// @param nonce The nonce.
    /// @param signature The authorizer's signature of the EIP-712 CancelAuthorization struct.
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes calldata signature) external {
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)));
        require(
            SignatureChecker.isValidSignatureNowCalldata(authorizer, digest, signature), ERC3009InvalidSignature()
        );
        _cancelAuthorization(authorizer, nonce);
    }

    /// @notice The validity window of every EIP-3009 authorization is in seconds, as in USDC: valid
    ///         when `validAfter < block.timestamp < validBefore`, whatever bits the bounds carry.
    /// @dev    Overrides OpenZeppelin's draft ERC3009, which reads the window as block numbers when
    ///         both bounds have bit 47 set (an ERC-4337-style clock flag). x402 clients sign
    ///         timestamps only, and a payer must not find an authorization valid by another clock.
    ///         Reverts with `ERC3009InvalidAuthorizationTime(validAfter, validBefore)` outside it.
    /// @param validAfter Valid strictly after this Unix time (seconds).
    /// @param validBefore Valid strictly before this Unix time (seconds).
    function _checkValidity(uint256 validAfter, uint256 validBefore) internal view override {
        require(
            block.timestamp > validAfter && block.timestamp < validBefore,
            ERC3009InvalidAuthorizationTime(validAfter, validBefore)
        );
    }

    /// @dev Reverts unless `from` signed the EIP-712 authorization struct of `typehash`
    ///      (ECDSA for an EOA, ERC-1271 for a contract).
    function _requireSigned(
        bytes32 typehash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) private view {
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce)));
        require(SignatureChecker.isValidSignatureNowCalldata(from, digest, signature), ERC3009InvalidSignature());
    }
}
