// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

/// @notice The EIP-3009 function the settler calls (`bytes signature` form).
interface IEIP3009 {
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;
}

/// @title BatchSettler
/// @notice Settles many EIP-3009 authorizations of one token in one transaction. An
///         authorization that fails (used or cancelled nonce, outside its window, bad signature,
///         no balance) is skipped and reported; the others settle.
/// @dev    Holds nothing and has no owner: it only forwards signed authorizations, which anyone
///         may submit to the token directly anyway.
contract BatchSettler {
    /// @notice One signed EIP-3009 transfer.
    struct Authorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
        bytes signature;
    }

    /// @notice Most authorizations in one batch.
    uint256 public constant MAX_BATCH = 256;

    /// @notice Gas each authorization may use: a payer's ERC-1271 wallet that burns more fails
    ///         alone instead of sinking the batch (an out-of-gas inside `try` is caught only
    ///         when the call had a cap of its own).
    uint256 public constant MAX_GAS_PER_AUTHORIZATION = 200_000;

    /// @notice Authorization `index` of a batch did not settle; `reason` is the token's revert data.
    event AuthorizationSkipped(
        address indexed token, uint256 index, address indexed from, bytes32 indexed nonce, bytes reason
    );

    /// @notice A batch was processed.
    event BatchSettled(address indexed token, uint256 settled, uint256 skipped);

    /// @notice Submits each authorization to `token`; failures are skipped, not fatal.
    /// @param token The EIP-3009 token.
    /// @param authorizations The signed transfers (1 to 256).
    /// @return settled For each authorization, whether it settled.
    function settle(IEIP3009 token, Authorization[] calldata authorizations) external returns (bool[] memory settled) {
        uint256 n = authorizations.length;
        require(n != 0 && n <= MAX_BATCH, "settler: bad batch size");
        require(address(token).code.length != 0, "settler: token not a contract");
        settled = new bool[](n);
        uint256 count;
        for (uint256 i; i < n; ++i) {
            Authorization calldata a = authorizations[i];
            // With less gas left, the capped call below could fail for want of gas rather than
            // for its own reasons: stop the whole batch instead of misreporting a skip.
            require(gasleft() > MAX_GAS_PER_AUTHORIZATION + MAX_GAS_PER_AUTHORIZATION / 63 + 20_000, "settler: out of gas");
            try token.transferWithAuthorization{gas: MAX_GAS_PER_AUTHORIZATION}(
                a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, a.signature
            ) {
                settled[i] = true;
                ++count;
            } catch (bytes memory reason) {
                emit AuthorizationSkipped(address(token), i, a.from, a.nonce, reason);
            }
        }
        emit BatchSettled(address(token), count, n - count);
    }
}
