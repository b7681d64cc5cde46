"""ERC-8004: agent registration files and the registries' client."""
