"""The one exception tree of the off-chain package.

Every error we raise derives from `AgentL2Error` and carries a readable message; errors from
web3/ape deep inside a call are translated at the wrapper boundary, never leaked raw.
"""

from __future__ import annotations


class AgentL2Error(Exception):
    """Base of every error raised by `offchain`."""


class ConfigError(AgentL2Error):
    """A setting or a deployments file is missing or wrong."""


class InvalidInput(AgentL2Error, ValueError):
    """Input rejected before anything was sent: nothing changed."""


class RegistrationFileError(InvalidInput):
    """An ERC-8004 registration file (or its data: URI) is malformed."""


class ContractReverted(AgentL2Error):
    """A contract call reverted; `reason` is the contract's revert string."""

    def __init__(self, contract: str, function: str, reason: str | None):
        self.contract = contract
        self.function = function
        self.reason = reason
        super().__init__(f"{contract}.{function} reverted: {reason or 'no reason given'}")


class TransactionFailed(AgentL2Error):
    """A transaction could not be sent or was not mined (node error, not a revert)."""

    def __init__(self, contract: str, function: str, detail: str):
        self.contract = contract
        self.function = function
        super().__init__(f"{contract}.{function} failed: {detail}")


class EventNotFound(AgentL2Error):
    """A receipt lacks the event that the call must emit."""
