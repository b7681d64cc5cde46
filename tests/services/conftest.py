"""The dispute tests' rollup (one staked sequencer, batch 0 funding four L2 users), reused."""

from tests.contracts.dispute.conftest import (  # noqa: F401  (fixtures, registered by import)
    challenger,
    first_batch,
    game,
    implementation,
    inbox,
    rollup,
    sequencer,
    sequencer_set,
    stake,
)
