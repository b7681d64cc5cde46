"""ABI conformance: our three ERC-8004 registries against the current reference interface.

The reference is section 1 of the ERC-8004 anchor report (/work/shared/reference/erc8004.md: the ERC
text of 25 Jan 2026 = reference contracts 2.0.0). Its Solidity blocks are copied below verbatim and
parsed by a small helper, so the transcription can be diffed against the report line by line.

For every function and event of the reference, our compiled ABI must have exactly:
- the same selector (name + canonical input types, structs as tuples, e.g. `(string,bytes)[]`);
- the same output types;
- `view` where the reference says `view`, and `nonpayable` where it shows no mutability (Solidity's
  default for `external`);
- for events: the same signature (name + input types), the same `indexed` flags, and not anonymous.
The 4-byte selectors and event topic0s are also computed with keccak from the reference text and
compared with the ones ape derives from our ABI. Extra functions and events (ERC-721's, paging
helpers, limits) are allowed. Nothing is deployed: the ABIs come from the compiled project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from eth_utils import keccak

# -- the reference, transcribed verbatim from section 1 ----------------------------------------------

IDENTITY_REFERENCE = """
struct MetadataEntry { string metadataKey; bytes metadataValue; }
function register() external returns (uint256 agentId);
function register(string agentURI) external returns (uint256 agentId);
function register(string agentURI, MetadataEntry[] calldata metadata) external returns (uint256 agentId);
function setAgentURI(uint256 agentId, string calldata newURI) external;   // owner/approved/operator
function getMetadata(uint256 agentId, string memory metadataKey) external view returns (bytes memory);
function setMetadata(uint256 agentId, string memory metadataKey, bytes memory metadataValue) external;
function setAgentWallet(uint256 agentId, address newWallet, uint256 deadline, bytes calldata signature) external;
function getAgentWallet(uint256 agentId) external view returns (address);
function unsetAgentWallet(uint256 agentId) external;
event Registered(uint256 indexed agentId, string agentURI, address indexed owner);
event MetadataSet(uint256 indexed agentId, string indexed indexedMetadataKey, string metadataKey, bytes metadataValue);
event URIUpdated(uint256 indexed agentId, string newURI, address indexed updatedBy);
"""

# "tokenId is the agentId and tokenURI is the agentURI": the ERC-721 (metadata extension) readers.
IDENTITY_ERC721_REFERENCE = """
function tokenURI(uint256 tokenId) external view returns (string memory);
function ownerOf(uint256 tokenId) external view returns (address);
"""

REPUTATION_REFERENCE = """
function giveFeedback(uint256 agentId, int128 value, uint8 valueDecimals, string calldata tag1, string calldata tag2, string calldata endpoint, string calldata feedbackURI, bytes32 feedbackHash) external;
function revokeFeedback(uint256 agentId, uint64 feedbackIndex) external;
function appendResponse(uint256 agentId, address clientAddress, uint64 feedbackIndex, string calldata responseURI, bytes32 responseHash) external; // anyone
function getSummary(uint256 agentId, address[] calldata clientAddresses, string tag1, string tag2) external view returns (uint64 count, int128 summaryValue, uint8 summaryValueDecimals);
function readFeedback(uint256 agentId, address clientAddress, uint64 feedbackIndex) external view returns (int128 value, uint8 valueDecimals, string tag1, string tag2, bool isRevoked);
function readAllFeedback(uint256 agentId, address[] calldata clientAddresses, string tag1, string tag2, bool includeRevoked) external view returns (address[] clients, uint64[] feedbackIndexes, int128[] values, uint8[] valueDecimals, string[] tag1s, string[] tag2s, bool[] revokedStatuses);
function getResponseCount(uint256 agentId, address clientAddress, uint64 feedbackIndex, address[] responders) external view returns (uint64 count);
function getClients(uint256 agentId) external view returns (address[] memory);
function getLastIndex(uint256 agentId, address clientAddress) external view returns (uint64);
event NewFeedback(uint256 indexed agentId, address indexed clientAddress, uint64 feedbackIndex, int128 value, uint8 valueDecimals, string indexed indexedTag1, string tag1, string tag2, string endpoint, string feedbackURI, bytes32 feedbackHash);
event FeedbackRevoked(uint256 indexed agentId, address indexed clientAddress, uint64 indexed feedbackIndex);
event ResponseAppended(uint256 indexed agentId, address indexed clientAddress, uint64 feedbackIndex, address indexed responder, string responseURI, bytes32 responseHash);
"""

# Named in section 1's prose ("`initialize(address identityRegistry_)`, `getIdentityRegistry()`");
# the declaration is the ERC text's. `initialize` is the upgradeable reference's and is not required:
# our registry takes the identity registry in its constructor.
REPUTATION_GETTER_REFERENCE = """
function getIdentityRegistry() external view returns (address identityRegistry);
"""

VALIDATION_REFERENCE = """
function validationRequest(address validatorAddress, uint256 agentId, string requestURI, bytes32 requestHash) external;   // owner/operator
function validationResponse(bytes32 requestHash, uint8 response, string responseURI, bytes32 responseHash, string tag) external; // only validator; 0..100; repeatable
function getValidationStatus(bytes32 requestHash) external view returns (address validatorAddress, uint256 agentId, uint8 response, bytes32 responseHash, string tag, uint256 lastUpdate);
function getSummary(uint256 agentId, address[] calldata validatorAddresses, string tag) external view returns (uint64 count, uint8 averageResponse);
function getAgentValidations(uint256 agentId) external view returns (bytes32[] memory);
function getValidatorRequests(address validatorAddress) external view returns (bytes32[] memory);
event ValidationRequest(address indexed validatorAddress, uint256 indexed agentId, string requestURI, bytes32 indexed requestHash);
event ValidationResponse(address indexed validatorAddress, uint256 indexed agentId, bytes32 indexed requestHash, uint8 response, string responseURI, bytes32 responseHash, string tag);
"""

REFERENCES = {
    "IdentityRegistry": IDENTITY_REFERENCE + IDENTITY_ERC721_REFERENCE,
    "ReputationRegistry": REPUTATION_REFERENCE + REPUTATION_GETTER_REFERENCE,
    "ValidationRegistry": VALIDATION_REFERENCE,
}

# How many functions and events each reference must parse into (guards the parser and the copy).
EXPECTED_COUNTS = {
    "IdentityRegistry": (11, 3),
    "ReputationRegistry": (10, 3),
    "ValidationRegistry": (6, 2),
}


# -- a normalised view of one function / event -----------------------------------------------------


@dataclass(frozen=True)
class Function:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    mutability: str

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.inputs)})"

    @property
    def selector(self) -> str:
        return "0x" + keccak(text=self.signature)[:4].hex()

    def describe(self) -> str:
        returns = f" returns ({','.join(self.outputs)})" if self.outputs else ""
        return f"{self.signature} {self.mutability}{returns}"


@dataclass(frozen=True)
class Event:
    name: str
    inputs: tuple[str, ...]
    indexed: tuple[bool, ...]
    anonymous: bool = False

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.inputs)})"

    @property
    def topic0(self) -> str:
        return "0x" + keccak(text=self.signature).hex()

    def describe(self) -> str:
        args = ",".join(f"{t} indexed" if i else t for t, i in zip(self.inputs, self.indexed, strict=True))
        return f"{self.name}({args}){' anonymous' if self.anonymous else ''}"


# -- the reference parser ---------------------------------------------------------------------------

_STRUCT = re.compile(r"struct\s+(?P<name>\w+)\s*\{(?P<members>[^}]*)\}")
_FUNCTION = re.compile(
    r"function\s+(?P<name>\w+)\s*\((?P<params>[^()]*)\)(?P<modifiers>[\w\s]*?)"
    r"(?:\breturns\s*\((?P<returns>[^()]*)\))?",
)
_EVENT = re.compile(r"event\s+(?P<name>\w+)\s*\((?P<params>[^()]*)\)(?P<anonymous>\s+anonymous)?")
_LOCATIONS = {"calldata", "memory", "storage"}
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")
_ELEMENTARY = {
    "address",
    "bool",
    "string",
    "bytes",
    *(f"bytes{n}" for n in range(1, 33)),
    *(f"{sign}int{bits}" for sign in ("", "u") for bits in range(8, 257, 8)),
}
_ALIASES = {"uint": "uint256", "int": "int256", "byte": "bytes1"}


def _canonical_reference_type(raw: str, structs: dict[str, str]) -> str:
    """`MetadataEntry[]` -> `(string,bytes)[]`, `uint` -> `uint256`; raises on anything unknown."""
    match = re.fullmatch(r"(?P<base>\w+)(?P<arrays>(\[\d*\])*)", raw)
    if match is None:
        raise ValueError(f"cannot parse type {raw!r}")
    base = _ALIASES.get(match["base"], match["base"])
    if base in structs:
        base = structs[base]
    elif base not in _ELEMENTARY:
        raise ValueError(f"unknown type {raw!r}")
    return base + match["arrays"]


def _parse_params(text: str, structs: dict[str, str], *, event: bool) -> list[tuple[str, bool]]:
    """`uint256 indexed agentId, string calldata uri` -> [(type, indexed), ...]."""
    params = []
    for param in filter(None, (p.strip() for p in text.split(","))):
        raw_type, *rest = param.split()
        indexed = "indexed" in rest
        if indexed and not event:
            raise ValueError(f"`indexed` outside an event: {param!r}")
        names = [word for word in rest if word not in _LOCATIONS | {"indexed"}]
        if len(names) > 1 or not all(_IDENTIFIER.fullmatch(n) for n in names):
            raise ValueError(f"cannot parse parameter {param!r}")
        params.append((_canonical_reference_type(raw_type, structs), indexed))
    return params


def parse_reference(source: str) -> tuple[dict[str, Function], dict[str, Event]]:
    """Parse Solidity declarations into {signature: Function} and {signature: Event}."""
    source = re.sub(r"//[^\n]*", "", source)
    structs = {}
    for match in _STRUCT.finditer(source):
        members = [m.split()[0] for m in (s.strip() for s in match["members"].split(";")) if m]
        structs[match["name"]] = "(" + ",".join(_canonical_reference_type(m, structs) for m in members) + ")"
    source = _STRUCT.sub("", source)

    functions: dict[str, Function] = {}
    events: dict[str, Event] = {}
    for statement in filter(None, (s.strip() for s in source.split(";"))):
        statement = " ".join(statement.split())
        if fn := _FUNCTION.fullmatch(statement):
            modifiers = set(fn["modifiers"].split())
            if "external" not in modifiers or not modifiers <= {"external", "view", "pure", "payable"}:
                raise ValueError(f"unexpected modifiers in {statement!r}")
            mutability = next((m for m in ("view", "pure", "payable") if m in modifiers), "nonpayable")
            inputs = tuple(t for t, _ in _parse_params(fn["params"], structs, event=False))
            outputs = tuple(t for t, _ in _parse_params(fn["returns"] or "", structs, event=False))
            parsed = Function(fn["name"], inputs, outputs, mutability)
            if parsed.signature in functions:
                raise ValueError(f"duplicate function {parsed.signature}")
            functions[parsed.signature] = parsed
        elif ev := _EVENT.fullmatch(statement):
            params = _parse_params(ev["params"], structs, event=True)
            parsed_event = Event(
                ev["name"],
                tuple(t for t, _ in params),
                tuple(i for _, i in params),
                anonymous=bool(ev["anonymous"]),
            )
            if parsed_event.signature in events:
                raise ValueError(f"duplicate event {parsed_event.signature}")
            events[parsed_event.signature] = parsed_event
        else:
            raise ValueError(f"cannot parse reference statement {statement!r}")
    return functions, events


# -- our compiled ABI, in the same shape ------------------------------------------------------------


def _canonical_abi_type(abi_type) -> str:
    """Canonical type of an ethpm-types ABI input/output: tuples become `(a,b)` plus array suffix."""
    if abi_type.type.startswith("tuple"):
        inner = ",".join(_canonical_abi_type(c) for c in abi_type.components or [])
        return f"({inner}){abi_type.type[len('tuple') :]}"
    return abi_type.type


def our_abi(contract_type) -> tuple[dict[str, Function], dict[str, Event]]:
    functions = {}
    events = {}
    for item in contract_type.abi:
        if item.type == "function":
            fn = Function(
                item.name,
                tuple(_canonical_abi_type(i) for i in item.inputs),
                tuple(_canonical_abi_type(o) for o in item.outputs),
                item.stateMutability,
            )
            functions[fn.signature] = fn
        elif item.type == "event":
            ev = Event(
                item.name,
                tuple(_canonical_abi_type(i) for i in item.inputs),
                tuple(bool(i.indexed) for i in item.inputs),
                anonymous=bool(item.anonymous),
            )
            events[ev.signature] = ev
    return functions, events


def abi_differences(contract_type, reference: str) -> list[str]:
    """Every way our ABI misses or deviates from the reference; empty when it conforms."""
    ref_functions, ref_events = parse_reference(reference)
    functions, events = our_abi(contract_type)
    # ape's own view of the ABI (ethpm-types: signature -> 4-byte selector / 32-byte topic0).
    ape_method_ids = contract_type.method_identifiers
    ape_ids = contract_type.selector_identifiers
    problems = []

    for signature, ref in ref_functions.items():
        ours = functions.get(signature)
        if ours is None:
            same_name = [f.describe() for f in functions.values() if f.name == ref.name]
            problems.append(
                f"function {ref.describe()}: missing (selector {ref.selector}); "
                f"ours named {ref.name!r}: {same_name or 'none'}"
            )
            continue
        if ours.outputs != ref.outputs:
            problems.append(
                f"function {signature}: returns ({','.join(ours.outputs)}), "
                f"reference returns ({','.join(ref.outputs)})"
            )
        if ours.mutability != ref.mutability:
            problems.append(f"function {signature}: is {ours.mutability}, reference is {ref.mutability}")
        if ours.selector != ref.selector or ape_method_ids.get(signature) != ref.selector:
            problems.append(
                f"function {signature}: selector {ape_method_ids.get(signature)} (ape) / "
                f"{ours.selector} (ours), reference {ref.selector}"
            )

    for signature, ref in ref_events.items():
        ours = events.get(signature)
        if ours is None:
            same_name = [e.describe() for e in events.values() if e.name == ref.name]
            problems.append(
                f"event {ref.describe()}: missing (topic0 {ref.topic0}); "
                f"ours named {ref.name!r}: {same_name or 'none'}"
            )
            continue
        if ours.indexed != ref.indexed:
            problems.append(f"event {signature}: ours is {ours.describe()}, reference is {ref.describe()}")
        if ours.anonymous != ref.anonymous:
            problems.append(f"event {signature}: anonymous={ours.anonymous}, reference {ref.anonymous}")
        if ours.topic0 != ref.topic0 or ape_ids.get(signature) != ref.topic0:
            problems.append(
                f"event {signature}: topic0 {ape_ids.get(signature)} (ape) / {ours.topic0} (ours), "
                f"reference {ref.topic0}"
            )
    return problems


# -- the tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("contract", list(REFERENCES))
def test_abi__registry__matches_erc8004_reference(project, contract):
    problems = abi_differences(getattr(project, contract).contract_type, REFERENCES[contract])
    if problems:
        pytest.fail(
            f"{contract} deviates from the ERC-8004 reference (section 1) in {len(problems)} place(s):\n  - "
            + "\n  - ".join(problems),
            pytrace=False,
        )


@pytest.mark.parametrize("contract", list(REFERENCES))
def test_reference__parses__into_every_declaration(contract):
    functions, events = parse_reference(REFERENCES[contract])
    assert (len(functions), len(events)) == EXPECTED_COUNTS[contract]


def test_reference__struct_and_known_ids__canonicalised():
    functions, events = parse_reference(IDENTITY_REFERENCE + IDENTITY_ERC721_REFERENCE)
    register = functions["register(string,(string,bytes)[])"]
    assert register.outputs == ("uint256",) and register.mutability == "nonpayable"
    # Well-known ERC-721 selectors, so the keccak helper itself is checked against fixed values.
    assert functions["ownerOf(uint256)"].selector == "0x6352211e"
    assert functions["tokenURI(uint256)"].selector == "0xc87b56dd"
    metadata_set = events["MetadataSet(uint256,string,string,bytes)"]
    assert metadata_set.indexed == (True, True, False, False)


@pytest.mark.parametrize(
    "declaration",
    [
        "function f(Unknown x) external;",
        "function f(uint7 x) external;",
        "function f(uint256 indexed x) external;",
        "function f(uint256 a b) external;",
        "function f() public;",
        "modifier m();",
    ],
)
def test_reference__malformed_declaration__rejected(declaration):
    with pytest.raises(ValueError):
        parse_reference(declaration)
