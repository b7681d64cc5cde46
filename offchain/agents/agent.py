"""An agent: a key, an ERC-8004 identity whose registration file lists its services, a role, and
a policy. It acts only through public interfaces (the contracts, the HTTP APIs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from offchain.agents.policy import Policy, RulePolicy
from offchain.identity.registration import RegistrationFile, Service
from offchain.identity.registries import Erc8004


class Role(StrEnum):
    FOUNDER = "founder"
    OPERATOR = "operator"  # runs a sequencer
    MALICIOUS = "malicious operator"  # runs a sequencer that lies (fault injection)
    WATCHTOWER = "watchtower"
    SERVICE = "service provider"
    CONSUMER = "consumer"


@dataclass
class Agent:
    name: str
    role: Role
    account: Any  # an ape account: its key signs transactions, authorizations and L2 records
    policy: Policy = field(default_factory=RulePolicy)
    endpoint: str = ""  # what it serves (a paid API, a sequencer's API), if anything
    agent_id: int = 0  # its ERC-8004 identity, once registered

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def key(self) -> str:
        return str(self.account.private_key)

    def registration(self) -> RegistrationFile:
        services = [Service(name="web", endpoint=self.endpoint)] if self.endpoint else []
        return RegistrationFile(
            name=self.name,
            description=f"Agent L2 {self.role.value}",
            services=services,
            x402Support=self.role == Role.SERVICE,
            supportedTrust=["reputation"],
        )

    def register(self, registries: Erc8004) -> int:
        """Registers its identity with its registration file (stored on chain as a data: URI)."""
        self.agent_id = registries.register(self.account, self.registration())
        return self.agent_id
