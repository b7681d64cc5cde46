"""The sequencer service: admission, soft confirmations, blocks and batches (docs/services.md)."""
