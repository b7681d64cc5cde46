"""AgentUSD: metadata, minting, ERC-20, EIP-2612 permit and EIP-3009 (v,r,s and bytes forms, ERC-1271)."""

from __future__ import annotations

import ape
import pytest
from eth_abi import encode
from eth_utils import keccak

from offchain.chain.eip712 import Eip712Domain, typed_digest
from offchain.x402.eip3009 import (
    TransferAuthorization,
    authorize_transfer,
    cancel_digest,
    random_nonce,
    sign_digest,
)
from tests.contracts.conftest import ALICE_FUNDS, BOB_FUNDS, USD

ZERO = "0x" + "00" * 20
HOUR = 3600
GAS = 300_000  # a fixed gas limit, for transactions that must not be estimated first
# secp256k1 group order, to build the malleable (high-s) twin of a signature.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
PERMIT_FIELDS = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
# The EIP-3009 functions come in two forms: OpenZeppelin's (v, r, s) and our (bytes signature).
FORMS = ["vrs", "bytes"]


def _vrs(signature: bytes) -> tuple[int, bytes, bytes]:
    return signature[64], signature[:32], signature[32:64]


def _transfer(token, auth, signature, form, sender, **tx):
    if form == "vrs":
        return token.transferWithAuthorization(*auth.as_args(), *_vrs(signature), sender=sender, **tx)
    return token.transferWithAuthorization(*auth.as_args(), signature, sender=sender, **tx)


def _receive(token, auth, signature, form, sender):
    if form == "vrs":
        return token.receiveWithAuthorization(*auth.as_args(), *_vrs(signature), sender=sender)
    return token.receiveWithAuthorization(*auth.as_args(), signature, sender=sender)


def _cancel(token, authorizer, nonce, signature, form, sender):
    if form == "vrs":
        return token.cancelAuthorization(authorizer, nonce, *_vrs(signature), sender=sender)
    return token.cancelAuthorization(authorizer, nonce, signature, sender=sender)


def _authorize(chain, domain, payer, payee, value, valid_after=0, valid_before=None):
    """`payer` signs a TransferWithAuthorization of `value` to `payee`, valid for an hour by default."""
    if valid_before is None:
        valid_before = chain.pending_timestamp + HOUR
    return authorize_transfer(
        payer.private_key, domain, payee.address, value, valid_before, valid_after=valid_after
    )


def _receive_authorization(chain, domain, payer, payee, value):
    """`payer` signs a ReceiveWithAuthorization of `value` to `payee`."""
    auth = TransferAuthorization(
        **{"from": payer.address},
        to=payee.address,
        value=value,
        validAfter=0,
        validBefore=chain.pending_timestamp + HOUR,
        nonce=random_nonce(),
    )
    return auth, sign_digest(payer.private_key, auth.digest(domain, receive=True))


def _balances(token, *holders) -> list[int]:
    return [token.balanceOf(holder) for holder in holders]


# -- metadata ------------------------------------------------------------------------------------


def test_metadata__usdc_like(token):
    assert token.name() == "Agent USD"
    assert token.symbol() == "AUSD"
    assert token.decimals() == 6
    assert token.version() == "1"
    assert token.VERSION() == "1"
    assert token.totalSupply() == ALICE_FUNDS + BOB_FUNDS


def test_eip712_domain__name_version_chain_and_contract(token, chain):
    fields, name, version, chain_id, contract, salt, extensions = token.eip712Domain()
    assert bytes(fields) == b"\x0f"  # name, version, chainId, verifyingContract
    assert (name, version, chain_id, contract) == ("Agent USD", "1", chain.chain_id, token.address)
    assert bytes(salt) == b"\x00" * 32
    assert list(extensions) == []


def test_domain_separator__matches_digest_domain(token, domain):
    domain_type = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(domain_type),
                keccak(text=domain.name),
                keccak(text=domain.version),
                domain.chain_id,
                domain.verifying_contract,
            ],
        )
    )
    assert bytes(token.DOMAIN_SEPARATOR()) == expected
    assert domain == Eip712Domain(
        name="Agent USD", version="1", chain_id=domain.chain_id, verifying_contract=token.address
    )


def test_roles__admin_holds_admin_and_minter(token, deployer, alice):
    minter, admin = token.MINTER_ROLE(), token.DEFAULT_ADMIN_ROLE()
    assert bytes(minter) == keccak(text="MINTER_ROLE")
    assert token.hasRole(admin, deployer) and token.hasRole(minter, deployer)
    assert not token.hasRole(admin, alice) and not token.hasRole(minter, alice)


# -- constructor ---------------------------------------------------------------------------------


def test_constructor__zero_admin__fails(project, deployer):
    with ape.reverts("agentusd: zero admin"):
        deployer.deploy(project.AgentUSD, ZERO)


# -- mint ----------------------------------------------------------------------------------------


def test_mint__by_admin__mints_and_emits(token, deployer, carol):
    supply = token.totalSupply()
    receipt = token.mint(carol, 5 * USD, sender=deployer)
    (log,) = receipt.decode_logs(token.Transfer)
    assert (log["from"], log.to, log.value) == (ZERO, carol, 5 * USD)
    assert token.balanceOf(carol) == 5 * USD
    assert token.totalSupply() == supply + 5 * USD


def test_mint__by_granted_minter__mints(token, deployer, operator, carol):
    receipt = token.grantRole(token.MINTER_ROLE(), operator, sender=deployer)
    (log,) = receipt.decode_logs(token.RoleGranted)
    assert (bytes(log.role), log.account, log.sender) == (bytes(token.MINTER_ROLE()), operator, deployer)
    token.mint(carol, 7 * USD, sender=operator)
    assert token.balanceOf(carol) == 7 * USD


def test_mint__by_stranger__fails(token, mallory):
    supply = token.totalSupply()
    with ape.reverts(token.AccessControlUnauthorizedAccount, account=mallory, neededRole=token.MINTER_ROLE()):
        token.mint(mallory, USD, sender=mallory)
    assert token.balanceOf(mallory) == 0
    assert token.totalSupply() == supply


def test_mint__after_revoke__fails(token, deployer, operator):
    minter = token.MINTER_ROLE()
    token.grantRole(minter, operator, sender=deployer)
    token.revokeRole(minter, operator, sender=deployer)
    with ape.reverts(token.AccessControlUnauthorizedAccount, account=operator, neededRole=minter):
        token.mint(operator, USD, sender=operator)
    assert token.balanceOf(operator) == 0


def test_grant_role__by_stranger__fails(token, mallory):
    with ape.reverts(token.AccessControlUnauthorizedAccount, account=mallory):
        token.grantRole(token.MINTER_ROLE(), mallory, sender=mallory)
    assert not token.hasRole(token.MINTER_ROLE(), mallory)


def test_mint__to_zero__fails(token, deployer):
    supply = token.totalSupply()
    with ape.reverts(token.ERC20InvalidReceiver, receiver=ZERO):
        token.mint(ZERO, USD, sender=deployer)
    assert token.totalSupply() == supply


# -- transfer, approve, transferFrom -------------------------------------------------------------


def test_transfer__moves_and_emits(token, alice, carol):
    receipt = token.transfer(carol, 3 * USD, sender=alice)
    (log,) = receipt.decode_logs(token.Transfer)
    assert (log["from"], log.to, log.value) == (alice, carol, 3 * USD)
    assert _balances(token, alice, carol) == [ALICE_FUNDS - 3 * USD, 3 * USD]


def test_transfer__insufficient_balance__fails(token, bob, carol):
    with ape.reverts(token.ERC20InsufficientBalance, sender=bob, balance=BOB_FUNDS, needed=BOB_FUNDS + 1):
        token.transfer(carol, BOB_FUNDS + 1, sender=bob)
    assert _balances(token, bob, carol) == [BOB_FUNDS, 0]


def test_approve__sets_allowance_and_emits(token, alice, operator):
    receipt = token.approve(operator, 9 * USD, sender=alice)
    (log,) = receipt.decode_logs(token.Approval)
    assert (log.owner, log.spender, log.value) == (alice, operator, 9 * USD)
    assert token.allowance(alice, operator) == 9 * USD


def test_transfer_from__within_allowance__spends_it(token, alice, operator, carol):
    token.approve(operator, 9 * USD, sender=alice)
    receipt = token.transferFrom(alice, carol, 4 * USD, sender=operator)
    (log,) = receipt.decode_logs(token.Transfer)
    assert (log["from"], log.to, log.value) == (alice, carol, 4 * USD)
    assert token.allowance(alice, operator) == 5 * USD
    assert _balances(token, alice, carol) == [ALICE_FUNDS - 4 * USD, 4 * USD]


def test_transfer_from__over_allowance__fails(token, alice, operator, carol):
    token.approve(operator, USD, sender=alice)
    with ape.reverts(token.ERC20InsufficientAllowance, spender=operator, allowance=USD, needed=USD + 1):
        token.transferFrom(alice, carol, USD + 1, sender=operator)
    assert _balances(token, alice, carol) == [ALICE_FUNDS, 0]
    assert token.allowance(alice, operator) == USD


# -- permit (EIP-2612) ---------------------------------------------------------------------------


def _permit(token, domain, signer, owner, spender, value, deadline, nonce=None):
    message = {
        "owner": owner.address,
        "spender": spender.address,
        "value": value,
        "nonce": token.nonces(owner) if nonce is None else nonce,
        "deadline": deadline,
    }
    return _vrs(sign_digest(signer.private_key, typed_digest(domain, "Permit", PERMIT_FIELDS, message)))


def test_permit__valid__sets_allowance_and_increments_nonce(token, domain, chain, alice, operator, carol):
    deadline = chain.pending_timestamp + HOUR
    v, r, s = _permit(token, domain, alice, alice, operator, 8 * USD, deadline)
    receipt = token.permit(alice, operator, 8 * USD, deadline, v, r, s, sender=carol)  # anyone may submit
    (log,) = receipt.decode_logs(token.Approval)
    assert (log.owner, log.spender, log.value) == (alice, operator, 8 * USD)
    assert token.allowance(alice, operator) == 8 * USD
    assert token.nonces(alice) == 1
    token.transferFrom(alice, carol, 8 * USD, sender=operator)
    assert _balances(token, alice, carol) == [ALICE_FUNDS - 8 * USD, 8 * USD]


def test_permit__expired_deadline__fails(token, domain, chain, alice, operator):
    deadline = chain.pending_timestamp + 60
    v, r, s = _permit(token, domain, alice, alice, operator, USD, deadline)
    chain.mine(timestamp=deadline + 1)
    with ape.reverts(token.ERC2612ExpiredSignature, deadline=deadline):
        token.permit(alice, operator, USD, deadline, v, r, s, sender=operator)
    assert token.allowance(alice, operator) == 0
    assert token.nonces(alice) == 0
    assert token.balanceOf(alice) == ALICE_FUNDS


def test_permit__wrong_signer__fails(token, domain, chain, alice, operator, mallory):
    deadline = chain.pending_timestamp + HOUR
    v, r, s = _permit(token, domain, mallory, alice, operator, USD, deadline)
    with ape.reverts(token.ERC2612InvalidSigner, signer=mallory, owner=alice):
        token.permit(alice, operator, USD, deadline, v, r, s, sender=operator)
    assert token.allowance(alice, operator) == 0
    assert token.nonces(alice) == 0
    assert token.balanceOf(alice) == ALICE_FUNDS


def test_permit__replay__fails(token, domain, chain, alice, operator):
    deadline = chain.pending_timestamp + HOUR
    v, r, s = _permit(token, domain, alice, alice, operator, USD, deadline)
    token.permit(alice, operator, USD, deadline, v, r, s, sender=operator)
    token.approve(operator, 0, sender=alice)
    with ape.reverts(token.ERC2612InvalidSigner):  # the nonce moved on: the digest is another one
        token.permit(alice, operator, USD, deadline, v, r, s, sender=operator)
    assert token.allowance(alice, operator) == 0
    assert token.nonces(alice) == 1


# -- transferWithAuthorization -------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__valid__transfers_and_emits(
    token, domain, chain, alice, bob, carol, form
):
    auth, signature = _authorize(chain, domain, alice, bob, 12 * USD)
    assert not token.authorizationState(alice, auth.nonce)
    receipt = _transfer(token, auth, signature, form, sender=carol)  # a relayer submits it
    (transfer,) = receipt.decode_logs(token.Transfer)
    assert (transfer["from"], transfer.to, transfer.value) == (alice, bob, 12 * USD)
    (used,) = receipt.decode_logs(token.AuthorizationUsed)
    assert (used.authorizer, bytes(used.nonce)) == (alice, auth.nonce)
    assert token.authorizationState(alice, auth.nonce)
    assert _balances(token, alice, bob, carol) == [ALICE_FUNDS - 12 * USD, BOB_FUNDS + 12 * USD, 0]


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__not_yet_valid__fails(token, domain, chain, alice, bob, form):
    valid_after = chain.pending_timestamp + 600
    auth, signature = _authorize(chain, domain, alice, bob, USD, valid_after=valid_after)
    with ape.reverts(
        token.ERC3009InvalidAuthorizationTime, validAfter=valid_after, validBefore=auth.valid_before
    ):
        _transfer(token, auth, signature, form, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]
    assert not token.authorizationState(alice, auth.nonce)


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__window_bounds__exclusive(token, domain, chain, alice, bob, form):
    # anvil estimates gas at its own clock, not at the pending timestamp: a fixed gas limit skips
    # the estimate, so each transaction runs in a block at exactly the timestamp set.
    valid_after = chain.pending_timestamp + 600
    valid_before = valid_after + 2  # valid at valid_after + 1 only
    first, first_signature = _authorize(
        chain, domain, alice, bob, USD, valid_after=valid_after, valid_before=valid_before
    )
    second, second_signature = _authorize(
        chain, domain, alice, bob, USD, valid_after=valid_after, valid_before=valid_before
    )
    window = {"validAfter": valid_after, "validBefore": valid_before}

    chain.pending_timestamp = valid_after
    with ape.reverts(token.ERC3009InvalidAuthorizationTime, **window):
        _transfer(token, first, first_signature, form, sender=bob, gas_limit=GAS)
    assert chain.blocks.head.timestamp == valid_after
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]
    assert not token.authorizationState(alice, first.nonce)

    chain.pending_timestamp = valid_after + 1
    _transfer(token, first, first_signature, form, sender=bob, gas_limit=GAS)
    assert chain.blocks.head.timestamp == valid_after + 1
    assert _balances(token, alice, bob) == [ALICE_FUNDS - USD, BOB_FUNDS + USD]

    chain.pending_timestamp = valid_before
    with ape.reverts(token.ERC3009InvalidAuthorizationTime, **window):
        _transfer(token, second, second_signature, form, sender=bob, gas_limit=GAS)
    assert chain.blocks.head.timestamp == valid_before
    assert _balances(token, alice, bob) == [ALICE_FUNDS - USD, BOB_FUNDS + USD]
    assert not token.authorizationState(alice, second.nonce)


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__expired__fails(token, domain, chain, alice, bob, form):
    valid_before = chain.pending_timestamp + 60
    auth, signature = _authorize(chain, domain, alice, bob, USD, valid_before=valid_before)
    chain.mine(timestamp=valid_before)  # "valid strictly before"
    with ape.reverts(token.ERC3009InvalidAuthorizationTime, validAfter=0, validBefore=valid_before):
        _transfer(token, auth, signature, form, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]
    assert not token.authorizationState(alice, auth.nonce)


BLOCK_RANGE_FLAG = 1 << 47  # OpenZeppelin's ERC3009 reads a window with this bit in both bounds as blocks


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["transfer", "receive"])
def test_validity_window__bit_47_in_both_bounds__still_means_seconds(
    token, domain, chain, alice, bob, form, kind
):
    # Read as block numbers this window (blocks 0 to head + 1000) would be open now; read as seconds,
    # as USDC reads it, it opens in the year ~4.4 million: the authorization is not valid yet.
    valid_after = BLOCK_RANGE_FLAG
    valid_before = BLOCK_RANGE_FLAG | (chain.blocks.head.number + 1_000)
    auth = TransferAuthorization(
        **{"from": alice.address},
        to=bob.address,
        value=USD,
        validAfter=valid_after,
        validBefore=valid_before,
        nonce=random_nonce(),
    )
    signature = sign_digest(alice.private_key, auth.digest(domain, receive=kind == "receive"))
    submit = _transfer if kind == "transfer" else _receive
    with ape.reverts(token.ERC3009InvalidAuthorizationTime, validAfter=valid_after, validBefore=valid_before):
        submit(token, auth, signature, form, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]
    assert not token.authorizationState(alice, auth.nonce)


@pytest.mark.parametrize("form", FORMS)
def test_validity_window__bit_47_in_one_bound__seconds_window_open_now(
    token, domain, chain, alice, bob, form
):
    # A seconds window whose validBefore happens to have bit 47 set (far future) is open now.
    auth, signature = _authorize(chain, domain, alice, bob, USD, valid_before=BLOCK_RANGE_FLAG | 1)
    _transfer(token, auth, signature, form, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS - USD, BOB_FUNDS + USD]


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__replay__fails(token, domain, chain, alice, bob, carol, form):
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    _transfer(token, auth, signature, form, sender=carol)
    with ape.reverts(token.ERC3009UsedAuthorization, authorizer=alice, nonce=auth.nonce):
        _transfer(token, auth, signature, form, sender=carol)
    assert _balances(token, alice, bob) == [ALICE_FUNDS - USD, BOB_FUNDS + USD]


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__replay_in_other_form__fails(
    token, domain, chain, alice, bob, carol, form
):
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    _transfer(token, auth, signature, form, sender=carol)
    other = "bytes" if form == "vrs" else "vrs"
    with ape.reverts(token.ERC3009UsedAuthorization, authorizer=alice, nonce=auth.nonce):
        _transfer(token, auth, signature, other, sender=carol)
    assert _balances(token, alice, bob) == [ALICE_FUNDS - USD, BOB_FUNDS + USD]


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__cancelled_nonce__fails(token, domain, chain, alice, bob, form):
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    cancel = sign_digest(alice.private_key, cancel_digest(domain, alice.address, auth.nonce))
    _cancel(token, alice, auth.nonce, cancel, form, sender=alice)
    with ape.reverts(token.ERC3009UsedAuthorization, authorizer=alice, nonce=auth.nonce):
        _transfer(token, auth, signature, form, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__wrong_signer__fails(token, domain, chain, alice, bob, mallory, form):
    # mallory signs an authorization that claims to come from alice
    auth, _ = _authorize(chain, domain, mallory, mallory, 50 * USD)
    auth = auth.model_copy(update={"from_": alice.address})
    signature = sign_digest(mallory.private_key, auth.digest(domain))
    with ape.reverts(token.ERC3009InvalidSignature):
        _transfer(token, auth, signature, form, sender=mallory)
    assert _balances(token, alice, mallory) == [ALICE_FUNDS, 0]
    assert not token.authorizationState(alice, auth.nonce)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("field", ["value", "to", "valid_before", "nonce"])
def test_transfer_with_authorization__tampered__fails(token, domain, chain, alice, bob, mallory, form, field):
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    tampered = {
        "value": 100 * USD,
        "to": mallory.address,
        "valid_before": auth.valid_before + HOUR,
        "nonce": random_nonce(),
    }[field]
    forged = auth.model_copy(update={field: tampered})
    with ape.reverts(token.ERC3009InvalidSignature):
        _transfer(token, forged, signature, form, sender=mallory)
    assert _balances(token, alice, bob, mallory) == [ALICE_FUNDS, BOB_FUNDS, 0]


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__receive_typed_signature__fails(
    token, domain, chain, alice, bob, mallory, form
):
    # A ReceiveWithAuthorization signature cannot be front-run through transferWithAuthorization.
    auth, signature = _receive_authorization(chain, domain, alice, bob, USD)
    with ape.reverts(token.ERC3009InvalidSignature):
        _transfer(token, auth, signature, form, sender=mallory)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("change", [{"version": "2"}, {"chain_id": 1}, {"name": "USD Coin"}])
def test_transfer_with_authorization__other_domain__fails(token, domain, chain, alice, bob, form, change):
    auth, signature = _authorize(chain, domain.model_copy(update=change), alice, bob, USD)
    with ape.reverts(token.ERC3009InvalidSignature):
        _transfer(token, auth, signature, form, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]


def test_transfer_with_authorization__high_s_twin__fails(token, domain, chain, alice, bob):
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    v, r, s = _vrs(signature)
    high_s = (SECP256K1_N - int.from_bytes(s, "big")).to_bytes(32, "big")
    twin_v = 55 - v  # 27 <-> 28
    with ape.reverts(token.ECDSAInvalidSignatureS, s=high_s):
        token.transferWithAuthorization(*auth.as_args(), twin_v, r, high_s, sender=bob)
    with ape.reverts(token.ERC3009InvalidSignature):
        token.transferWithAuthorization(*auth.as_args(), r + high_s + bytes([twin_v]), sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]


@pytest.mark.parametrize("signature", [b"", b"\x01" * 64, b"\x01" * 66])
def test_transfer_with_authorization__malformed_bytes_signature__fails(
    token, domain, chain, alice, bob, signature
):
    auth, _ = _authorize(chain, domain, alice, bob, USD)
    with ape.reverts(token.ERC3009InvalidSignature):
        token.transferWithAuthorization(*auth.as_args(), signature, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__insufficient_balance__fails(token, domain, chain, bob, carol, form):
    auth, signature = _authorize(chain, domain, bob, carol, BOB_FUNDS + 1)
    with ape.reverts(token.ERC20InsufficientBalance, sender=bob, balance=BOB_FUNDS, needed=BOB_FUNDS + 1):
        _transfer(token, auth, signature, form, sender=carol)
    assert _balances(token, bob, carol) == [BOB_FUNDS, 0]
    assert not token.authorizationState(bob, auth.nonce)  # the nonce stays usable


@pytest.mark.parametrize("form", FORMS)
def test_transfer_with_authorization__to_zero__fails(token, domain, chain, alice, form):
    auth = TransferAuthorization(
        **{"from": alice.address},
        to=ZERO,
        value=USD,
        validAfter=0,
        validBefore=chain.pending_timestamp + HOUR,
        nonce=random_nonce(),
    )
    signature = sign_digest(alice.private_key, auth.digest(domain))
    with ape.reverts(token.ERC20InvalidReceiver, receiver=ZERO):
        _transfer(token, auth, signature, form, sender=alice)
    assert _balances(token, alice, ZERO) == [ALICE_FUNDS, 0]


# -- receiveWithAuthorization --------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_receive_with_authorization__by_payee__transfers_and_emits(token, domain, chain, alice, bob, form):
    auth, signature = _receive_authorization(chain, domain, alice, bob, 20 * USD)
    receipt = _receive(token, auth, signature, form, sender=bob)
    (transfer,) = receipt.decode_logs(token.Transfer)
    assert (transfer["from"], transfer.to, transfer.value) == (alice, bob, 20 * USD)
    (used,) = receipt.decode_logs(token.AuthorizationUsed)
    assert (used.authorizer, bytes(used.nonce)) == (alice, auth.nonce)
    assert token.authorizationState(alice, auth.nonce)
    assert _balances(token, alice, bob) == [ALICE_FUNDS - 20 * USD, BOB_FUNDS + 20 * USD]


@pytest.mark.parametrize("form", FORMS)
def test_receive_with_authorization__by_someone_else__fails(token, domain, chain, alice, bob, mallory, form):
    auth, signature = _receive_authorization(chain, domain, alice, bob, 20 * USD)
    with ape.reverts(token.ERC20InvalidReceiver, receiver=bob):
        _receive(token, auth, signature, form, sender=mallory)
    assert _balances(token, alice, bob, mallory) == [ALICE_FUNDS, BOB_FUNDS, 0]
    assert not token.authorizationState(alice, auth.nonce)


@pytest.mark.parametrize("form", FORMS)
def test_receive_with_authorization__transfer_typed_signature__fails(token, domain, chain, alice, bob, form):
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    with ape.reverts(token.ERC3009InvalidSignature):
        _receive(token, auth, signature, form, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]


@pytest.mark.parametrize("form", FORMS)
def test_receive_with_authorization__replay__fails(token, domain, chain, alice, bob, form):
    auth, signature = _receive_authorization(chain, domain, alice, bob, USD)
    _receive(token, auth, signature, form, sender=bob)
    with ape.reverts(token.ERC3009UsedAuthorization, authorizer=alice, nonce=auth.nonce):
        _receive(token, auth, signature, form, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS - USD, BOB_FUNDS + USD]


# -- cancelAuthorization -------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_cancel_authorization__valid__burns_nonce_and_emits(token, domain, chain, alice, bob, carol, form):
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    cancel = sign_digest(alice.private_key, cancel_digest(domain, alice.address, auth.nonce))
    receipt = _cancel(token, alice, auth.nonce, cancel, form, sender=carol)  # anyone may submit
    (log,) = receipt.decode_logs(token.AuthorizationCanceled)
    assert (log.authorizer, bytes(log.nonce)) == (alice, auth.nonce)
    assert not receipt.decode_logs(token.AuthorizationUsed)
    assert token.authorizationState(alice, auth.nonce)
    for transfer_form in FORMS:
        with ape.reverts(token.ERC3009UsedAuthorization, authorizer=alice, nonce=auth.nonce):
            _transfer(token, auth, signature, transfer_form, sender=bob)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]


@pytest.mark.parametrize("form", FORMS)
def test_cancel_authorization__used_nonce__fails(token, domain, chain, alice, bob, form):
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    _transfer(token, auth, signature, form, sender=bob)
    cancel = sign_digest(alice.private_key, cancel_digest(domain, alice.address, auth.nonce))
    with ape.reverts(token.ERC3009UsedAuthorization, authorizer=alice, nonce=auth.nonce):
        _cancel(token, alice, auth.nonce, cancel, form, sender=alice)
    assert _balances(token, alice, bob) == [ALICE_FUNDS - USD, BOB_FUNDS + USD]


@pytest.mark.parametrize("form", FORMS)
def test_cancel_authorization__twice__fails(token, domain, alice, form):
    nonce = random_nonce()
    cancel = sign_digest(alice.private_key, cancel_digest(domain, alice.address, nonce))
    _cancel(token, alice, nonce, cancel, form, sender=alice)
    with ape.reverts(token.ERC3009UsedAuthorization, authorizer=alice, nonce=nonce):
        _cancel(token, alice, nonce, cancel, form, sender=alice)


@pytest.mark.parametrize("form", FORMS)
def test_cancel_authorization__bad_signature__fails(token, domain, chain, alice, bob, mallory, form):
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    forged = sign_digest(mallory.private_key, cancel_digest(domain, alice.address, auth.nonce))
    with ape.reverts(token.ERC3009InvalidSignature):
        _cancel(token, alice, auth.nonce, forged, form, sender=mallory)
    assert not token.authorizationState(alice, auth.nonce)
    assert _balances(token, alice, bob) == [ALICE_FUNDS, BOB_FUNDS]
    _transfer(token, auth, signature, form, sender=bob)  # alice's authorization still settles
    assert _balances(token, alice, bob) == [ALICE_FUNDS - USD, BOB_FUNDS + USD]


@pytest.mark.parametrize("form", FORMS)
def test_cancel_authorization__transfer_signature__fails(token, domain, chain, alice, bob, mallory, form):
    # A transfer authorization's signature does not double as a cancellation of its nonce.
    auth, signature = _authorize(chain, domain, alice, bob, USD)
    with ape.reverts(token.ERC3009InvalidSignature):
        _cancel(token, alice, auth.nonce, signature, form, sender=mallory)
    assert not token.authorizationState(alice, auth.nonce)


# -- ERC-1271 contract wallets (bytes forms) -----------------------------------------------------


@pytest.fixture
def smart_wallet(project, token, deployer, carol):
    """A contract wallet owned by carol's key, holding 50 AUSD."""
    wallet = carol.deploy(project.erc1271_wallet_mock, carol.address)
    token.mint(wallet, 50 * USD, sender=deployer)
    return wallet


def _wallet_authorization(chain, wallet, payee, value, signer, domain, receive=False):
    auth = TransferAuthorization(
        **{"from": wallet.address},
        to=payee.address,
        value=value,
        validAfter=0,
        validBefore=chain.pending_timestamp + HOUR,
        nonce=random_nonce(),
    )
    return auth, sign_digest(signer.private_key, auth.digest(domain, receive=receive))


def test_transfer_with_authorization__erc1271_owner_signed__transfers(
    token, domain, chain, smart_wallet, carol, bob, operator
):
    auth, signature = _wallet_authorization(chain, smart_wallet, bob, 30 * USD, carol, domain)
    receipt = token.transferWithAuthorization(*auth.as_args(), signature, sender=operator)
    (transfer,) = receipt.decode_logs(token.Transfer)
    assert (transfer["from"], transfer.to, transfer.value) == (smart_wallet.address, bob, 30 * USD)
    (used,) = receipt.decode_logs(token.AuthorizationUsed)
    assert (used.authorizer, bytes(used.nonce)) == (smart_wallet.address, auth.nonce)
    assert token.authorizationState(smart_wallet, auth.nonce)
    assert _balances(token, smart_wallet, bob, carol) == [20 * USD, BOB_FUNDS + 30 * USD, 0]


def test_transfer_with_authorization__erc1271_other_signer__fails(
    token, domain, chain, smart_wallet, bob, mallory
):
    auth, signature = _wallet_authorization(chain, smart_wallet, mallory, 30 * USD, mallory, domain)
    with ape.reverts(token.ERC3009InvalidSignature):
        token.transferWithAuthorization(*auth.as_args(), signature, sender=mallory)
    assert _balances(token, smart_wallet, mallory) == [50 * USD, 0]
    assert not token.authorizationState(smart_wallet, auth.nonce)


def test_transfer_with_authorization__erc1271_via_vrs_form__fails(
    token, domain, chain, smart_wallet, bob, carol
):
    # The v,r,s form is ECDSA only: it recovers carol, not the wallet.
    auth, signature = _wallet_authorization(chain, smart_wallet, bob, 30 * USD, carol, domain)
    with ape.reverts(token.ERC3009InvalidSignature):
        token.transferWithAuthorization(*auth.as_args(), *_vrs(signature), sender=bob)
    assert _balances(token, smart_wallet, bob) == [50 * USD, BOB_FUNDS]


def test_transfer_with_authorization__owner_signature_for_owner__does_not_move_wallet_funds(
    token, domain, chain, smart_wallet, bob, carol
):
    # carol's own authorization (from carol) cannot be redirected to spend from her wallet.
    auth, signature = _authorize(chain, domain, carol, bob, 30 * USD)
    forged = auth.model_copy(update={"from_": smart_wallet.address})
    with ape.reverts(token.ERC3009InvalidSignature):
        token.transferWithAuthorization(*forged.as_args(), signature, sender=bob)
    assert _balances(token, smart_wallet, bob) == [50 * USD, BOB_FUNDS]


def test_receive_with_authorization__erc1271_by_payee__transfers(
    token, domain, chain, smart_wallet, bob, carol
):
    auth, signature = _wallet_authorization(chain, smart_wallet, bob, 10 * USD, carol, domain, receive=True)
    with ape.reverts(token.ERC20InvalidReceiver, receiver=bob):
        token.receiveWithAuthorization(*auth.as_args(), signature, sender=carol)
    token.receiveWithAuthorization(*auth.as_args(), signature, sender=bob)
    assert _balances(token, smart_wallet, bob) == [40 * USD, BOB_FUNDS + 10 * USD]


def test_cancel_authorization__erc1271__owner_cancels_and_stranger_cannot(
    token, domain, chain, smart_wallet, bob, carol, mallory
):
    auth, signature = _wallet_authorization(chain, smart_wallet, bob, 10 * USD, carol, domain)
    digest = cancel_digest(domain, smart_wallet.address, auth.nonce)
    with ape.reverts(token.ERC3009InvalidSignature):
        token.cancelAuthorization(
            smart_wallet, auth.nonce, sign_digest(mallory.private_key, digest), sender=mallory
        )
    assert not token.authorizationState(smart_wallet, auth.nonce)
    receipt = token.cancelAuthorization(
        smart_wallet, auth.nonce, sign_digest(carol.private_key, digest), sender=bob
    )
    (log,) = receipt.decode_logs(token.AuthorizationCanceled)
    assert (log.authorizer, bytes(log.nonce)) == (smart_wallet.address, auth.nonce)
    with ape.reverts(token.ERC3009UsedAuthorization, authorizer=smart_wallet.address, nonce=auth.nonce):
        token.transferWithAuthorization(*auth.as_args(), signature, sender=bob)
    assert _balances(token, smart_wallet, bob) == [50 * USD, BOB_FUNDS]
