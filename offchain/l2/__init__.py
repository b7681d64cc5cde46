"""The L2 protocol in Python: state tree, codec, state transition (docs/l2-protocol.md)."""
