"""Agent L2: the off-chain half (chain wrappers, L2 node, agents)."""
