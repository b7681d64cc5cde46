"""BatchSettler: settles the good authorizations of a batch, skips and reports the bad ones."""

from __future__ import annotations

import ape
import pytest
from eth_abi import decode, encode
from eth_utils import keccak

from offchain.x402.eip3009 import (
    TransferAuthorization,
    authorize_transfer,
    cancel_digest,
    random_nonce,
    sign_digest,
)
from offchain.x402.token_settlement import authorization_gas, batch_gas, settler_gas_needed
from tests.contracts.conftest import ALICE_FUNDS, BOB_FUNDS, USD

ZERO = "0x" + "00" * 20
HOUR = 3600
GAS = 150_000  # the gas each authorization's token call gets, unless a test says otherwise


def _authorize(chain, domain, payer, payee, value, valid_before=None):
    """`payer` signs a TransferWithAuthorization of `value` to `payee`, valid for an hour by default."""
    if valid_before is None:
        valid_before = chain.pending_timestamp + HOUR
    return authorize_transfer(payer.private_key, domain, payee.address, value, valid_before)


def _item(auth: TransferAuthorization, signature: bytes, gas: int = GAS) -> tuple:
    """A BatchSettler.Authorization: (from, to, value, validAfter, validBefore, nonce, gasLimit, signature)."""
    return (*auth.as_args(), gas, signature)


def _settle(settler, token, batch, sender, **tx):
    """Sends a batch with the transaction gas the facilitator gives it (`batch_gas`): an
    estimate would find the least gas at which the batch does not revert, skipping items."""
    return settler.settle(
        token, batch, sender=sender, gas_limit=tx.pop("gas_limit", batch_gas([i[6] for i in batch])), **tx
    )


def _error(token, name: str, *args) -> bytes:
    """The revert data of the token's custom error `name` with `args`: selector, then ABI-encoded args."""
    abi = getattr(token, name).abi
    return keccak(text=abi.selector)[:4] + encode([param.type for param in abi.inputs], list(args))


def _balances(token, *holders) -> list[int]:
    return [token.balanceOf(holder) for holder in holders]


def _skipped(receipt, settler) -> list[tuple]:
    return [
        (log.token, log.index, log["from"], bytes(log.nonce), bytes(log.reason))
        for log in receipt.decode_logs(settler.AuthorizationSkipped)
    ]


def _settled(receipt, settler) -> tuple:
    (log,) = receipt.decode_logs(settler.BatchSettled)
    return log.token, log.settled, log.skipped


# -- a mixed batch -------------------------------------------------------------------------------


def test_settle__mixed_batch__pays_good_and_reports_each_bad(
    token, settler, domain, chain, deployer, alice, bob, carol, operator, mallory
):
    # Set-up outside the batch: one authorization already used, one cancelled.
    used, used_signature = _authorize(chain, domain, alice, carol, USD)
    token.transferWithAuthorization(*used.as_args(), used_signature, sender=carol)
    cancelled, cancelled_signature = _authorize(chain, domain, alice, bob, 3 * USD)
    token.cancelAuthorization(
        alice,
        cancelled.nonce,
        sign_digest(alice.private_key, cancel_digest(domain, alice.address, cancelled.nonce)),
        sender=alice,
    )
    good_1, good_1_signature = _authorize(chain, domain, alice, carol, 10 * USD)
    good_2, good_2_signature = _authorize(chain, domain, bob, carol, 5 * USD)
    expired_before = chain.blocks.head.timestamp
    expired, expired_signature = _authorize(chain, domain, alice, carol, 2 * USD, valid_before=expired_before)
    forged = TransferAuthorization(
        **{"from": alice.address},
        to=mallory.address,
        value=50 * USD,
        validAfter=0,
        validBefore=chain.pending_timestamp + HOUR,
        nonce=random_nonce(),
    )
    forged_signature = sign_digest(mallory.private_key, forged.digest(domain))
    broke, broke_signature = _authorize(chain, domain, operator, mallory, USD)  # operator holds nothing
    good_3, good_3_signature = _authorize(chain, domain, alice, bob, 7 * USD)
    batch = [
        _item(good_1, good_1_signature),  # 0
        _item(used, used_signature),  # 1
        _item(good_2, good_2_signature),  # 2
        _item(expired, expired_signature),  # 3
        _item(forged, forged_signature),  # 4
        _item(broke, broke_signature),  # 5
        _item(cancelled, cancelled_signature),  # 6
        _item(good_3, good_3_signature),  # 7
    ]
    before = _balances(token, alice, bob, carol, operator, mallory)

    results = settler.settle.call(token, batch)
    assert before == _balances(token, alice, bob, carol, operator, mallory)  # a call changes nothing
    receipt = _settle(settler, token, batch, deployer)

    assert list(results) == [True, False, True, False, False, False, False, True]
    assert _balances(token, alice, bob, carol, operator, mallory) == [
        ALICE_FUNDS - USD - 10 * USD - 7 * USD,
        BOB_FUNDS - 5 * USD + 7 * USD,
        USD + 10 * USD + 5 * USD,
        0,
        0,
    ]
    for auth, state in [
        (good_1, True),
        (used, True),
        (good_2, True),
        (expired, False),
        (forged, False),
        (broke, False),
        (cancelled, True),
        (good_3, True),
    ]:
        assert token.authorizationState(auth.from_, auth.nonce) is state

    assert _skipped(receipt, settler) == [
        (
            token.address,
            1,
            alice.address,
            used.nonce,
            _error(token, "ERC3009UsedAuthorization", alice.address, used.nonce),
        ),
        (
            token.address,
            3,
            alice.address,
            expired.nonce,
            _error(token, "ERC3009InvalidAuthorizationTime", 0, expired_before),
        ),
        (token.address, 4, alice.address, forged.nonce, _error(token, "ERC3009InvalidSignature")),
        (
            token.address,
            5,
            operator.address,
            broke.nonce,
            _error(token, "ERC20InsufficientBalance", operator.address, 0, USD),
        ),
        (
            token.address,
            6,
            alice.address,
            cancelled.nonce,
            _error(token, "ERC3009UsedAuthorization", alice.address, cancelled.nonce),
        ),
    ]
    assert _settled(receipt, settler) == (token.address, 3, 5)
    skipped_indexes = {log.index for log in receipt.decode_logs(settler.AuthorizationSkipped)}
    assert [i not in skipped_indexes for i in range(len(batch))] == list(results)

    transfers = [(log["from"], log.to, log.value) for log in receipt.decode_logs(token.Transfer)]
    assert transfers == [(alice, carol, 10 * USD), (bob, carol, 5 * USD), (alice, bob, 7 * USD)]
    used_nonces = [(log.authorizer, bytes(log.nonce)) for log in receipt.decode_logs(token.AuthorizationUsed)]
    assert used_nonces == [(alice, good_1.nonce), (bob, good_2.nonce), (alice, good_3.nonce)]


def test_settle__reason_selectors__are_the_token_errors(token):
    # The reasons above start with these four bytes: the errors of the ERC-3009 / ERC-20 interfaces.
    assert _error(token, "ERC3009InvalidSignature") == keccak(text="ERC3009InvalidSignature()")[:4]
    assert (
        _error(token, "ERC3009UsedAuthorization", ZERO, b"\x00" * 32)[:4]
        == keccak(text="ERC3009UsedAuthorization(address,bytes32)")[:4]
    )
    assert (
        _error(token, "ERC3009InvalidAuthorizationTime", 0, 0)[:4]
        == keccak(text="ERC3009InvalidAuthorizationTime(uint256,uint256)")[:4]
    )
    assert (
        _error(token, "ERC20InsufficientBalance", ZERO, 0, 0)[:4]
        == keccak(text="ERC20InsufficientBalance(address,uint256,uint256)")[:4]
    )


# -- good batches --------------------------------------------------------------------------------


def test_settle__all_good__settles_all(token, settler, domain, chain, deployer, alice, bob, carol):
    signed = [
        _authorize(chain, domain, payer, carol, value) for payer, value in [(alice, USD), (bob, 2 * USD)]
    ]
    batch = [_item(*pair) for pair in signed]
    assert list(settler.settle.call(token, batch)) == [True, True]
    receipt = _settle(settler, token, batch, deployer)
    assert _skipped(receipt, settler) == []
    assert _settled(receipt, settler) == (token.address, 2, 0)
    assert _balances(token, alice, bob, carol, settler) == [
        ALICE_FUNDS - USD,
        BOB_FUNDS - 2 * USD,
        3 * USD,
        0,
    ]
    assert all(token.authorizationState(auth.from_, auth.nonce) for auth, _ in signed)


def test_settle__by_anyone__succeeds(token, settler, domain, chain, alice, carol, mallory):
    auth, signature = _authorize(chain, domain, alice, carol, USD)
    receipt = _settle(settler, token, [_item(auth, signature)], mallory)
    assert _settled(receipt, settler) == (token.address, 1, 0)
    assert _balances(token, alice, carol, mallory) == [ALICE_FUNDS - USD, USD, 0]


def test_settle__funds_received_earlier_in_batch__spendable(
    token, settler, domain, chain, deployer, alice, carol, operator
):
    # operator holds nothing: paying carol first fails, after alice's payment to operator it settles.
    early, early_signature = _authorize(chain, domain, operator, carol, 4 * USD)
    funding, funding_signature = _authorize(chain, domain, alice, operator, 5 * USD)
    late, late_signature = _authorize(chain, domain, operator, carol, 4 * USD)
    batch = [_item(early, early_signature), _item(funding, funding_signature), _item(late, late_signature)]
    assert list(settler.settle.call(token, batch)) == [False, True, True]
    receipt = _settle(settler, token, batch, deployer)
    assert _skipped(receipt, settler) == [
        (
            token.address,
            0,
            operator.address,
            early.nonce,
            _error(token, "ERC20InsufficientBalance", operator.address, 0, 4 * USD),
        )
    ]
    assert _settled(receipt, settler) == (token.address, 2, 1)
    assert _balances(token, alice, operator, carol) == [ALICE_FUNDS - 5 * USD, USD, 4 * USD]
    assert not token.authorizationState(operator, early.nonce)


def test_settle__same_authorization_twice__second_skipped(
    token, settler, domain, chain, deployer, alice, carol
):
    auth, signature = _authorize(chain, domain, alice, carol, USD)
    batch = [_item(auth, signature), _item(auth, signature)]
    assert list(settler.settle.call(token, batch)) == [True, False]
    receipt = _settle(settler, token, batch, deployer)
    assert _skipped(receipt, settler) == [
        (
            token.address,
            1,
            alice.address,
            auth.nonce,
            _error(token, "ERC3009UsedAuthorization", alice.address, auth.nonce),
        )
    ]
    assert _settled(receipt, settler) == (token.address, 1, 1)
    assert _balances(token, alice, carol) == [ALICE_FUNDS - USD, USD]


def test_settle__erc1271_wallet__settles(
    token, settler, project, domain, chain, deployer, bob, carol, mallory
):
    wallet = carol.deploy(project.erc1271_wallet_mock, carol.address)
    token.mint(wallet, 10 * USD, sender=deployer)
    signed = []
    for signer in (carol, mallory):
        auth = TransferAuthorization(
            **{"from": wallet.address},
            to=bob.address,
            value=4 * USD,
            validAfter=0,
            validBefore=chain.pending_timestamp + HOUR,
            nonce=random_nonce(),
        )
        signed.append((auth, sign_digest(signer.private_key, auth.digest(domain))))
    batch = [_item(*pair) for pair in signed]
    assert list(settler.settle.call(token, batch)) == [True, False]
    receipt = _settle(settler, token, batch, deployer)
    (owner_signed, _), (stranger_signed, _) = signed
    assert _skipped(receipt, settler) == [
        (token.address, 1, wallet.address, stranger_signed.nonce, _error(token, "ERC3009InvalidSignature"))
    ]
    assert _balances(token, wallet, bob) == [6 * USD, BOB_FUNDS + 4 * USD]
    assert token.authorizationState(wallet, owner_signed.nonce)
    assert not token.authorizationState(wallet, stranger_signed.nonce)


# -- bad batches ---------------------------------------------------------------------------------


def test_settle__all_bad__skips_all_without_reverting(token, settler, domain, chain, deployer, alice, carol):
    auth, _ = _authorize(chain, domain, alice, carol, USD)
    receive_signature = sign_digest(alice.private_key, auth.digest(domain, receive=True))
    batch = [_item(auth, b""), _item(auth, receive_signature)]  # no signature; a receive-only one
    assert list(settler.settle.call(token, batch)) == [False, False]
    receipt = _settle(settler, token, batch, deployer)
    invalid = _error(token, "ERC3009InvalidSignature")
    assert _skipped(receipt, settler) == [
        (token.address, 0, alice.address, auth.nonce, invalid),
        (token.address, 1, alice.address, auth.nonce, invalid),
    ]
    assert _settled(receipt, settler) == (token.address, 0, 2)
    assert not receipt.decode_logs(token.Transfer)
    assert _balances(token, alice, carol) == [ALICE_FUNDS, 0]
    assert not token.authorizationState(alice, auth.nonce)


def test_settle__contract_without_eip3009__skips_with_empty_reason(
    settler, domain, chain, deployer, alice, carol
):
    auth, signature = _authorize(chain, domain, alice, carol, USD)
    # The settler itself has code but no transferWithAuthorization and no fallback.
    receipt = _settle(settler, settler, [_item(auth, signature)], deployer)
    assert _skipped(receipt, settler) == [(settler.address, 0, alice.address, auth.nonce, b"")]
    assert _settled(receipt, settler) == (settler.address, 0, 1)


def test_settle__empty_batch__fails(token, settler, deployer):
    with ape.reverts("settler: bad batch size"):
        settler.settle(token, [], sender=deployer, gas_limit=1_000_000)


CHEAP = 30_000  # enough for an authorization with an empty signature to fail on its own


def test_settle__over_max_batch__fails(token, settler, domain, chain, deployer, alice, carol):
    assert settler.MAX_BATCH() == 256
    auth, signature = _authorize(chain, domain, alice, carol, USD)
    batch = [_item(auth, signature)] + [_item(auth, b"", CHEAP)] * 256
    with ape.reverts("settler: bad batch size"):
        settler.settle(token, batch, sender=deployer, gas_limit=5_000_000)
    assert _balances(token, alice, carol) == [ALICE_FUNDS, 0]
    assert not token.authorizationState(alice, auth.nonce)


def test_settle__max_batch__accepted(token, settler, domain, chain, deployer, alice, carol):
    auth, signature = _authorize(chain, domain, alice, carol, USD)
    batch = [_item(auth, signature)] + [_item(auth, b"", CHEAP)] * 255
    receipt = _settle(settler, token, batch, deployer)
    assert _settled(receipt, settler) == (token.address, 1, 255)
    assert [log.index for log in receipt.decode_logs(settler.AuthorizationSkipped)] == list(range(1, 256))
    assert _balances(token, alice, carol) == [ALICE_FUNDS - USD, USD]


@pytest.mark.parametrize("target", ["eoa", "zero"])
def test_settle__token_without_code__fails(
    token, settler, domain, chain, deployer, alice, carol, mallory, target
):
    auth, signature = _authorize(chain, domain, alice, carol, USD)
    address = mallory.address if target == "eoa" else ZERO
    with ape.reverts("settler: token not a contract"):
        settler.settle(address, [_item(auth, signature)], sender=deployer, gas_limit=1_000_000)
    assert _balances(token, alice, carol) == [ALICE_FUNDS, 0]
    assert not token.authorizationState(alice, auth.nonce)


# -- gas: one hostile payer never stops the others ----------------------------------------------


def _wallet_authorization(chain, domain, wallet, owner, payee, value):
    """`owner` signs, for its contract wallet, a TransferWithAuthorization of `value` to `payee`."""
    auth = TransferAuthorization(
        **{"from": wallet.address},
        to=payee.address,
        value=value,
        validAfter=0,
        validBefore=chain.pending_timestamp + HOUR,
        nonce=random_nonce(),
    )
    return auth, sign_digest(owner.private_key, auth.digest(domain))


def _estimated_item(token, auth, signature, sender) -> tuple:
    """The authorization with the gas the facilitator gives it: from an estimate of it sent alone."""
    estimate = token.transferWithAuthorization.estimate_gas_cost(*auth.as_args(), signature, sender=sender)
    return _item(auth, signature, authorization_gas(estimate))


def test_gas_needed__is_the_allowance_its_64th_and_the_overhead(settler):
    assert settler.CALL_OVERHEAD() == 20_000
    for gas in (0, 63, 150_000, 10**7):
        assert settler.gasNeeded(gas) == settler_gas_needed(gas) == gas + gas // 63 + 20_000


def test_settle__gas_burning_wallet__is_skipped_alone(
    project, token, settler, domain, chain, deployer, alice, carol
):
    burner = deployer.deploy(project.gas_burning_wallet_mock)
    token.mint(burner, USD, sender=deployer)
    good_a = _authorize(chain, domain, alice, carol, USD)
    good_b = _authorize(chain, domain, alice, carol, 2 * USD)
    hostile = TransferAuthorization(
        **{"from": burner.address},
        to=carol.address,
        value=USD,
        validAfter=0,
        validBefore=chain.pending_timestamp + HOUR,
        nonce=random_nonce(),
    )
    batch = [_item(*good_a), _item(hostile, b"\x01" * 65), _item(*good_b)]
    before = _balances(token, alice, carol, burner)
    receipt = _settle(settler, token, batch, deployer)
    assert _settled(receipt, settler) == (token.address, 2, 1)
    # The wallet burns the 63/64 of the token's gas it gets; the token, left with the rest, refuses.
    assert _skipped(receipt, settler) == [
        (token.address, 1, burner.address, hostile.nonce, _error(token, "ERC3009InvalidSignature"))
    ]
    assert _balances(token, alice, carol, burner) == [before[0] - 3 * USD, before[1] + 3 * USD, before[2]]


def test_settle__wallet_costly_only_when_run__fails_alone_and_the_others_settle(
    project, token, settler, domain, chain, deployer, alice, carol
):
    # Finding 4: the wallet is cheap when the facilitator estimates, costly when the batch runs.
    wallet = deployer.deploy(project.costly_erc1271_wallet_mock, carol.address, 0)
    token.mint(wallet, USD, sender=deployer)
    good_a = _authorize(chain, domain, alice, carol, USD)
    hostile = _wallet_authorization(chain, domain, wallet, carol, carol, USD)
    good_b = _authorize(chain, domain, alice, carol, 2 * USD)
    batch = [_estimated_item(token, *signed, deployer) for signed in (good_a, hostile, good_b)]
    wallet.set_work(10**9, sender=deployer)  # after the estimate: the check now burns all it gets
    before = _balances(token, alice, carol, wallet)
    receipt = _settle(settler, token, batch, deployer)
    assert _settled(receipt, settler) == (token.address, 2, 1)
    assert _skipped(receipt, settler) == [
        (token.address, 1, wallet.address, hostile[0].nonce, _error(token, "ERC3009InvalidSignature"))
    ]
    assert _balances(token, alice, carol, wallet) == [before[0] - 3 * USD, before[1] + 3 * USD, USD]
    assert not token.authorizationState(wallet, hostile[0].nonce)


def test_settle__valid_wallet_with_a_240k_gas_check__settles(
    project, token, settler, domain, chain, deployer, alice, bob, carol
):
    # Finding 5: a valid wallet whose check costs ~240k gas (a P-256 / WebAuthn wallet) settles.
    wallet = deployer.deploy(project.costly_erc1271_wallet_mock, carol.address, 240_000)
    token.mint(wallet, USD, sender=deployer)
    costly = _wallet_authorization(chain, domain, wallet, carol, bob, USD)
    good = _authorize(chain, domain, alice, bob, USD)
    batch = [_estimated_item(token, *signed, deployer) for signed in (costly, good)]
    assert batch[0][6] > 240_000
    receipt = _settle(settler, token, batch, deployer)
    assert _settled(receipt, settler) == (token.address, 2, 0)
    assert _balances(token, wallet, bob) == [0, BOB_FUNDS + 2 * USD]
    assert token.authorizationState(wallet, costly[0].nonce)


def test_settle__allowance_below_what_the_call_costs__fails_alone(
    token, settler, domain, chain, deployer, alice, carol
):
    short = _authorize(chain, domain, alice, carol, USD)
    good = _authorize(chain, domain, alice, carol, 2 * USD)
    batch = [_item(*short, 10_000), _item(*good)]
    receipt = _settle(settler, token, batch, deployer)
    assert _skipped(receipt, settler) == [(token.address, 0, alice.address, short[0].nonce, b"")]
    assert _settled(receipt, settler) == (token.address, 1, 1)
    assert _balances(token, alice, carol) == [ALICE_FUNDS - 2 * USD, 2 * USD]


def test_settle__gas_left_below_an_allowance__skips_it_unrun_and_goes_on(
    token, settler, domain, chain, deployer, alice, carol
):
    first = _authorize(chain, domain, alice, carol, USD)
    greedy = _authorize(chain, domain, alice, carol, 2 * USD)
    last = _authorize(chain, domain, alice, carol, 4 * USD)
    batch = [_item(*first), _item(*greedy, 10**8), _item(*last)]  # more gas than the transaction has
    receipt = _settle(settler, token, batch, deployer, gas_limit=batch_gas([GAS, GAS]))
    ((token_address, index, payer, nonce, reason),) = _skipped(receipt, settler)
    assert (token_address, index, payer, nonce) == (token.address, 1, alice.address, greedy[0].nonce)
    selector = keccak(text="SettlerGasShort(uint256,uint256)")[:4]
    assert reason[:4] == selector
    needed, gas_left = decode(["uint256", "uint256"], reason[4:])
    assert needed == settler_gas_needed(10**8) and gas_left < needed
    assert _settled(receipt, settler) == (token.address, 2, 1)
    assert _balances(token, alice, carol) == [ALICE_FUNDS - 5 * USD, 5 * USD]
    assert not token.authorizationState(alice, greedy[0].nonce)  # it did not run: it can settle later
