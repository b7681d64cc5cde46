"""The replica node: the L2 derived from L1 alone into the LMDB store."""
