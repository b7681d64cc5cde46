"""Agents: a key, an ERC-8004 identity, a role and a policy (see agent.py)."""
