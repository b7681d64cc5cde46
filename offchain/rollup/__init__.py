"""Typed clients of a rollup's L1 contracts: factory, inbox, sequencer set."""
