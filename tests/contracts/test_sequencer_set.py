"""SequencerSet: joining for an ERC-8004 agent, the slot schedule (stake-weighted leaders from
seeds fixed before their epoch), exit, withdrawal, the inbox's and the dispute game's hooks,
slashing, and every refusal with its reason.

The set under test is a minimal-proxy clone of the implementation (as the RollupFactory makes
it), initialized with test accounts standing in for the inbox and the dispute game. Slots are
`SLOT_LENGTH` = 2 L1 blocks and epochs `SLOTS_PER_EPOCH` = 4 slots (8 blocks). A view runs at
the head block, a transaction in the block after it (`_tx_at` places a transaction exactly).
"""

from __future__ import annotations

import math
from collections import Counter

import ape
import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from offchain.chain.rpc import connect
from offchain.errors import ContractReverted, InvalidInput
from offchain.rollup.sequencer_set import OperatorRecord, SequencerSet, pick_leader
from tests.contracts.conftest import USD

ZERO = "0x" + "00" * 20
BURN = "0x000000000000000000000000000000000000dEaD"
HOUR = 3600
DAY = 24 * HOUR
MIN_STAKE = 10 * USD
SLOT_LENGTH = 2
SLOTS_PER_EPOCH = 4
EPOCH_BLOCKS = SLOT_LENGTH * SLOTS_PER_EPOCH
EXIT_DELAY = DAY
CHALLENGE_WINDOW = HOUR
SHARE_BPS = 2_500
MAX_OPERATORS = 64
MAX_SEED_CATCHUP = 4
# A fixed gas limit for every transaction of the set: no estimate, so the transaction runs at the
# timestamp set. And anvil estimates at the head block: a transaction mined in an epoch's first
# block records that epoch's seed, which the estimate (in the epoch before) did not pay for, so
# an estimated join, exit, withdrawal or slash fails whenever the suite's block count puts it
# there (the Python client adds the seed margin instead).
GAS = 1_000_000
CAROL_FUNDS = 1_000 * USD


def _params(token: str, **overrides) -> tuple:
    """A RollupParams tuple (only the sequencer set's fields matter here)."""
    values = {
        "chain_id": 901,
        "stake_token": token,
        "min_stake": MIN_STAKE,
        "slot_length": SLOT_LENGTH,
        "slots_per_epoch": SLOTS_PER_EPOCH,
        "exit_delay": EXIT_DELAY,
        "challenge_window": CHALLENGE_WINDOW,
        "force_inclusion_delay": 600,
        "escape_delay": 1_800,
        "max_timestamp_lag": 600,
        "proposer_bond": 10**17,
        "challenger_bond": 10**17,
        "challenger_share_bps": SHARE_BPS,
        "dispute_clock": 300,
    }
    unknown = set(overrides) - set(values)
    assert not unknown, unknown
    values.update(overrides)
    return tuple(values.values())


def _log(receipt, event) -> dict:
    """The arguments of the one `event` in `receipt`."""
    (log,) = receipt.decode_logs(event)
    return dict(log.event_arguments)


def _logs(receipt, event) -> list[dict]:
    return [dict(log.event_arguments) for log in receipt.decode_logs(event)]


def _seed(block_hash: bytes, epoch: int, address: str) -> bytes:
    return keccak(encode(["bytes32", "uint256", "address"], [block_hash, epoch, address]))


def _block_hash(chain, number: int) -> bytes:
    return bytes(chain.blocks[number].hash)


def _mine_to(chain, block: int) -> None:
    """Mines until the head is `block`."""
    head = chain.blocks.head.number
    assert block >= head, f"block {block} is behind the head {head}"
    if block > head:
        chain.mine(block - head)


def _tx_at(chain, block: int) -> None:
    """Mines so that the next transaction lands in `block`."""
    _mine_to(chain, block - 1)


def _epoch_of(seq, block: int) -> int:
    return (block - seq.genesisBlock()) // EPOCH_BLOCKS


def _enter(chain, seq, epoch: int) -> None:
    """Mines to the first block of `epoch` (its seed is then fixed)."""
    _mine_to(chain, seq.epochStartBlock(epoch))


def _join(seq, token, account, agent_id: int, amount: int = MIN_STAKE, at: int | None = None):
    token.approve(seq, amount, sender=account)
    if at is None:
        return seq.join(agent_id, amount, sender=account, gas_limit=GAS)
    _tx_at(seq.chain_manager, at)
    return seq.join(agent_id, amount, sender=account, gas_limit=GAS)


def _record(seq, address: str) -> OperatorRecord:
    record = SequencerSet(seq).operator(address)
    assert record is not None
    return record


def _slots(epoch: int) -> range:
    return range(epoch * SLOTS_PER_EPOCH, (epoch + 1) * SLOTS_PER_EPOCH)


def _web3(chain, contract):
    """`contract` as a web3 contract, for batched reads."""
    abi = [
        item.model_dump(by_alias=True, mode="json", exclude_none=True) for item in contract.contract_type.abi
    ]
    return chain.provider.web3.eth.contract(address=contract.address, abi=abi)


def _leaders(chain, seq, slots: range) -> list[str]:
    """`leaderOf` of every slot, in batches of eth_calls (views mine nothing)."""
    w3, contract = chain.provider.web3, _web3(chain, seq)
    leaders: list[str] = []
    for start in range(slots.start, slots.stop, 512):
        with w3.batch_requests() as batch:
            for slot in range(start, min(start + 512, slots.stop)):
                batch.add(contract.functions.leaderOf(slot))
            leaders.extend(str(leader) for leader in batch.execute())
    return leaders


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def implementation(project, deployer):
    return deployer.deploy(project.SequencerSet)


@pytest.fixture(scope="module")
def cloner(project, deployer):
    return deployer.deploy(project.MinimalCloneMock)


@pytest.fixture(scope="module")
def inbox(accounts):
    """Stands in for the rollup's inbox."""
    return accounts[7]


@pytest.fixture(scope="module")
def game(accounts):
    """Stands in for the rollup's dispute game."""
    return accounts[8]


@pytest.fixture(scope="module")
def challenger(accounts):
    return accounts[9]


@pytest.fixture(scope="module")
def clone(project, deployer, implementation, cloner):
    """A fresh, uninitialized clone of the implementation."""

    def clone_():
        receipt = cloner.clone(implementation, sender=deployer)
        return project.SequencerSet.at(_log(receipt, cloner.Cloned)["clone"])

    return clone_


@pytest.fixture(scope="module")
def make_set(clone, deployer, identity, inbox, game, token):
    """A fresh clone initialized with the test parameters (overridable)."""

    def make(stake_token: str | None = None, **overrides):
        seq = clone()
        seq.initialize(
            _params(stake_token or token.address, **overrides), identity, inbox, game, sender=deployer
        )
        return seq

    return make


@pytest.fixture(scope="module")
def seq(make_set):
    return make_set()


@pytest.fixture(scope="module")
def agents(registries, token, deployer, alice, bob, carol) -> dict[str, int]:
    """One agent each for alice, bob and carol (carol gets 1,000 AUSD too)."""
    token.mint(carol, CAROL_FUNDS, sender=deployer)
    return {
        "alice": registries.register(alice, "https://agents.example/alice.json"),
        "bob": registries.register(bob, "https://agents.example/bob.json"),
        "carol": registries.register(carol, "https://agents.example/carol.json"),
    }


@pytest.fixture(scope="module")
def fee_token(project, deployer):
    """Burns 1% of every transfer."""
    return deployer.deploy(project.fee_on_transfer_token_mock)


@pytest.fixture
def trio(seq, token, chain, alice, bob, carol, agents):
    """alice, bob and carol joined (stakes 10, 20 and 50 AUSD, in that order) and drawn now."""
    for account, name, stake in ((alice, "alice", 10), (bob, "bob", 20), (carol, "carol", 50)):
        _join(seq, token, account, agents[name], stake * USD)
    epoch = _record(seq, carol.address).eligible_from
    _enter(chain, seq, epoch)
    return epoch


# -- initialize ----------------------------------------------------------------------------------


def test_implementation__initialize__refused(implementation, token, identity, inbox, game, deployer):
    with ape.reverts(implementation.InvalidInitialization):
        implementation.initialize(_params(token.address), identity, inbox, game, sender=deployer)


def test_initialize__parameters__stored_with_the_seed_of_epoch_zero(
    clone, chain, token, identity, inbox, game, deployer
):
    seq = clone()
    receipt = seq.initialize(_params(token.address), identity, inbox, game, sender=deployer)
    genesis = receipt.block_number
    assert seq.genesisBlock() == genesis
    assert seq.stakeToken() == token.address
    assert seq.minStake() == MIN_STAKE
    assert seq.slotLength() == SLOT_LENGTH
    assert seq.slotsPerEpoch() == SLOTS_PER_EPOCH
    assert seq.exitDelay() == EXIT_DELAY
    assert seq.challengeWindow() == CHALLENGE_WINDOW
    assert seq.challengerShareBps() == SHARE_BPS
    assert seq.identityRegistry() == identity.address
    assert seq.inbox() == inbox.address
    assert seq.disputeGame() == game.address
    assert seq.MAX_OPERATORS() == MAX_OPERATORS
    assert seq.BURN_ADDRESS() == BURN
    seed = _seed(_block_hash(chain, genesis - 1), 0, seq.address)
    assert _log(receipt, seq.SeedRecorded) == {"epoch": 0, "seed": seed}
    assert seq.seedOf(0) == seed
    assert (seq.currentSlot(), seq.currentEpoch()) == (0, 0)
    assert seq.epochStartBlock(3) == genesis + 3 * EPOCH_BLOCKS
    assert (seq.operatorCount(), list(seq.operators())) == (0, [])


def test_initialize__twice__refused(seq, token, identity, inbox, game, deployer):
    with ape.reverts(seq.InvalidInitialization):
        seq.initialize(_params(token.address), identity, inbox, game, sender=deployer)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("stake_token", ZERO, "sequencer: no stake token"),
        ("min_stake", 0, "sequencer: zero min stake"),
        ("min_stake", 2**128, "sequencer: min stake too large"),
        ("slot_length", 0, "sequencer: zero slot length"),
        ("slots_per_epoch", 0, "sequencer: zero slots per epoch"),
        ("challenger_share_bps", 10_001, "sequencer: share above 100%"),
        ("exit_delay", CHALLENGE_WINDOW - 1, "sequencer: exit delay below challenge window"),
        ("identity", ZERO, "sequencer: zero address"),
        ("inbox", ZERO, "sequencer: zero address"),
    ],
)
def test_initialize__bad_parameter__refused(
    clone, token, identity, inbox, game, deployer, field, value, reason
):
    seq = clone()
    addresses = {"identity": identity.address, "inbox": inbox.address}
    stake_token, overrides = token.address, {}
    if field in addresses:
        addresses[field] = value
    elif field == "stake_token":
        stake_token = value
    else:
        overrides[field] = value
    with ape.reverts(reason):
        seq.initialize(
            _params(stake_token, **overrides),
            addresses["identity"],
            addresses["inbox"],
            game,
            sender=deployer,
        )


def test_initialize__edge_parameters__accepted(clone, token, identity, inbox, deployer):
    """Whole share to the challenger, exit delay equal to the window, no dispute game yet."""
    seq = clone()
    params = _params(
        token.address,
        challenger_share_bps=10_000,
        exit_delay=CHALLENGE_WINDOW,
        slot_length=1,
        slots_per_epoch=1,
    )
    seq.initialize(params, identity, inbox, ZERO, sender=deployer)
    assert (seq.challengerShareBps(), seq.exitDelay(), seq.disputeGame()) == (10_000, CHALLENGE_WINDOW, ZERO)


# -- join ----------------------------------------------------------------------------------------


def test_join__by_agent_owner__stakes_and_counts_from_the_epoch_after_next(seq, token, chain, alice, agents):
    before = token.balanceOf(alice), token.balanceOf(seq)
    receipt = _join(seq, token, alice, agents["alice"], 25 * USD)
    epoch = _epoch_of(seq, receipt.block_number)
    assert _log(receipt, seq.Joined) == {
        "operator": alice.address,
        "agentId": agents["alice"],
        "stake": 25 * USD,
        "eligibleFrom": epoch + 2,
    }
    assert (token.balanceOf(alice), token.balanceOf(seq)) == (before[0] - 25 * USD, before[1] + 25 * USD)
    info = dict(seq.getOperator(alice).items())
    assert info == {
        "agentId": agents["alice"],
        "stake": 25 * USD,
        "eligibleFrom": epoch + 2,
        "exitEpoch": 0,
        "exitRequestedAt": 0,
        "lastClaimAt": 0,
        "openDisputes": 0,
        "ejected": False,
    }
    assert list(seq.operators()) == [alice.address]
    assert seq.operatorCount() == 1
    assert seq.operatorOfAgent(agents["alice"]) == alice.address
    assert seq.isActive(alice)
    assert [seq.totalStakeAt(e) for e in range(epoch, epoch + 4)] == [0, 0, 25 * USD, 25 * USD]


def test_join__by_agent_wallet__accepted(seq, token, registries, deployer, alice, operator, agents):
    registries.set_agent_wallet_with_key(alice, agents["alice"], operator.private_key)
    token.mint(operator, MIN_STAKE, sender=deployer)
    receipt = _join(seq, token, operator, agents["alice"])
    assert _log(receipt, seq.Joined)["operator"] == operator.address
    assert seq.operatorOfAgent(agents["alice"]) == operator.address


def test_join__not_owner_or_wallet__refused(seq, token, mallory, deployer, agents):
    token.mint(mallory, MIN_STAKE, sender=deployer)
    token.approve(seq, MIN_STAKE, sender=mallory)
    with ape.reverts("sequencer: not agent owner or wallet"):
        seq.join(agents["alice"], MIN_STAKE, sender=mallory, gas_limit=GAS)


def test_join__unknown_agent__refused(seq, token, alice):
    token.approve(seq, MIN_STAKE, sender=alice)
    with ape.reverts("sequencer: unknown agent"):
        seq.join(10**9, MIN_STAKE, sender=alice, gas_limit=GAS)


def test_join__below_minimum__refused(seq, token, alice, agents):
    token.approve(seq, MIN_STAKE, sender=alice)
    with ape.reverts("sequencer: stake below minimum"):
        seq.join(agents["alice"], MIN_STAKE - 1, sender=alice, gas_limit=GAS)


def test_join__above_uint128__refused(seq, alice, agents):
    with ape.reverts("sequencer: stake too large"):
        seq.join(agents["alice"], 2**128, sender=alice, gas_limit=GAS)


def test_join__twice__refused(seq, token, registries, alice, agents):
    _join(seq, token, alice, agents["alice"])
    second = registries.register(alice, "https://agents.example/alice-2.json")
    token.approve(seq, MIN_STAKE, sender=alice)
    with ape.reverts("sequencer: already joined"):
        seq.join(second, MIN_STAKE, sender=alice, gas_limit=GAS)


def test_join__agent_already_in_the_set__refused(seq, token, registries, deployer, alice, operator, agents):
    _join(seq, token, alice, agents["alice"])
    registries.set_agent_wallet_with_key(alice, agents["alice"], operator.private_key)
    token.mint(operator, MIN_STAKE, sender=deployer)
    token.approve(seq, MIN_STAKE, sender=operator)
    with ape.reverts("sequencer: agent taken"):
        seq.join(agents["alice"], MIN_STAKE, sender=operator, gas_limit=GAS)


def test_join__fee_on_transfer_token__refused(make_set, fee_token, alice, agents):
    seq = make_set(fee_token.address)
    fee_token.mint(alice, MIN_STAKE * 2, sender=alice)
    fee_token.approve(seq, MIN_STAKE * 2, sender=alice)
    with ape.reverts("sequencer: fee-on-transfer token"):
        seq.join(agents["alice"], MIN_STAKE * 2, sender=alice, gas_limit=GAS)
    assert fee_token.balanceOf(seq) == 0


def test_join__slashed_address__refused_for_ever(
    seq, token, chain, registries, game, challenger, alice, agents
):
    _join(seq, token, alice, agents["alice"])
    seq.slash(alice, challenger, sender=game, gas_limit=GAS)
    assert seq.banned(alice)
    another = registries.register(alice, "https://agents.example/alice-2.json")
    token.approve(seq, MIN_STAKE, sender=alice)
    with ape.reverts("sequencer: banned"):
        seq.join(another, MIN_STAKE, sender=alice, gas_limit=GAS)
    _enter(chain, seq, _record(seq, alice.address).exit_epoch)
    seq.prune(alice, sender=challenger, gas_limit=GAS)
    with ape.reverts("sequencer: banned"):
        seq.join(another, MIN_STAKE, sender=alice, gas_limit=GAS)


# -- eligibility lag -----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["first block", "last block"])
def test_eligibility__joined_in_epoch_e__drawn_from_e_plus_2(seq, token, chain, alice, agents, where):
    """Even a join in an epoch's last block (whose hash is the next epoch's seed) waits an epoch."""
    epoch = seq.currentEpoch() + 2
    block = seq.epochStartBlock(epoch) + (0 if where == "first block" else EPOCH_BLOCKS - 1)
    receipt = _join(seq, token, alice, agents["alice"], at=block)
    assert receipt.block_number == block
    assert _log(receipt, seq.Joined)["eligibleFrom"] == epoch + 2
    _enter(chain, seq, epoch + 2)
    assert [seq.leaderOf(s) for s in _slots(epoch)] == [ZERO] * SLOTS_PER_EPOCH
    assert [seq.leaderOf(s) for s in _slots(epoch + 1)] == [ZERO] * SLOTS_PER_EPOCH
    assert [seq.leaderOf(s) for s in _slots(epoch + 2)] == [alice.address] * SLOTS_PER_EPOCH


# -- requestExit ---------------------------------------------------------------------------------


def test_request_exit__drawn_until_the_epoch_after_next(seq, token, chain, alice, agents):
    _join(seq, token, alice, agents["alice"])
    eligible = _record(seq, alice.address).eligible_from
    _enter(chain, seq, eligible)
    receipt = seq.requestExit(sender=alice, gas_limit=GAS)
    epoch = _epoch_of(seq, receipt.block_number)
    assert _log(receipt, seq.ExitRequested) == {"operator": alice.address, "exitEpoch": epoch + 2}
    record = _record(seq, alice.address)
    assert (record.exit_epoch, record.exit_requested_at) == (epoch + 2, receipt.timestamp)
    assert not seq.isActive(alice)
    assert [seq.totalStakeAt(e) for e in (epoch, epoch + 1, epoch + 2)] == [MIN_STAKE, MIN_STAKE, 0]
    _enter(chain, seq, epoch + 2)
    assert {seq.leaderOf(s) for s in _slots(epoch + 1)} == {alice.address}
    assert {seq.leaderOf(s) for s in _slots(epoch + 2)} == {ZERO}


def test_request_exit__not_an_operator__refused(seq, mallory):
    with ape.reverts("sequencer: not an operator"):
        seq.requestExit(sender=mallory, gas_limit=GAS)


def test_request_exit__twice__refused(seq, token, alice, agents):
    _join(seq, token, alice, agents["alice"])
    seq.requestExit(sender=alice, gas_limit=GAS)
    with ape.reverts("sequencer: exit already requested"):
        seq.requestExit(sender=alice, gas_limit=GAS)


def test_request_exit__ejected__refused(seq, token, game, challenger, alice, agents):
    _join(seq, token, alice, agents["alice"])
    seq.slash(alice, challenger, sender=game, gas_limit=GAS)
    with ape.reverts("sequencer: ejected"):
        seq.requestExit(sender=alice, gas_limit=GAS)


# -- withdraw ------------------------------------------------------------------------------------


def _exit_and_wait(seq, chain, operator) -> int:
    """Requests the exit and moves past the exit delay and into the exit epoch; returns the
    timestamp of the request."""
    receipt = seq.requestExit(sender=operator, gas_limit=GAS)
    exit_epoch = _log(receipt, seq.ExitRequested)["exitEpoch"]
    _mine_to(chain, seq.epochStartBlock(exit_epoch) - 1)
    chain.mine(timestamp=receipt.timestamp + EXIT_DELAY)
    return receipt.timestamp


def test_withdraw__after_exit__pays_back_and_frees_the_agent(
    seq, token, chain, registries, deployer, alice, operator, agents
):
    _join(seq, token, alice, agents["alice"], 30 * USD)
    _exit_and_wait(seq, chain, alice)
    before = token.balanceOf(alice)
    receipt = seq.withdraw(sender=alice, gas_limit=GAS)
    assert _log(receipt, seq.Withdrawn) == {
        "operator": alice.address,
        "agentId": agents["alice"],
        "amount": 30 * USD,
    }
    assert token.balanceOf(alice) == before + 30 * USD
    assert token.balanceOf(seq) == 0
    assert (seq.operatorCount(), list(seq.operators())) == (0, [])
    assert seq.operatorOfAgent(agents["alice"]) == ZERO
    assert SequencerSet(seq).operator(alice.address) is None
    # the agent is free: its wallet joins for it
    registries.set_agent_wallet_with_key(alice, agents["alice"], operator.private_key)
    token.mint(operator, MIN_STAKE, sender=deployer)
    _join(seq, token, operator, agents["alice"])
    assert seq.operatorOfAgent(agents["alice"]) == operator.address


def test_withdraw__not_an_operator__refused(seq, mallory):
    with ape.reverts("sequencer: not an operator"):
        seq.withdraw(sender=mallory, gas_limit=GAS)


def test_withdraw__no_exit_requested__refused(seq, token, alice, agents):
    _join(seq, token, alice, agents["alice"])
    with ape.reverts("sequencer: no exit requested"):
        seq.withdraw(sender=alice, gas_limit=GAS)


def test_withdraw__before_the_exit_delay__refused(seq, token, chain, alice, agents):
    _join(seq, token, alice, agents["alice"])
    requested = seq.requestExit(sender=alice, gas_limit=GAS).timestamp
    _enter(chain, seq, _record(seq, alice.address).exit_epoch)
    chain.pending_timestamp = requested + EXIT_DELAY - 1
    with ape.reverts("sequencer: exit delay not passed"):
        seq.withdraw(sender=alice, gas_limit=GAS)
    chain.pending_timestamp = requested + EXIT_DELAY  # the delay's end: free to go
    assert _log(seq.withdraw(sender=alice, gas_limit=GAS), seq.Withdrawn)["amount"] == MIN_STAKE


def test_withdraw__before_the_exit_epoch__refused(seq, token, chain, alice, agents):
    _join(seq, token, alice, agents["alice"])
    receipt = seq.requestExit(sender=alice, gas_limit=GAS)
    chain.mine(timestamp=receipt.timestamp + EXIT_DELAY)
    exit_epoch = _record(seq, alice.address).exit_epoch
    _tx_at(chain, seq.epochStartBlock(exit_epoch) - 1)
    with ape.reverts("sequencer: exit epoch not begun"):
        seq.withdraw(sender=alice, gas_limit=GAS)
    _tx_at(chain, seq.epochStartBlock(exit_epoch))
    seq.withdraw(sender=alice, gas_limit=GAS)


def test_withdraw__within_the_window_of_its_last_claim__refused(seq, token, chain, inbox, alice, agents):
    _join(seq, token, alice, agents["alice"])
    _exit_and_wait(seq, chain, alice)
    claimed = seq.noteClaim(alice, sender=inbox).timestamp
    chain.pending_timestamp = claimed + CHALLENGE_WINDOW  # the window's last second
    with ape.reverts("sequencer: claim in challenge window"):
        seq.withdraw(sender=alice, gas_limit=GAS)
    chain.pending_timestamp = claimed + CHALLENGE_WINDOW + 1
    seq.withdraw(sender=alice, gas_limit=GAS)


def test_withdraw__dispute_open__refused_until_closed(seq, token, chain, game, alice, agents):
    _join(seq, token, alice, agents["alice"])
    seq.noteDispute(alice, True, sender=game)
    _exit_and_wait(seq, chain, alice)
    with ape.reverts("sequencer: dispute open"):
        seq.withdraw(sender=alice, gas_limit=GAS)
    seq.noteDispute(alice, False, sender=game)
    seq.withdraw(sender=alice, gas_limit=GAS)


def test_withdraw__ejected__refused(seq, token, chain, game, challenger, alice, agents):
    _join(seq, token, alice, agents["alice"])
    seq.requestExit(sender=alice, gas_limit=GAS)
    seq.slash(alice, challenger, sender=game, gas_limit=GAS)
    _exit_and_wait_after_request(seq, chain, alice)
    with ape.reverts("sequencer: ejected"):
        seq.withdraw(sender=alice, gas_limit=GAS)


def _exit_and_wait_after_request(seq, chain, operator) -> None:
    record = _record(seq, operator.address)
    _enter(chain, seq, record.exit_epoch)
    chain.mine(timestamp=(record.exit_requested_at or 0) + EXIT_DELAY)


# -- noteClaim and noteDispute -------------------------------------------------------------------


def test_note_claim__by_the_inbox__recorded(seq, token, inbox, alice, agents):
    _join(seq, token, alice, agents["alice"])
    receipt = seq.noteClaim(alice, sender=inbox)
    assert _log(receipt, seq.ClaimNoted) == {"operator": alice.address, "at": receipt.timestamp}
    assert seq.getOperator(alice).lastClaimAt == receipt.timestamp


def test_note_claim__not_the_inbox__refused(seq, alice, game):
    for caller in (alice, game):
        with ape.reverts("sequencer: not inbox"):
            seq.noteClaim(alice, sender=caller)


def test_note_dispute__counts_open_disputes_never_below_zero(seq, token, game, alice, agents):
    _join(seq, token, alice, agents["alice"])
    counts = []
    for opened in (True, True, False, False, False):
        receipt = seq.noteDispute(alice, opened, sender=game)
        log = _log(receipt, seq.DisputeNoted)
        assert (log["operator"], log["opened"]) == (alice.address, opened)
        counts.append(log["openDisputes"])
    assert counts == [1, 2, 1, 0, 0]
    assert seq.getOperator(alice).openDisputes == 0


def test_note_dispute__not_the_game__refused(seq, alice, inbox):
    for caller in (alice, inbox):
        with ape.reverts("sequencer: not dispute game"):
            seq.noteDispute(alice, True, sender=caller)


# -- slash ---------------------------------------------------------------------------------------


def test_slash__takes_the_stake__share_to_the_challenger_rest_burnt(
    seq, token, chain, game, challenger, alice, agents
):
    _join(seq, token, alice, agents["alice"], 100 * USD)
    assert seq.slash.call(alice, challenger, sender=game) == 100 * USD
    before = token.balanceOf(challenger), token.balanceOf(BURN), token.balanceOf(seq)
    receipt = seq.slash(alice, challenger, sender=game, gas_limit=GAS)
    epoch = _epoch_of(seq, receipt.block_number)
    assert _log(receipt, seq.Slashed) == {
        "operator": alice.address,
        "challenger": challenger.address,
        "toChallenger": 25 * USD,
        "burnt": 75 * USD,
    }
    assert token.balanceOf(challenger) == before[0] + 25 * USD
    assert token.balanceOf(BURN) == before[1] + 75 * USD
    assert token.balanceOf(seq) == before[2] - 100 * USD
    record = _record(seq, alice.address)
    assert record.ejected and record.exit_epoch == epoch + 2 and record.stake == 100 * USD
    assert seq.banned(alice) and not seq.isActive(alice)
    assert seq.operatorCount() == 1  # until pruned


def test_slash__twice__returns_zero_and_moves_nothing(seq, token, game, challenger, alice, agents):
    _join(seq, token, alice, agents["alice"])
    seq.slash(alice, challenger, sender=game, gas_limit=GAS)
    assert seq.slash.call(alice, challenger, sender=game) == 0
    before = token.balanceOf(challenger), token.balanceOf(BURN), token.balanceOf(seq)
    receipt = seq.slash(alice, challenger, sender=game, gas_limit=GAS)
    assert _logs(receipt, seq.Slashed) == []
    assert (token.balanceOf(challenger), token.balanceOf(BURN), token.balanceOf(seq)) == before


def test_slash__not_in_the_set__returns_zero(seq, token, game, challenger, mallory):
    assert seq.slash.call(mallory, challenger, sender=game) == 0
    receipt = seq.slash(mallory, challenger, sender=game, gas_limit=GAS)
    assert _logs(receipt, seq.Slashed) == []
    assert not seq.banned(mallory)


def test_slash__exit_requested__still_slashable_until_withdrawn(
    seq, token, chain, game, challenger, alice, bob, agents
):
    _join(seq, token, alice, agents["alice"])
    _join(seq, token, bob, agents["bob"])
    exit_epoch = _log(seq.requestExit(sender=alice, gas_limit=GAS), seq.ExitRequested)["exitEpoch"]
    _exit_and_wait_after_request(seq, chain, alice)
    receipt = seq.slash(alice, challenger, sender=game, gas_limit=GAS)
    assert _log(receipt, seq.Slashed)["burnt"] == MIN_STAKE * 3 // 4
    assert _record(seq, alice.address).exit_epoch == exit_epoch  # its earlier exit stands
    # withdrawn: nothing left to slash
    _exit_and_wait(seq, chain, bob)
    seq.withdraw(sender=bob, gas_limit=GAS)
    assert seq.slash.call(bob, challenger, sender=game) == 0


def test_slash__no_challenger__all_burnt(seq, token, game, alice, agents):
    _join(seq, token, alice, agents["alice"])
    before = token.balanceOf(BURN)
    receipt = seq.slash(alice, ZERO, sender=game, gas_limit=GAS)
    assert _log(receipt, seq.Slashed) == {
        "operator": alice.address,
        "challenger": ZERO,
        "toChallenger": 0,
        "burnt": MIN_STAKE,
    }
    assert token.balanceOf(BURN) == before + MIN_STAKE


def test_slash__not_the_game__refused(seq, token, inbox, challenger, alice, agents):
    _join(seq, token, alice, agents["alice"])
    for caller in (alice, inbox, challenger):
        with ape.reverts("sequencer: not dispute game"):
            seq.slash(alice, challenger, sender=caller, gas_limit=GAS)


# -- prune ---------------------------------------------------------------------------------------


def test_prune__ejected_after_its_exit_epoch__removed(
    seq, token, chain, game, challenger, mallory, alice, bob, agents
):
    _join(seq, token, alice, agents["alice"])
    _join(seq, token, bob, agents["bob"])
    seq.slash(alice, challenger, sender=game, gas_limit=GAS)
    exit_epoch = _record(seq, alice.address).exit_epoch
    _tx_at(chain, seq.epochStartBlock(exit_epoch) - 1)
    with ape.reverts("sequencer: exit epoch not begun"):
        seq.prune(alice, sender=mallory, gas_limit=GAS)
    _tx_at(chain, seq.epochStartBlock(exit_epoch))
    receipt = seq.prune(alice, sender=mallory, gas_limit=GAS)
    assert _log(receipt, seq.Pruned) == {"operator": alice.address, "agentId": agents["alice"]}
    assert list(seq.operators()) == [bob.address]
    assert seq.operatorOfAgent(agents["alice"]) == ZERO
    assert seq.banned(alice)
    with ape.reverts("sequencer: not an operator"):
        seq.prune(alice, sender=mallory, gas_limit=GAS)


def test_prune__not_ejected__refused(seq, token, mallory, alice, agents):
    _join(seq, token, alice, agents["alice"])
    with ape.reverts("sequencer: not ejected"):
        seq.prune(alice, sender=mallory, gas_limit=GAS)


# -- leaders -------------------------------------------------------------------------------------


def test_leader__empty_set__zero_address(seq, chain):
    assert seq.leaderOf(seq.currentSlot()) == ZERO
    assert seq.currentLeader.call() == ZERO


def test_leader__same_slot__same_leader_from_any_caller(seq, chain, accounts, trio):
    slot = seq.currentSlot()
    leaders = {seq.leaderOf(slot, sender=account) for account in accounts[:6]}
    leaders |= {seq.currentLeader.call(sender=account) for account in accounts[:6]}
    assert len(leaders) == 1
    receipt = seq.currentLeader(sender=accounts[0])
    tx_slot = (receipt.block_number - seq.genesisBlock()) // SLOT_LENGTH
    assert receipt.return_value == seq.leaderOf(tx_slot)


def test_leader__whole_epoch_known_at_its_start_and_computed_alike_off_chain(seq, chain, trio):
    client = SequencerSet(seq)
    on_chain = [seq.leaderOf(s) for s in _slots(trio)]
    assert client.schedule(trio) == on_chain
    with ape.reverts("sequencer: seed not fixed"):
        seq.leaderOf(_slots(trio + 1).start)


def test_leader__ejected_pick__passes_to_the_next_in_set_order(
    seq, chain, game, challenger, alice, bob, carol, trio
):
    order = [alice.address, bob.address, carol.address]
    assert list(seq.operators()) == order
    epochs = range(trio, trio + 12)
    _enter(chain, seq, epochs[-1])  # 48 slots with fixed seeds: bob and carol lead some
    slots = range(_slots(epochs[0]).start, _slots(epochs[-1]).stop)
    before = _leaders(chain, seq, slots)
    totals = [seq.totalStakeAt(e) for e in epochs]
    assert {bob.address, carol.address} <= set(before)

    def next_after(leader: str, ejected: set[str]) -> str:
        i = order.index(leader)
        while order[i] in ejected:
            i = (i + 1) % len(order)
        return order[i]

    seq.slash(bob, challenger, sender=game, gas_limit=GAS)
    assert _leaders(chain, seq, slots) == [next_after(x, {bob.address}) for x in before]
    seq.slash(carol, challenger, sender=game, gas_limit=GAS)  # carol's slots, and bob's, wrap round to alice
    assert _leaders(chain, seq, slots) == [alice.address] * len(slots)
    assert [seq.totalStakeAt(e) for e in epochs] == totals  # the ejected keep their weight
    client = SequencerSet(seq)
    assert client.schedule(epochs[-1]) == [alice.address] * SLOTS_PER_EPOCH


def test_leader__withdrawal_and_rejoin__leave_the_current_schedule_alone(
    seq, token, chain, registries, deployer, operator, alice, bob, carol, agents, trio
):
    seq.requestExit(sender=bob, gas_limit=GAS)
    _exit_and_wait_after_request(seq, chain, bob)
    epoch = seq.currentEpoch()
    before = [seq.leaderOf(s) for s in _slots(epoch)]
    seq.withdraw(sender=bob, gas_limit=GAS)
    assert list(seq.operators()) == [alice.address, carol.address]
    assert [seq.leaderOf(s) for s in _slots(epoch)] == before
    # a newcomer takes bob's place in the set, still leaving the schedule alone
    agent = registries.register(operator, "https://agents.example/newcomer.json")
    token.mint(operator, MIN_STAKE, sender=deployer)
    _join(seq, token, operator, agent)
    assert list(seq.operators()) == [alice.address, operator.address, carol.address]
    assert seq.currentEpoch() == epoch
    assert [seq.leaderOf(s) for s in _slots(epoch)] == before


def test_leader__rotation__slots_follow_the_stake_shares(make_set, token, chain, alice, bob, carol, agents):
    """Stakes 1:2:5 over 2,048 slots (8 epochs of 256 one-block slots, each seed recorded at its
    epoch's start). Each operator's slot count is Binomial(2048, p) if the draw is fair; we allow
    4 standard deviations (sqrt(2048 p (1-p)): 15.0, 20.7 and 21.9 slots for p = 1/8, 2/8, 5/8), a
    false alarm about once in 16,000 runs per operator. Every leader also matches pick_leader."""
    per_epoch = 256
    seq = make_set(slot_length=1, slots_per_epoch=per_epoch)
    stakes = {alice.address: 10 * USD, bob.address: 20 * USD, carol.address: 50 * USD}
    for account, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        _join(seq, token, account, agents[name], stakes[account.address])
    epochs = range(2, 10)
    seeds = {}
    for epoch in epochs:
        _tx_at(chain, seq.epochStartBlock(epoch))
        receipt = seq.currentLeader(sender=alice, gas_limit=GAS)
        seeds[epoch] = _log(receipt, seq.SeedRecorded)["seed"]
        assert seeds[epoch] == _seed(_block_hash(chain, seq.epochStartBlock(epoch) - 1), epoch, seq.address)
    slots = range(epochs.start * per_epoch, epochs.stop * per_epoch)
    leaders = _leaders(chain, seq, slots)
    assert len(leaders) == 2048
    records = SequencerSet(seq).operators()
    assert leaders == [pick_leader(seeds[s // per_epoch], s, s // per_epoch, records) for s in slots]
    counts = Counter(leaders)
    total = sum(stakes.values())
    for address, stake in stakes.items():
        p = stake / total
        mean, sd = len(slots) * p, math.sqrt(len(slots) * p * (1 - p))
        assert abs(counts[address] - mean) <= 4 * sd, (address, counts[address], mean, sd)


# -- seeds ---------------------------------------------------------------------------------------


def test_seed__recorded_by_the_first_transaction_of_its_epoch(seq, chain, mallory):
    seq.currentLeader(sender=mallory)  # the seeds so far recorded
    epoch = seq.currentEpoch() + 1
    _mine_to(chain, seq.epochStartBlock(epoch) + 2)
    expected = _seed(_block_hash(chain, seq.epochStartBlock(epoch) - 1), epoch, seq.address)
    assert seq.seedOf(epoch) == expected  # from the block hash before it is recorded
    receipt = seq.currentLeader(sender=mallory)
    assert _logs(receipt, seq.SeedRecorded) == [{"epoch": epoch, "seed": expected}]
    assert seq.seedOf(epoch) == expected
    assert _logs(seq.currentLeader(sender=mallory), seq.SeedRecorded) == []  # once


def test_seed__future_epoch__not_fixed(seq, chain):
    epoch = seq.currentEpoch()
    _mine_to(chain, seq.epochStartBlock(epoch + 1) - 1)  # the last block before the next epoch
    with ape.reverts("sequencer: seed not fixed"):
        seq.seedOf(epoch + 1)
    with ape.reverts("sequencer: seed not fixed"):
        seq.leaderOf(_slots(epoch + 1).start)
    chain.mine()
    assert seq.seedOf(epoch + 1) == _seed(
        _block_hash(chain, seq.epochStartBlock(epoch + 1) - 1), epoch + 1, seq.address
    )


def test_seed__never_recorded_and_hash_gone__fallback(seq, chain, mallory):
    epoch = seq.currentEpoch() + 1
    _mine_to(chain, seq.epochStartBlock(epoch) + 256)  # the hash of its start - 1 is 257 blocks old
    fallback = _seed(b"\x00" * 32, epoch, seq.address)
    assert seq.seedOf(epoch) == fallback
    receipt = seq.currentLeader(sender=mallory)
    now = _epoch_of(seq, receipt.block_number)
    recorded = [log["epoch"] for log in _logs(receipt, seq.SeedRecorded)]
    assert recorded == list(range(now - MAX_SEED_CATCHUP + 1, now + 1))
    assert epoch not in recorded
    assert seq.seedOf(epoch) == fallback


def test_seed__catch_up_after_idle_epochs__bounded(seq, chain, mallory):
    first = seq.currentEpoch() + 1
    _mine_to(chain, seq.epochStartBlock(first + 9))  # ten epochs begun, no transaction
    receipt = seq.currentLeader(sender=mallory)
    assert [log["epoch"] for log in _logs(receipt, seq.SeedRecorded)] == list(range(first + 6, first + 10))
    for epoch in range(first, first + 10):  # unrecorded ones still come from their block hash
        assert seq.seedOf(epoch) == _seed(
            _block_hash(chain, seq.epochStartBlock(epoch) - 1), epoch, seq.address
        )


# -- gas -----------------------------------------------------------------------------------------


def _send_raw(chain, calls: list[tuple]) -> list[dict]:
    """Sends each (account, contract, method, args) as a raw transaction signed with the account's
    key and a fixed gas limit, skipping ape's round trips per transaction (the 64-operator set
    takes 256 of them); returns the receipts, each checked to have succeeded."""
    w3 = connect(chain.provider.http_uri)
    price, nonces, hashes = w3.eth.gas_price * 2, {}, []
    for account, contract, method, args in calls:
        nonce = nonces.setdefault(account.address, w3.eth.get_transaction_count(account.address, "pending"))
        nonces[account.address] = nonce + 1
        txn = {
            "to": contract.address,
            "data": getattr(contract, method).encode_input(*args),
            "gas": GAS,
            "gasPrice": price,
            "nonce": nonce,
            "chainId": chain.chain_id,
        }
        hashes.append(
            w3.eth.send_raw_transaction(Account.sign_transaction(txn, account.private_key).raw_transaction)
        )
    receipts = [w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    assert all(r["status"] == 1 for r in receipts)
    return receipts


def test_gas__current_leader__1_8_64_operators(
    make_set, token, registries, chain, deployer, accounts, alice, agents
):
    """Prints the gas of currentLeader() (the inbox calls it in every appendBatch) with 1, 8 and 64
    operators drawn, in a slot whose seed is recorded and in the first call of an epoch; then the
    set is full, and a withdrawal frees a place."""
    seq = make_set()
    crowd = [accounts.generate_test_account() for _ in range(MAX_OPERATORS)]
    for account in crowd:
        chain.provider.set_balance(account.address, 10**18)  # gas money, without 64 transactions
    figures = {}
    joined = 0
    registered = keccak(text="Registered(uint256,string,address)")
    for size in (1, 8, 64):
        newcomers = crowd[joined:size]
        receipts = _send_raw(chain, [(a, registries.identity, "register", ()) for a in newcomers])
        ids = [
            next(int(log["topics"][1].hex(), 16) for log in r["logs"] if log["topics"][0] == registered)
            for r in receipts
        ]
        _send_raw(
            chain,
            [(deployer, token, "mint", (a.address, MIN_STAKE)) for a in newcomers]
            + [(a, token, "approve", (seq.address, MIN_STAKE)) for a in newcomers]
            + [(a, seq, "join", (agent, MIN_STAKE)) for a, agent in zip(newcomers, ids, strict=True)],
        )
        joined = size
        epoch = seq.currentEpoch() + 2
        _tx_at(chain, seq.epochStartBlock(epoch - 1))
        seq.currentLeader(sender=alice, gas_limit=GAS)  # the seeds so far recorded
        _tx_at(chain, seq.epochStartBlock(epoch))
        first = seq.currentLeader(sender=alice, gas_limit=GAS)
        assert [log["epoch"] for log in _logs(first, seq.SeedRecorded)] == [epoch]
        steady = seq.currentLeader(sender=alice)
        assert _epoch_of(seq, steady.block_number) == epoch
        assert seq.totalStakeAt(epoch) == size * MIN_STAKE
        figures[size] = (steady.gas_used, first.gas_used)
    print("\ncurrentLeader() gas (transaction, incl. 21,000 base):")
    for size, (steady, first) in figures.items():
        print(f"  {size:2d} operators: {steady:7,d} (seed recorded), {first:7,d} (first call of the epoch)")
    assert figures[64][0] < 215_000  # about 2,650 gas per operator: one cold SLOAD (2,100) each
    token.approve(seq, MIN_STAKE, sender=alice)
    with ape.reverts("sequencer: set full"):
        seq.join(agents["alice"], MIN_STAKE, sender=alice, gas_limit=GAS)
    leaving = crowd[5]
    seq.requestExit(sender=leaving, gas_limit=GAS)
    _exit_and_wait_after_request(seq, chain, leaving)
    seq.withdraw(sender=leaving, gas_limit=GAS)
    _join(seq, token, alice, agents["alice"])
    assert list(seq.operators())[5] == alice.address
    assert seq.operatorCount() == MAX_OPERATORS


# -- the Python client ---------------------------------------------------------------------------


def test_client__join_lead_exit_withdraw(seq, token, chain, alice, agents):
    client = SequencerSet(seq)
    params = client.params()
    assert (params.min_stake, params.slot_length, params.slots_per_epoch) == (
        MIN_STAKE,
        SLOT_LENGTH,
        SLOTS_PER_EPOCH,
    )
    assert client.leader_of(client.current_slot()) is None
    eligible = client.join(alice, agents["alice"], MIN_STAKE)  # approves the stake token itself
    record = client.operator(alice.address)
    assert record is not None and record.active and record.eligible_from == eligible
    assert client.operator_of_agent(agents["alice"]) == alice.address
    assert client.operator_count() == 1 and client.is_active(alice.address)
    with pytest.raises(ContractReverted) as refused:
        client.join(alice, agents["alice"], MIN_STAKE)
    assert refused.value.reason == "sequencer: already joined"
    with pytest.raises(ContractReverted) as refused:
        client.seed_of(client.current_epoch() + 1)
    assert refused.value.reason == "sequencer: seed not fixed"
    with pytest.raises(InvalidInput):
        client.join(alice, agents["alice"], 0)
    _enter(chain, seq, eligible)
    assert client.leader_of(client.current_slot()) == alice.address
    assert client.schedule(eligible) == [alice.address] * SLOTS_PER_EPOCH
    assert client.total_stake_at(eligible) == MIN_STAKE
    exit_epoch = client.request_exit(alice)
    assert exit_epoch == client.current_epoch() + 2  # the head is the request's block
    _exit_and_wait_after_request(seq, chain, alice)
    assert client.withdraw(alice) == MIN_STAKE
    assert client.operator(alice.address) is None and client.operators() == []
    assert not client.is_banned(alice.address)
