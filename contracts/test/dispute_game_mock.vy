# pragma version ~=0.4.3
"""
@title DisputeGameMock
@custom:contract-name DisputeGameMock
@license MIT
@notice Test stand-in for the rollup's dispute game (a later issue builds the real one):
        cloned and initialized by the RollupFactory like the real game, it lets a test call
        the hooks the inbox and the sequencer set keep for the game.
"""


interface IInbox:
    def noteDispute(index: uint256, opened: bool): nonpayable
    def removeClaimsFrom(index: uint256) -> uint256: nonpayable


interface ISequencerSet:
    def noteDispute(operator: address, opened: bool): nonpayable
    def slash(operator: address, challenger: address) -> uint256: nonpayable


struct RollupParams:
    chainId: uint64
    stakeToken: address
    minStake: uint256
    slotLength: uint64
    slotsPerEpoch: uint64
    exitDelay: uint64
    challengeWindow: uint64
    forceInclusionDelay: uint64
    escapeDelay: uint64
    maxTimestampLag: uint64
    proposerBond: uint256
    challengerBond: uint256
    challengerShareBps: uint16
    disputeClock: uint64


inbox: public(address)
sequencerSet: public(address)


@external
def initialize(p: RollupParams, inbox_: address, sequencer_set: address):
    assert self.inbox == empty(address), "mock: initialized"
    self.inbox = inbox_
    self.sequencerSet = sequencer_set


@external
def noteClaimDispute(index: uint256, opened: bool):
    extcall IInbox(self.inbox).noteDispute(index, opened)


@external
def removeClaimsFrom(index: uint256) -> uint256:
    return extcall IInbox(self.inbox).removeClaimsFrom(index)


@external
def noteOperatorDispute(operator: address, opened: bool):
    extcall ISequencerSet(self.sequencerSet).noteDispute(operator, opened)


@external
def slash(operator: address, challenger: address) -> uint256:
    return extcall ISequencerSet(self.sequencerSet).slash(operator, challenger)


@external
@payable
def __default__():
    pass
