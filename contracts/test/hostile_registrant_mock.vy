# pragma version ~=0.4.3
"""
@title HostileRegistrantMock
@custom:contract-name HostileRegistrantMock
@license MIT
@notice Test-only: registers an agent and, from inside the ERC-721 receiver
        hook, hands it to a victim, so that a registry writing the agent's
        wallet after the hook would leave this contract as the victim's wallet.
"""


interface IIdentityRegistry:
    def register() -> uint256: nonpayable
    def transferFrom(owner: address, to: address, agentId: uint256): nonpayable


# The registry under test.
registry: public(address)
# Who receives the agent from inside the hook.
victim: public(address)


@deploy
def __init__(registry: address, victim: address):
    """
    @param registry The identity registry.
    @param victim The address the agent is handed to during the hook.
    """
    self.registry = registry
    self.victim = victim


@external
def attack() -> uint256:
    """
    @notice Registers an agent (handed away during the receiver hook).
    @return The new agent's id.
    """
    return extcall IIdentityRegistry(self.registry).register()


@external
def onERC721Received(operator: address, owner: address, agentId: uint256, data: Bytes[1024]) -> bytes4:
    """
    @notice ERC-721 receiver hook: hands the agent to the victim, then accepts.
    @return The ERC-721 receiver magic value.
    """
    extcall IIdentityRegistry(self.registry).transferFrom(self, self.victim, agentId)
    return method_id("onERC721Received(address,address,uint256,bytes)", output_type=bytes4)
