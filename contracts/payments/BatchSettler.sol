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
///         no balance, a payer's wallet that burns its gas) is skipped and reported; the others
///         settle. One hostile payer never stops the others.
/// @dev    Holds nothing and has no owner: it only forwards signed authorizations, which anyone
///         may submit to the token directly anyway.
///
///         Gas: each authorization carries the gas its token call gets (`gasLimit`), chosen by the
///         submitter from its own estimate of that authorization. The call gets exactly that much
///         (an out-of-gas inside `try` is caught only when the call had a cap of its own), so a
///         payer's ERC-1271 wallet that costs more when it runs than when it was estimated burns
///         its own allowance and fails alone, and a valid wallet whose check is costly (a P-256 /
///         WebAuthn wallet, ~240k gas) settles when its allowance covers it. When the gas left
///         cannot give an authorization its full allowance, that authorization is skipped with
///         `SettlerGasShort` as its reason (never misreported as a bad signature) and the batch
///         goes on; the submitter settles it again on its own. A submitter that gives the
///         transaction `gasNeeded` of every authorization plus the base never sees such a skip.
contract BatchSettler {
    /// @notice One signed EIP-3009 transfer, with the gas its token call gets.
    struct Authorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
        uint256 gasLimit;
        bytes signature;
    }

    /// @notice Most authorizations in one batch.
    uint256 public constant MAX_BATCH = 256;

    /// @notice Gas an authorization needs besides its `gasLimit`: encoding the call, the EIP-150
    ///         1/64 kept back, reading the result and reporting it.
    uint256 public constant CALL_OVERHEAD = 20_000;

    /// @notice The reason data of an authorization skipped because the gas left (`gasLeft`) could
    ///         not give its call the `needed` gas; it did not run and can be settled again.
    error SettlerGasShort(uint256 needed, uint256 gasLeft);

    /// @notice Authorization `index` of a batch did not settle; `reason` is the token's revert data
    ///         (empty when the call ran out of its gas), or `SettlerGasShort` when it did not run.
    event AuthorizationSkipped(
        address indexed token, uint256 index, address indexed from, bytes32 indexed nonce, bytes reason
    );

    /// @notice A batch was processed.
    event BatchSettled(address indexed token, uint256 settled, uint256 skipped);

    /// @notice Gas an authorization with `gasLimit` needs left when its turn comes.
    /// @param gasLimit The gas its token call gets.
    /// @return The gas left that guarantees the call its full `gasLimit`.
    function gasNeeded(uint256 gasLimit) public pure returns (uint256) {
        return gasLimit + gasLimit / 63 + CALL_OVERHEAD;
    }

    /// @notice Submits each authorization to `token` with its own gas; failures are skipped, not fatal.
    /// @dev    Reverts "settler: bad batch size" (0 or more than MAX_BATCH authorizations) and
    ///         "settler: token not a contract"; nothing else reverts it but running out of the
    ///         transaction's own gas.
    /// @param token The EIP-3009 token.
    /// @param authorizations The signed transfers (1 to 256), each with its gas.
    /// @return settled For each authorization, whether it settled.
    function settle(IEIP3009 token, Authorization[] calldata authorizations) external returns (bool[] memory settled) {
        uint256 n = authorizations.length;
        require(n != 0 && n <= MAX_BATCH, "settler: bad batch size");
        require(address(token).code.length != 0, "settler: token not a contract");
        settled = new bool[](n);
        uint256 count;
        for (uint256 i; i < n; ++i) {
            Authorization calldata a = authorizations[i];
            uint256 needed = gasNeeded(a.gasLimit);
            // With less gas left, the capped call could fail for want of gas rather than for its
            // own reasons: do not run it, say so, and go on with the others.
            if (gasleft() < needed) {
                emit AuthorizationSkipped(
                    address(token), i, a.from, a.nonce, abi.encodeWithSelector(SettlerGasShort.selector, needed, gasleft())
                );
                continue;
            }
            try token.transferWithAuthorization{gas: a.gasLimit}(
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
