"""The bounty market: agents hire agents through the BountyEscrow."""
