"""Typed client of the ERC-8004 registries: deploy, register, rate, validate.

Contract rules (bounds, who may call what) live in the contracts alone: a call that breaks one
is stopped at gas estimation, so nothing is sent, and surfaces as `ContractReverted` with the
contract's reason. Arguments that cannot even be encoded raise `InvalidInput`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ape import chain, project
from ape.contracts import ContractInstance
from eth_account import Account
from eth_utils import to_checksum_address
from pydantic import BaseModel

from offchain.chain.calls import event, transact, view
from offchain.chain.contracts import contract_at
from offchain.chain.deployments import Deployment, current_network
from offchain.chain.eip712 import Eip712Domain, typed_digest
from offchain.errors import InvalidInput
from offchain.identity.registration import RegistrationFile

ZERO_HASH = b"\x00" * 32


def _as_bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInput(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(value)


CONTRACT_NAMES = ("IdentityRegistry", "ReputationRegistry", "ValidationRegistry")


class Feedback(BaseModel):
    agent_id: int
    client: str
    index: int
    value: int
    decimals: int
    tag1: str
    tag2: str
    revoked: bool

    @property
    def amount(self) -> Decimal:
        return Decimal(self.value).scaleb(-self.decimals)


class Summary(BaseModel):
    count: int
    value: int
    decimals: int

    @property
    def mean(self) -> Decimal:
        return Decimal(self.value).scaleb(-self.decimals)


class ValidationStatus(BaseModel):
    request_hash: bytes
    validator: str
    agent_id: int
    response: int
    response_hash: bytes
    tag: str
    last_update: int

    @property
    def answered(self) -> bool:
        return self.last_update != 0


class Erc8004:
    """The three registries of one deployment."""

    def __init__(
        self, identity: ContractInstance, reputation: ContractInstance, validation: ContractInstance
    ):
        self.identity = identity
        self.reputation = reputation
        self.validation = validation

    # -- deployment ------------------------------------------------------------------------------

    @classmethod
    def deploy(cls, deployer: Any) -> Erc8004:
        """Deploys the three registries from `deployer`."""
        identity = deployer.deploy(project.IdentityRegistry)
        reputation = deployer.deploy(project.ReputationRegistry, identity.address)
        validation = deployer.deploy(project.ValidationRegistry, identity.address)
        return cls(identity, reputation, validation)

    @classmethod
    def from_deployment(cls, deployment: Deployment) -> Erc8004:
        return cls(
            contract_at("IdentityRegistry", deployment.address("IdentityRegistry")),
            contract_at("ReputationRegistry", deployment.address("ReputationRegistry")),
            contract_at("ValidationRegistry", deployment.address("ValidationRegistry")),
        )

    def deployment(self, deployer: Any) -> Deployment:
        """The record `ape run deploy` saves."""
        return Deployment(
            network=current_network(),
            chain_id=chain.chain_id,
            block=chain.blocks.head.number,
            deployer=str(deployer.address),
            contracts={
                "IdentityRegistry": str(self.identity.address),
                "ReputationRegistry": str(self.reputation.address),
                "ValidationRegistry": str(self.validation.address),
            },
        )

    # -- identity --------------------------------------------------------------------------------

    def register(
        self,
        owner: Any,
        registration: RegistrationFile | str | None = None,
        metadata: dict[str, bytes] | None = None,
    ) -> int:
        """Registers an agent owned by `owner`; a `RegistrationFile` goes on chain as a data: URI.

        Returns the new agentId, read from the `Registered` event.
        """
        uri = registration.to_data_uri() if isinstance(registration, RegistrationFile) else registration
        if metadata:
            entries = [(key, _as_bytes(value, f"metadata[{key!r}]")) for key, value in metadata.items()]
            receipt = transact(self.identity, "register", uri or "", entries, sender=owner)
        elif uri is not None:
            receipt = transact(self.identity, "register", uri, sender=owner)
        else:
            receipt = transact(self.identity, "register", sender=owner)
        return int(event(receipt, self.identity, "Registered").agentId)

    def set_agent_uri(self, owner: Any, agent_id: int, registration: RegistrationFile | str) -> None:
        uri = registration.to_data_uri() if isinstance(registration, RegistrationFile) else registration
        transact(self.identity, "setAgentURI", agent_id, uri, sender=owner)

    def agent_uri(self, agent_id: int) -> str:
        self.owner_of(agent_id)  # a clear error for an unknown agent
        return str(view(self.identity, "tokenURI", agent_id))

    def registration_file(self, agent_id: int) -> RegistrationFile:
        """The agent's registration file, when its URI is a data: URI."""
        return RegistrationFile.from_data_uri(self.agent_uri(agent_id))

    def owner_of(self, agent_id: int) -> str:
        view(self.identity, "getAgentWallet", agent_id)  # "identity: unknown agent" before ERC-721's error
        return str(view(self.identity, "ownerOf", agent_id))

    def agent_count(self) -> int:
        return int(view(self.identity, "agentCount"))

    def set_metadata(self, owner: Any, agent_id: int, key: str, value: bytes) -> None:
        transact(
            self.identity, "setMetadata", agent_id, key, _as_bytes(value, "metadata value"), sender=owner
        )

    def get_metadata(self, agent_id: int, key: str) -> bytes:
        return bytes(view(self.identity, "getMetadata", agent_id, key))

    def agent_wallet(self, agent_id: int) -> str | None:
        wallet = str(view(self.identity, "getAgentWallet", agent_id))
        return None if int(wallet, 16) == 0 else wallet

    def agent_wallet_digest(self, agent_id: int, new_wallet: str, owner: str, deadline: int) -> bytes:
        """The EIP-712 digest a wallet signs to become the agent's wallet (domain read on chain)."""
        try:
            new_wallet, owner = to_checksum_address(new_wallet), to_checksum_address(owner)
        except (ValueError, TypeError):
            raise InvalidInput(f"not an address: {new_wallet!r} or {owner!r}") from None
        domain = Eip712Domain.from_eip5267(view(self.identity, "eip712Domain"))
        fields = [
            {"name": "agentId", "type": "uint256"},
            {"name": "newWallet", "type": "address"},
            {"name": "owner", "type": "address"},
            {"name": "deadline", "type": "uint256"},
        ]
        message = {"agentId": agent_id, "newWallet": new_wallet, "owner": owner, "deadline": deadline}
        return typed_digest(domain, "AgentWalletSet", fields, message)

    def set_agent_wallet(
        self, owner: Any, agent_id: int, new_wallet: str, signature: bytes, deadline: int
    ) -> None:
        transact(self.identity, "setAgentWallet", agent_id, new_wallet, deadline, signature, sender=owner)

    def set_agent_wallet_with_key(
        self, owner: Any, agent_id: int, wallet_private_key: str | bytes, valid_for: int = 240
    ) -> str:
        """Proves an EOA wallet with its own key and sets it; returns the wallet address."""
        if not 0 < valid_for <= 300:
            raise InvalidInput("valid_for must be 1..300 seconds (the registry accepts at most 5 minutes)")
        try:
            wallet = Account.from_key(wallet_private_key)
        except (ValueError, TypeError):
            raise InvalidInput("wallet_private_key is not a secp256k1 private key") from None
        deadline = chain.pending_timestamp + valid_for  # the chain's clock, not ours
        digest = self.agent_wallet_digest(agent_id, wallet.address, str(owner.address), deadline)
        signature = Account.unsafe_sign_hash(digest, wallet_private_key).signature
        self.set_agent_wallet(owner, agent_id, wallet.address, bytes(signature), deadline)
        return wallet.address

    def unset_agent_wallet(self, owner: Any, agent_id: int) -> None:
        transact(self.identity, "unsetAgentWallet", agent_id, sender=owner)

    # -- reputation ------------------------------------------------------------------------------

    def give_feedback(
        self,
        client: Any,
        agent_id: int,
        value: int,
        decimals: int = 0,
        tag1: str = "",
        tag2: str = "",
        endpoint: str = "",
        feedback_uri: str = "",
        feedback_hash: bytes = ZERO_HASH,
    ) -> int:
        """Leaves feedback; returns its index for this client (from 1)."""
        receipt = transact(
            self.reputation,
            "giveFeedback",
            agent_id,
            value,
            decimals,
            tag1,
            tag2,
            endpoint,
            feedback_uri,
            feedback_hash,
            sender=client,
        )
        return int(event(receipt, self.reputation, "NewFeedback").feedbackIndex)

    def revoke_feedback(self, client: Any, agent_id: int, index: int) -> None:
        transact(self.reputation, "revokeFeedback", agent_id, index, sender=client)

    def respond_to_feedback(
        self,
        responder: Any,
        agent_id: int,
        client: str,
        index: int,
        uri: str,
        response_hash: bytes = ZERO_HASH,
    ) -> None:
        transact(
            self.reputation, "appendResponse", agent_id, client, index, uri, response_hash, sender=responder
        )

    def read_feedback(self, agent_id: int, client: str, index: int) -> Feedback:
        value, decimals, tag1, tag2, revoked = view(self.reputation, "readFeedback", agent_id, client, index)
        return Feedback(
            agent_id=agent_id,
            client=str(client),
            index=index,
            value=value,
            decimals=decimals,
            tag1=tag1,
            tag2=tag2,
            revoked=revoked,
        )

    def summary(self, agent_id: int, clients: list[str], tag1: str = "", tag2: str = "") -> Summary:
        """Reputation over the feedback of `clients` (the registry requires a client list)."""
        if not clients:
            raise InvalidInput("a reputation summary needs a list of trusted clients (ERC-8004)")
        count, value, decimals = view(self.reputation, "getSummary", agent_id, clients, tag1, tag2)
        return Summary(count=count, value=value, decimals=decimals)

    def clients(self, agent_id: int) -> list[str]:
        return [str(a) for a in view(self.reputation, "getClients", agent_id)]

    # -- validation ------------------------------------------------------------------------------

    def request_validation(self, owner: Any, agent_id: int, validator: str, request_uri: str) -> bytes:
        """Asks `validator` to validate the agent; returns the request hash."""
        request_hash = bytes(view(self.validation, "computeRequestHash", validator, agent_id, request_uri))
        transact(
            self.validation, "validationRequest", validator, agent_id, request_uri, request_hash, sender=owner
        )
        return request_hash

    def respond_validation(
        self,
        validator: Any,
        request_hash: bytes,
        response: int,
        response_uri: str = "",
        response_hash: bytes = ZERO_HASH,
        tag: str = "",
    ) -> None:
        transact(
            self.validation,
            "validationResponse",
            request_hash,
            response,
            response_uri,
            response_hash,
            tag,
            sender=validator,
        )

    def validation_status(self, request_hash: bytes) -> ValidationStatus:
        validator, agent_id, response, response_hash, tag, last_update = view(
            self.validation, "getValidationStatus", request_hash
        )
        return ValidationStatus(
            request_hash=bytes(request_hash),
            validator=str(validator),
            agent_id=agent_id,
            response=response,
            response_hash=bytes(response_hash),
            tag=tag,
            last_update=last_update,
        )

    def validation_summary(
        self, agent_id: int, validators: list[str] | None = None, tag: str = ""
    ) -> tuple[int, int]:
        """(answered requests counted, their mean score)."""
        count, average = view(self.validation, "getSummary", agent_id, validators or [], tag)
        return int(count), int(average)
