# pragma version ~=0.4.3
"""
@title ReentrantTokenMock
@custom:contract-name ReentrantTokenMock
@license MIT
@notice Test-only hostile ERC-20: on every transfer out of the target it calls
        the target back with preset calldata (e.g. a second withdraw or refund),
        trying to take more than it is owed.
"""

from ethereum.ercs import IERC20

implements: IERC20

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)

# Contract whose outgoing transfers trigger the attack, and the call to make.
target: public(address)
attack: public(Bytes[1024])
# Whether the last reentrant call succeeded (it must not).
reentered: public(bool)


@external
def arm(target: address, attack: Bytes[1024]):
    """
    @notice Sets the call to make back into `target` during its next transfer out.
    """
    self.target = target
    self.attack = attack


@external
def mint(to: address, amount: uint256):
    """
    @notice Mints freely (test token).
    """
    self.balanceOf[to] += amount
    self.totalSupply += amount


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice ERC-20 approve.
    """
    self.allowance[msg.sender][spender] = amount
    return True


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transfer; out of the target, first tries the preset call back into it.
    """
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    if msg.sender == self.target and len(self.attack) != 0:
        payload: Bytes[1024] = self.attack
        self.attack = b""
        ok: bool = raw_call(self.target, payload, revert_on_failure=False)
        self.reentered = ok
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transferFrom.
    """
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    return True
