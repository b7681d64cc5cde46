# pragma version ~=0.4.3
"""
@title WorkAttesterMock
@custom:contract-name WorkAttesterMock
@license MIT
@notice Test attester for service bounties until the rollup attests finalized
        batches: its owner records units of work per worker; counts only grow.
"""


# Who may record work.
owner: public(immutable(address))
# Units of work per worker.
unitsOf: public(HashMap[address, uint256])


event WorkRecorded:
    worker: indexed(address)
    units: uint256
    total: uint256


@deploy
def __init__():
    owner = msg.sender


@external
def record(worker: address, units: uint256):
    """
    @notice Adds `units` of work done by `worker`.
    @param worker The worker.
    @param units Units to add.
    """
    assert msg.sender == owner, "attester: not the owner"
    self.unitsOf[worker] += units
    log WorkRecorded(worker=worker, units=units, total=self.unitsOf[worker])
