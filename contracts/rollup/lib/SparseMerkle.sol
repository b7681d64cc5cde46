// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

/// @title SparseMerkle
/// @notice Proofs of the L2 state tree (docs/l2-protocol.md §State tree): a compact binary sparse
///         Merkle tree over keccak256 whose single-leaf subtrees are the leaf itself.
/// @dev    Proof encoding: count(1) ‖ count siblings (32 each, root side first) ‖ terminal, the
///         terminal 0x00 (empty subtree) or 0x01 ‖ key(32) ‖ valueHash(32) (a leaf). The same
///         rules as `offchain/l2/smt.py`, held together by the shared test vectors.
library SparseMerkle {
    bytes32 internal constant EMPTY = bytes32(0);

    /// @notice Leaf hash: keccak256(0x00 ‖ key ‖ valueHash).
    function leafHash(bytes32 key, bytes32 valueHash) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore8(p, 0)
            mstore(add(p, 1), key)
            mstore(add(p, 33), valueHash)
            h := keccak256(p, 65)
        }
    }

    /// @notice Internal node hash: keccak256(0x01 ‖ left ‖ right).
    function nodeHash(bytes32 left, bytes32 right) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore8(p, 1)
            mstore(add(p, 1), left)
            mstore(add(p, 33), right)
            h := keccak256(p, 65)
        }
    }

    /// @notice Bit `d` of `key`, most significant first.
    function bit(bytes32 key, uint256 d) internal pure returns (uint256) {
        return (uint256(key) >> (255 - d)) & 1;
    }

    /// @notice Whether `proof` shows `key` holding `valueHash` (or, with `present` false, `key`
    ///         absent) under `root`. Reverts "smt: malformed proof" on bytes that are no proof.
    function verify(bytes32 root, bytes32 key, bool present, bytes32 valueHash, bytes calldata proof)
        internal
        pure
        returns (bool)
    {
        require(proof.length != 0, "smt: malformed proof");
        uint256 count = uint8(proof[0]);
        uint256 terminalAt = 1 + 32 * count;
        require(proof.length > terminalAt, "smt: malformed proof");
        uint8 terminal = uint8(proof[terminalAt]);
        bytes32 node;
        if (terminal == 0) {
            require(proof.length == terminalAt + 1, "smt: malformed proof");
            if (present) return false;
            node = EMPTY;
        } else {
            require(terminal == 1 && proof.length == terminalAt + 65, "smt: malformed proof");
            bytes32 leafKey = bytes32(proof[terminalAt + 1:terminalAt + 33]);
            bytes32 leafValue = bytes32(proof[terminalAt + 33:terminalAt + 65]);
            if (present) {
                if (leafKey != key || leafValue != valueHash) return false;
            } else {
                if (leafKey == key) return false;
                // The other leaf must share the path walked so far.
                if (count != 0 && (uint256(leafKey ^ key) >> (256 - count)) != 0) return false;
            }
            // A leaf whose deepest sibling is empty would sit higher in a compact tree.
            if (count != 0 && bytes32(proof[1 + 32 * (count - 1):1 + 32 * count]) == EMPTY) return false;
            node = leafHash(leafKey, leafValue);
        }
        for (uint256 i = count; i > 0; --i) {
            uint256 d = i - 1;
            bytes32 sibling = bytes32(proof[1 + 32 * d:33 + 32 * d]);
            // No node has two empty children.
            if (node == EMPTY && sibling == EMPTY) return false;
            node = bit(key, d) == 0 ? nodeHash(node, sibling) : nodeHash(sibling, node);
        }
        return node == root;
    }

    /// @notice The root once `key` holds `valueHash` (`present` false: deleted), from a proof of
    ///         `key` under the old root that `verify` accepted (docs/l2-protocol.md §rootAfter).
    ///         A deletion of a leaf that has siblings needs the hint of what its deepest sibling
    ///         is (`hintKind` 1: the leaf `hintA, hintB` = key, valueHash; 2: the internal node
    ///         `hintA, hintB` = left, right); every other change takes none (`hintKind` 0).
    ///         Reverts "smt: ..." on a missing, needless or wrong hint.
    function rootAfter(
        bytes calldata proof,
        bytes32 key,
        bool present,
        bytes32 valueHash,
        uint8 hintKind,
        bytes32 hintA,
        bytes32 hintB
    ) internal pure returns (bytes32) {
        uint256 count = uint8(proof[0]);
        uint256 terminalAt = 1 + 32 * count;
        bool terminalLeaf = uint8(proof[terminalAt]) == 1;
        bytes32 terminalKey = terminalLeaf ? bytes32(proof[terminalAt + 1:terminalAt + 33]) : bytes32(0);
        bool wasPresent = terminalLeaf && terminalKey == key;
        bool hintDue = wasPresent && !present && count != 0;
        if (hintDue) require(hintKind != 0, "smt: deletion needs a hint");
        else require(hintKind == 0, "smt: needless hint");

        if (present) {
            bytes32 leaf = leafHash(key, valueHash);
            if (!terminalLeaf || wasPresent) return _climb(proof, key, leaf, count); // insert into empty, overwrite
            // Insert beside another leaf: both hang below the first bit where their keys differ.
            bytes32 other = leafHash(terminalKey, bytes32(proof[terminalAt + 33:terminalAt + 65]));
            uint256 split = count;
            while (bit(key, split) == bit(terminalKey, split)) ++split; // the keys differ: verify saw to it
            bytes32 node = bit(key, split) == 0 ? nodeHash(leaf, other) : nodeHash(other, leaf);
            for (uint256 d = split; d > count; --d) {
                node = bit(key, d - 1) == 0 ? nodeHash(node, EMPTY) : nodeHash(EMPTY, node);
            }
            return _climb(proof, key, node, count);
        }
        if (!wasPresent) {
            // Absent stays absent (callers skip this case; kept total for safety).
            bytes32 node = terminalLeaf
                ? leafHash(terminalKey, bytes32(proof[terminalAt + 33:terminalAt + 65]))
                : EMPTY;
            return _climb(proof, key, node, count);
        }
        if (count == 0) return EMPTY; // the only leaf
        bytes32 deepest = _sibling(proof, count - 1);
        if (hintKind == 2) {
            require(nodeHash(hintA, hintB) == deepest, "smt: hint is not the deepest sibling");
            return _climb(proof, key, EMPTY, count); // the sibling subtree keeps two leaves or more
        }
        require(hintKind == 1 && leafHash(hintA, hintB) == deepest, "smt: hint is not the deepest sibling");
        // The sibling leaf is now alone: it moves up past every empty sibling above it.
        uint256 top = count - 1;
        while (top > 0 && _sibling(proof, top - 1) == EMPTY) --top;
        return _climb(proof, key, deepest, top);
    }

    /// @dev Sibling `d` of a proof (root side first).
    function _sibling(bytes calldata proof, uint256 d) private pure returns (bytes32) {
        return bytes32(proof[1 + 32 * d:33 + 32 * d]);
    }

    /// @dev The root above `node`, which sits at depth `depth` on `key`'s path, with the proof's
    ///      siblings `0 … depth-1`.
    function _climb(bytes calldata proof, bytes32 key, bytes32 node, uint256 depth) private pure returns (bytes32) {
        for (uint256 d = depth; d > 0; --d) {
            bytes32 sibling = _sibling(proof, d - 1);
            node = bit(key, d - 1) == 0 ? nodeHash(node, sibling) : nodeHash(sibling, node);
        }
        return node;
    }
}
