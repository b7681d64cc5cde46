"""Typed access to our L1 contracts: deployments and call helpers."""
