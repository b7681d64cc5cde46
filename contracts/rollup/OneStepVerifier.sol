// SPDX-License-Identifier: MIT
pragma solidity ^0.8.26;

// Libraries
import {SparseMerkle} from "./lib/SparseMerkle.sol";

/// @title OneStepVerifier
/// @notice The last step of a dispute: one L2 transaction of a posted batch, replayed on L1 from
///         the agreed state root and a witness of the leaves it touches (docs/l2-protocol.md
///         §One-step proof). It checks the batch, the transaction's inclusion and the witness,
///         runs the transaction as the STF does, and returns its status and the true post-state
///         root.
/// @dev    Pure and stateless: one deployment serves every rollup (the dispute game passes its
///         chain id and inbox). The same rules as `offchain/l2/onestep.py`, held together by the
///         shared vectors. A proof that does not show what it claims reverts with a
///         "verifier: ..." or "smt: ..." reason naming the check that failed; it decides nothing.
contract OneStepVerifier {
    /// @dev A witness entry, decoded: the leaf's pre-state value and where its proof and hint are.
    struct Entry {
        bytes32 key;
        bool present;
        bytes32 valueHash;
        uint256 number; // the value as an unsigned integer (values of up to 32 bytes)
        bool numeric;
        uint256 proofStart;
        uint256 proofEnd;
        uint8 hintKind;
        bytes32 hintA;
        bytes32 hintB;
    }

    /// @dev A transaction run against a witness: what it read and what it writes.
    struct Run {
        Entry[] entries;
        uint256 readMask; // bit j: entry j was read
        bytes32[4] writeKeys;
        uint256[4] writeNumbers; // a number of `writeWidths` bytes (0: delete the leaf)
        uint256[4] writeWidths; // 0: `writeHashes` holds the new value's hash instead
        bytes32[4] writeHashes;
        uint256 writeCount;
    }

    /// @dev The transaction, decoded from its record (fields a kind lacks stay zero).
    struct Tx {
        uint8 kind;
        address from;
        address to;
        address token;
        uint256 amount;
        uint256 fee;
        uint256 nonce; // Transfer, Withdraw: 8 bytes; Deposit: its index
        bytes32 authNonce; // TransferWithAuthorization: 32 bytes
        uint256 validAfter;
        uint256 validBefore;
        address recipient;
        uint256 signatureAt; // offset of r ‖ s ‖ v in the proof
    }

    /// @notice Receipt statuses (docs/l2-protocol.md §Effects).
    uint8 public constant OK = 0;
    uint8 public constant BAD_SIGNATURE = 1;
    uint8 public constant BAD_NONCE = 2;
    uint8 public constant INSUFFICIENT_BALANCE = 3;
    uint8 public constant NOT_YET_VALID = 4;
    uint8 public constant EXPIRED = 5;
    uint8 public constant AUTHORIZATION_USED = 6;
    uint8 public constant BAD_DEPOSIT_INDEX = 7;

    /// @notice Length of a batch hash preimage: previous ‖ dataHash ‖ txRoot ‖ txCount(4) ‖ poster.
    uint256 public constant PREIMAGE_LENGTH = 120;

    /// @notice The longest leaf value (a withdrawal: token ‖ amount ‖ recipient).
    uint256 public constant MAX_VALUE = 56;

    uint8 private constant _DEPOSIT = 1;
    uint8 private constant _TRANSFER = 2;
    uint8 private constant _AUTHORIZATION = 3;
    uint8 private constant _WITHDRAW = 4;

    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant _TRANSFER_TYPEHASH =
        keccak256("Transfer(address from,address to,address token,uint256 amount,uint256 fee,uint64 nonce)");
    bytes32 private constant _WITHDRAW_TYPEHASH =
        keccak256("Withdraw(address from,address token,uint256 amount,uint256 fee,address recipient,uint64 nonce)");
    bytes32 private constant _AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 private constant _ROLLUP_NAME_HASH = keccak256("Agent L2");
    bytes32 private constant _TOKEN_NAME_HASH = keccak256("Agent L2 Token");
    bytes32 private constant _VERSION_HASH = keccak256("1");
    bytes32 private constant _DEPOSITS_KEY = keccak256(hex"05");
    uint256 private constant _N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 private constant _HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 private constant _MAX_U64 = type(uint64).max;

    /// @notice Replays transaction `disputedIndex` of a batch from `agreedRoot`.
    /// @param batchHash The batch's hash as the inbox stored it.
    /// @param preimage Its preimage (PREIMAGE_LENGTH bytes): gives the tx root, the count and the poster.
    /// @param disputedIndex The transaction the dispute narrowed to.
    /// @param agreedRoot The state root before it.
    /// @param chainId The rollup's L2 chain id.
    /// @param inbox The rollup's inbox (the signing domain of Transfer and Withdraw).
    /// @param proof index(4) ‖ timestamp(8) ‖ record ‖ txProof ‖ witness.
    /// @return status The transaction's receipt status.
    /// @return postRoot The state root after it.
    function verifyStep(
        bytes32 batchHash,
        bytes calldata preimage,
        uint256 disputedIndex,
        bytes32 agreedRoot,
        uint64 chainId,
        address inbox,
        bytes calldata proof
    ) external pure returns (uint8 status, bytes32 postRoot) {
        // 1. The batch and the index.
        require(
            preimage.length == PREIMAGE_LENGTH && keccak256(preimage) == batchHash, "verifier: bad batch preimage"
        );
        require(proof.length >= 13, "verifier: proof too short");
        require(uint32(bytes4(proof[0:4])) == disputedIndex, "verifier: not the disputed index");
        bytes32 txRoot = bytes32(preimage[64:96]);
        uint256 txCount = uint32(bytes4(preimage[96:100]));
        address poster = address(bytes20(preimage[100:120]));
        uint64 timestamp = uint64(bytes8(proof[4:12]));

        // 2. The transaction is number `disputedIndex` under the tx root.
        uint256 recordEnd = 12 + _recordLength(uint8(proof[12]));
        require(recordEnd < proof.length, "verifier: proof ends in its record");
        uint256 witnessAt = _checkInclusion(proof, recordEnd, txRoot, txCount, disputedIndex, timestamp);

        // 3. The transaction on the witness.
        Tx memory t = _decodeRecord(proof, recordEnd);
        Run memory run;
        run.entries = _decodeWitness(proof, witnessAt);
        status = _apply(run, t, proof, chainId, inbox, timestamp, poster);
        postRoot = _recompute(run, agreedRoot, proof);
    }

    // -------------------------------------------------------------------------------------------
    // Inclusion
    // -------------------------------------------------------------------------------------------

    /// @dev Checks `timestamp ‖ record` is leaf `index` under `txRoot` (a tree of `n` leaves);
    ///      returns where the witness starts.
    function _checkInclusion(
        bytes calldata proof,
        uint256 recordEnd,
        bytes32 txRoot,
        uint256 n,
        uint256 index,
        uint64 timestamp
    ) private pure returns (uint256 witnessAt) {
        require(index < n, "verifier: index out of range");
        uint256 count = uint8(proof[recordEnd]);
        uint256 depth;
        while ((uint256(1) << depth) < n) ++depth;
        require(count == depth, "verifier: bad inclusion proof");
        witnessAt = recordEnd + 1 + 32 * count;
        require(witnessAt <= proof.length, "verifier: proof ends in its tx proof");
        bytes32 node = keccak256(abi.encodePacked(timestamp, proof[12:recordEnd]));
        for (uint256 d = 0; d < count; ++d) {
            bytes32 sibling = bytes32(proof[recordEnd + 1 + 32 * d:recordEnd + 33 + 32 * d]);
            node = (index >> d) & 1 == 0
                ? keccak256(abi.encodePacked(node, sibling))
                : keccak256(abi.encodePacked(sibling, node));
        }
        require(node == txRoot, "verifier: bad inclusion proof");
    }

    // -------------------------------------------------------------------------------------------
    // Decoding
    // -------------------------------------------------------------------------------------------

    function _recordLength(uint8 kind) private pure returns (uint256) {
        if (kind == _DEPOSIT) return 65;
        if (kind == _TRANSFER || kind == _WITHDRAW) return 166;
        if (kind == _AUTHORIZATION) return 190;
        revert("verifier: unknown record kind");
    }

    /// @dev The record at proof[12:end] (its length already matches its kind).
    function _decodeRecord(bytes calldata proof, uint256 end) private pure returns (Tx memory t) {
        bytes calldata r = proof[12:end];
        t.kind = uint8(r[0]);
        if (t.kind == _DEPOSIT) {
            t.nonce = uint64(bytes8(r[1:9]));
            t.to = address(bytes20(r[9:29]));
            t.token = address(bytes20(r[29:49]));
            t.amount = uint128(bytes16(r[49:65]));
            return t;
        }
        t.from = address(bytes20(r[1:21]));
        if (t.kind == _WITHDRAW) {
            t.token = address(bytes20(r[21:41]));
            t.amount = uint128(bytes16(r[41:57]));
            t.fee = uint128(bytes16(r[57:73]));
            t.recipient = address(bytes20(r[73:93]));
            t.nonce = uint64(bytes8(r[93:101]));
            t.signatureAt = 12 + 101;
            return t;
        }
        t.to = address(bytes20(r[21:41]));
        t.token = address(bytes20(r[41:61]));
        t.amount = uint128(bytes16(r[61:77]));
        if (t.kind == _TRANSFER) {
            t.fee = uint128(bytes16(r[77:93]));
            t.nonce = uint64(bytes8(r[93:101]));
            t.signatureAt = 12 + 101;
        } else {
            t.validAfter = uint64(bytes8(r[77:85]));
            t.validBefore = uint64(bytes8(r[85:93]));
            t.authNonce = bytes32(r[93:125]);
            t.signatureAt = 12 + 125;
        }
    }

    /// @dev The witness at proof[at:] (docs/l2-protocol.md §Decoding), with every rejection.
    function _decodeWitness(bytes calldata proof, uint256 at) private pure returns (Entry[] memory entries) {
        require(at < proof.length, "verifier: empty witness");
        uint256 count = uint8(proof[at]);
        entries = new Entry[](count);
        uint256 offset = at + 1;
        for (uint256 j = 0; j < count; ++j) {
            Entry memory e = entries[j];
            require(offset + 33 <= proof.length, "verifier: witness truncated");
            e.key = bytes32(proof[offset:offset + 32]);
            if (j != 0) {
                require(uint256(e.key) > uint256(entries[j - 1].key), "verifier: witness keys not ascending");
            }
            uint256 length = uint8(proof[offset + 32]);
            require(length <= MAX_VALUE, "verifier: witness value too long");
            offset += 33;
            require(offset + length <= proof.length, "verifier: witness truncated");
            if (length != 0) {
                e.present = true;
                e.valueHash = keccak256(proof[offset:offset + length]);
                if (length <= 32) {
                    e.numeric = true;
                    e.number = uint256(bytes32(proof[offset:offset + length])) >> (8 * (32 - length));
                }
            }
            offset += length;
            // The proof: count ‖ siblings ‖ terminal (0x00, or 0x01 ‖ key ‖ valueHash).
            require(offset < proof.length, "verifier: witness truncated");
            e.proofStart = offset;
            offset += 1 + 32 * uint256(uint8(proof[offset])); // in uint8, 8 siblings or more overflowed
            require(offset < proof.length, "verifier: witness truncated");
            uint8 terminal = uint8(proof[offset]);
            require(terminal <= 1, "verifier: bad proof terminal");
            offset += terminal == 0 ? 1 : 65;
            e.proofEnd = offset;
            // The hint: 0x00, or 0x01 / 0x02 ‖ 64 bytes.
            require(offset < proof.length, "verifier: witness truncated");
            e.hintKind = uint8(proof[offset]);
            require(e.hintKind <= 2, "verifier: bad hint kind");
            offset += 1;
            if (e.hintKind != 0) {
                require(offset + 64 <= proof.length, "verifier: witness truncated");
                e.hintA = bytes32(proof[offset:offset + 32]);
                e.hintB = bytes32(proof[offset + 32:offset + 64]);
                offset += 64;
            }
        }
        require(offset == proof.length, "verifier: bytes after the witness");
    }

    // -------------------------------------------------------------------------------------------
    // The state transition (docs/l2-protocol.md §Effects)
    // -------------------------------------------------------------------------------------------

    function _apply(
        Run memory run,
        Tx memory t,
        bytes calldata proof,
        uint64 chainId,
        address inbox,
        uint64 timestamp,
        address poster
    ) private pure returns (uint8) {
        if (t.kind == _DEPOSIT) {
            if (t.nonce != _readNumber(run, _DEPOSITS_KEY)) return BAD_DEPOSIT_INDEX;
            _credit(run, _balanceKey(t.to, t.token), t.amount);
            _write(run, _DEPOSITS_KEY, t.nonce + 1, 8);
            return OK;
        }
        if (!_signedBySender(t, proof, chainId, inbox)) return BAD_SIGNATURE;
        if (t.kind == _AUTHORIZATION) {
            if (!(t.validAfter < timestamp)) return NOT_YET_VALID;
            if (!(timestamp < t.validBefore)) return EXPIRED;
            bytes32 used = keccak256(abi.encodePacked(uint8(3), t.from, t.authNonce));
            (bool isUsed,) = _read(run, used);
            if (isUsed) return AUTHORIZATION_USED;
            if (!_move(run, t, 0, poster)) return INSUFFICIENT_BALANCE;
            _writeHash(run, used, keccak256(hex"01"));
            return OK;
        }
        bytes32 nonceKey = keccak256(abi.encodePacked(uint8(2), t.from));
        // The last nonce, 2^64 - 1, is never usable: the next one would not fit its 8 bytes.
        if (t.nonce != _readNumber(run, nonceKey) || t.nonce == _MAX_U64) return BAD_NONCE;
        if (!_move(run, t, t.fee, poster)) return INSUFFICIENT_BALANCE;
        if (t.kind == _WITHDRAW) {
            _writeHash(
                run,
                keccak256(abi.encodePacked(uint8(4), t.from, uint64(t.nonce))),
                keccak256(abi.encodePacked(t.token, uint128(t.amount), t.recipient))
            );
        }
        _write(run, nonceKey, t.nonce + 1, 8);
        return OK;
    }

    /// @dev Moves `t.amount` from the sender to `t.to` (burnt for a withdrawal) and `fee` to the
    ///      poster, in `t.token`; false (and nothing written) if the sender is short.
    function _move(Run memory run, Tx memory t, uint256 fee, address poster) private pure returns (bool) {
        bytes32 source = _balanceKey(t.from, t.token);
        uint256 balance = _readNumber(run, source);
        if (balance < t.amount + fee) return false;
        _write(run, source, balance - t.amount - fee, 16);
        if (t.kind != _WITHDRAW) _credit(run, _balanceKey(t.to, t.token), t.amount);
        if (fee != 0) _credit(run, _balanceKey(poster, t.token), fee);
        return true;
    }

    /// @dev Adds `amount` to balance `key`: to what this transaction wrote there, else to what it reads.
    function _credit(Run memory run, bytes32 key, uint256 amount) private pure {
        for (uint256 i = 0; i < run.writeCount; ++i) {
            if (run.writeKeys[i] == key) {
                run.writeNumbers[i] += amount;
                return;
            }
        }
        _write(run, key, _readNumber(run, key) + amount, 16);
    }

    function _write(Run memory run, bytes32 key, uint256 number, uint256 width) private pure {
        require(number < (uint256(1) << (8 * width)), "verifier: value overflows its leaf");
        _setWrite(run, key, number, width, bytes32(0));
    }

    function _writeHash(Run memory run, bytes32 key, bytes32 valueHash) private pure {
        _setWrite(run, key, 0, 0, valueHash);
    }

    function _setWrite(Run memory run, bytes32 key, uint256 number, uint256 width, bytes32 valueHash) private pure {
        uint256 i = 0;
        while (i < run.writeCount && run.writeKeys[i] != key) ++i;
        if (i == run.writeCount) {
            run.writeKeys[i] = key;
            run.writeCount = i + 1;
        }
        run.writeNumbers[i] = number;
        run.writeWidths[i] = width;
        run.writeHashes[i] = valueHash;
    }

    /// @dev The value of `key` in the pre-state, from its witness entry (a key without one reverts).
    function _read(Run memory run, bytes32 key) private pure returns (bool present, uint256 number) {
        Entry[] memory entries = run.entries;
        for (uint256 j = 0; j < entries.length; ++j) {
            if (entries[j].key == key) {
                run.readMask |= uint256(1) << j;
                require(!entries[j].present || entries[j].numeric, "verifier: value too long for a number");
                return (entries[j].present, entries[j].number);
            }
        }
        revert("verifier: read without an entry");
    }

    function _readNumber(Run memory run, bytes32 key) private pure returns (uint256 number) {
        (, number) = _read(run, key);
    }

    function _balanceKey(address account, address token) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(uint8(1), account, token));
    }

    // -------------------------------------------------------------------------------------------
    // Signatures
    // -------------------------------------------------------------------------------------------

    /// @dev Whether the record's signature recovers to its sender: v 27 or 28, 0 < r < n,
    ///      0 < s <= n/2, and a nonzero signer (ecrecover answers zero for no signer).
    function _signedBySender(Tx memory t, bytes calldata proof, uint64 chainId, address inbox)
        private
        pure
        returns (bool)
    {
        uint256 at = t.signatureAt;
        uint256 r = uint256(bytes32(proof[at:at + 32]));
        uint256 s = uint256(bytes32(proof[at + 32:at + 64]));
        uint8 v = uint8(proof[at + 64]);
        if ((v != 27 && v != 28) || r == 0 || r >= _N || s == 0 || s > _HALF_N) return false;
        address signer = ecrecover(_digest(t, chainId, inbox), v, bytes32(r), bytes32(s));
        return signer != address(0) && signer == t.from;
    }

    function _digest(Tx memory t, uint64 chainId, address inbox) private pure returns (bytes32) {
        bytes32 domain;
        bytes32 structHash;
        if (t.kind == _AUTHORIZATION) {
            domain = keccak256(abi.encode(_DOMAIN_TYPEHASH, _TOKEN_NAME_HASH, _VERSION_HASH, chainId, t.token));
            structHash = keccak256(
                abi.encode(
                    _AUTHORIZATION_TYPEHASH, t.from, t.to, t.amount, t.validAfter, t.validBefore, t.authNonce
                )
            );
        } else {
            domain = keccak256(abi.encode(_DOMAIN_TYPEHASH, _ROLLUP_NAME_HASH, _VERSION_HASH, chainId, inbox));
            structHash = t.kind == _TRANSFER
                ? keccak256(abi.encode(_TRANSFER_TYPEHASH, t.from, t.to, t.token, t.amount, t.fee, t.nonce))
                : keccak256(abi.encode(_WITHDRAW_TYPEHASH, t.from, t.token, t.amount, t.fee, t.recipient, t.nonce));
        }
        return keccak256(abi.encodePacked(hex"1901", domain, structHash));
    }

    // -------------------------------------------------------------------------------------------
    // The post-state root (docs/l2-protocol.md §Recomputation)
    // -------------------------------------------------------------------------------------------

    function _recompute(Run memory run, bytes32 root, bytes calldata proof) private pure returns (bytes32) {
        Entry[] memory entries = run.entries;
        uint256 written; // bit j: entry j is written
        for (uint256 i = 0; i < run.writeCount; ++i) {
            uint256 j = 0;
            while (j < entries.length && entries[j].key != run.writeKeys[i]) ++j;
            require(j < entries.length, "verifier: write without an entry");
            written |= uint256(1) << j;
        }
        require((run.readMask | written) == (uint256(1) << entries.length) - 1, "verifier: needless entry");

        for (uint256 j = 0; j < entries.length; ++j) {
            Entry memory e = entries[j];
            bytes calldata leafProof = proof[e.proofStart:e.proofEnd];
            require(
                SparseMerkle.verify(root, e.key, e.present, e.valueHash, leafProof), "verifier: bad leaf proof"
            );
            (bool present, bytes32 valueHash) = (e.present, e.valueHash);
            if ((written >> j) & 1 == 1) (present, valueHash) = _newValue(run, e.key);
            if (present == e.present && valueHash == e.valueHash) {
                require(e.hintKind == 0, "smt: needless hint");
                continue;
            }
            root = SparseMerkle.rootAfter(leafProof, e.key, present, valueHash, e.hintKind, e.hintA, e.hintB);
        }
        return root;
    }

    /// @dev What the transaction writes to `key`: present or deleted, and the value's hash.
    function _newValue(Run memory run, bytes32 key) private pure returns (bool present, bytes32 valueHash) {
        uint256 i = 0;
        while (run.writeKeys[i] != key) ++i;
        uint256 width = run.writeWidths[i];
        if (width == 0) return (true, run.writeHashes[i]);
        uint256 number = run.writeNumbers[i];
        if (number == 0) return (false, bytes32(0));
        require(number < (uint256(1) << (8 * width)), "verifier: value overflows its leaf");
        valueHash = width == 16
            ? keccak256(abi.encodePacked(uint128(number)))
            : keccak256(abi.encodePacked(uint64(number)));
        return (true, valueHash);
    }
}
