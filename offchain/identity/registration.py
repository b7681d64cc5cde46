"""The ERC-8004 registration file: the JSON an agent's URI points at.

Shape per the ERC text of 25 Jan 2026 (see docs/erc8004.md): type, name, description, image,
services, x402Support, active, registrations, supportedTrust. Files written before 13 Jan 2026
call the services list `endpoints`; we read that name too and always write `services`.
Fetching https:// or ipfs:// URIs is the caller's business; `data:` URIs are handled here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from offchain.errors import RegistrationFileError

REGISTRATION_TYPE = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1"
DATA_URI_PREFIX = "data:application/json;base64,"
KNOWN_TRUST_MODELS = ("reputation", "crypto-economic", "tee-attestation")

_REGISTRY_REF = re.compile(r"^eip155:[1-9][0-9]*:0x[0-9a-fA-F]{40}$")

NonEmpty = Annotated[str, Field(min_length=1, max_length=2048)]


class Service(BaseModel):
    """One way to reach the agent (web, A2A, MCP, OASF, ENS, DID, email, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: NonEmpty
    endpoint: NonEmpty
    version: str | None = None


class Registration(BaseModel):
    """Where the agent is registered: an agent id in a registry `eip155:<chainId>:<address>`."""

    model_config = ConfigDict(frozen=True)

    agentId: Annotated[int, Field(ge=0)]
    agentRegistry: str

    @field_validator("agentRegistry")
    @classmethod
    def _registry_ref(cls, value: str) -> str:
        if not _REGISTRY_REF.match(value):
            raise ValueError("agentRegistry must read eip155:<chainId>:<0x address>")
        return value


class RegistrationFile(BaseModel):
    """An agent's registration file."""

    model_config = ConfigDict(extra="allow")

    type: Literal["https://eips.ethereum.org/EIPS/eip-8004#registration-v1"] = REGISTRATION_TYPE
    name: Annotated[str, Field(min_length=1, max_length=256)]
    description: Annotated[str, Field(max_length=4096)] = ""
    image: Annotated[str, Field(max_length=2048)] = ""
    services: list[Service] = Field(default_factory=list, max_length=64)
    x402Support: bool = False
    active: bool = True
    registrations: list[Registration] = Field(default_factory=list, max_length=64)
    supportedTrust: list[NonEmpty] = Field(default_factory=list, max_length=16)

    @model_validator(mode="before")
    @classmethod
    def _legacy_endpoints(cls, data: Any) -> Any:
        if isinstance(data, dict) and "endpoints" in data and "services" not in data:
            data = {**data, "services": data["endpoints"]}
            del data["endpoints"]
        return data

    # -- JSON ------------------------------------------------------------------------------------

    def to_json(self) -> str:
        """Compact JSON, fields in the standard's order, unset optional fields left out."""
        return json.dumps(self.model_dump(mode="json", exclude_none=True), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> RegistrationFile:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistrationFileError(f"registration file is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RegistrationFileError("registration file must be a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RegistrationFileError(f"invalid registration file: {_first_error(exc)}") from None

    # -- data: URI -------------------------------------------------------------------------------

    def to_data_uri(self) -> str:
        """`data:application/json;base64,...`: the file carried on chain in the agentURI itself."""
        return DATA_URI_PREFIX + base64.b64encode(self.to_json().encode()).decode()

    @classmethod
    def from_data_uri(cls, uri: str) -> RegistrationFile:
        if not uri.startswith(DATA_URI_PREFIX):
            raise RegistrationFileError(f"not a base64 JSON data: URI (expected prefix {DATA_URI_PREFIX!r})")
        try:
            raw = base64.b64decode(uri[len(DATA_URI_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise RegistrationFileError("data: URI payload is not valid base64") from None
        return cls.from_json(raw)

    # -- helpers ---------------------------------------------------------------------------------

    def with_registration(self, agent_id: int, chain_id: int, registry: str) -> RegistrationFile:
        """A copy that also lists the agent's registration in `registry` on `chain_id`."""
        entry = Registration(agentId=agent_id, agentRegistry=f"eip155:{chain_id}:{registry}")
        kept = [r for r in self.registrations if r.agentRegistry != entry.agentRegistry]
        return self.model_copy(update={"registrations": [*kept, entry]})

    def service(self, name: str) -> Service | None:
        """The first service called `name` (case-insensitive), if any."""
        return next((s for s in self.services if s.name.lower() == name.lower()), None)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "file"
    return f"{where}: {err['msg']}"
