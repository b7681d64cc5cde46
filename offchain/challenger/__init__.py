"""The watchtower: it checks every root claim against its own derivation and wins the disputes."""
