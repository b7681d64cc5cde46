"""x402 payments: EIP-3009 authorizations, a facilitator, a resource-server middleware, a client."""
