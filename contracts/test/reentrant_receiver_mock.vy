# pragma version ~=0.4.3
"""
@title ReentrantReceiverMock
@custom:contract-name ReentrantReceiverMock
@license MIT
@notice Test-only hostile ETH receiver: acts on a target (fund, claim, ...) and,
        when paid, calls the target back with preset calldata, trying to be paid
        twice; records whether that call got through.
"""

# The escrow it plays against.
target: public(address)
# Call to make back into the target when ETH arrives.
attack: public(Bytes[1024])
# Whether the last reentrant call succeeded (it must not).
reentered: public(bool)


@deploy
def __init__(target: address):
    self.target = target


@external
def arm(attack: Bytes[1024]):
    """
    @notice Sets the call to make back into the target on the next payment.
    """
    self.attack = attack


@payable
@external
def act(data: Bytes[4096], amount: uint256):
    """
    @notice Calls the target with `data`, sending `amount` wei.
    """
    raw_call(self.target, data, value=amount)


@payable
@external
def __default__():
    if msg.sender == self.target and len(self.attack) != 0:
        payload: Bytes[1024] = self.attack
        self.attack = b""
        ok: bool = raw_call(self.target, payload, revert_on_failure=False)
        self.reentered = ok
