"""The ERC-8004 registration file model: JSON and data: URI round trips, clear errors."""

from __future__ import annotations

import base64
import json

import pytest

from offchain.errors import RegistrationFileError
from offchain.identity.registration import DATA_URI_PREFIX, REGISTRATION_TYPE, RegistrationFile, Service

REGISTRY = "0x" + "ab" * 20


def _file() -> RegistrationFile:
    return RegistrationFile(
        name="weather-agent",
        description="Forecasts, paid per request.",
        image="https://agents.example/w.png",
        services=[
            Service(name="web", endpoint="https://agents.example/weather"),
            Service(name="OASF", endpoint="ipfs://cid", version="0.8", skills=["forecast"], domains=[]),
        ],
        x402Support=True,
        supportedTrust=["reputation", "crypto-economic"],
    )


def test_json_round_trip__keeps_every_field_and_extra_service_fields():
    original = _file().with_registration(7, 31337, REGISTRY)
    again = RegistrationFile.from_json(original.to_json())
    assert again == original
    data = json.loads(original.to_json())
    assert data["type"] == REGISTRATION_TYPE
    assert data["services"][1]["skills"] == ["forecast"]
    assert data["registrations"] == [{"agentId": 7, "agentRegistry": f"eip155:31337:{REGISTRY}"}]
    assert "version" not in data["services"][0]  # unset optional fields are left out


def test_data_uri_round_trip():
    original = _file()
    uri = original.to_data_uri()
    assert uri.startswith(DATA_URI_PREFIX)
    assert RegistrationFile.from_data_uri(uri) == original


def test_with_registration__replaces_the_same_registry():
    file = _file().with_registration(1, 31337, REGISTRY).with_registration(2, 31337, REGISTRY)
    assert [r.agentId for r in file.registrations] == [2]


def test_legacy_endpoints_name_is_read_as_services():
    legacy = {
        "type": REGISTRATION_TYPE,
        "name": "old",
        "endpoints": [{"name": "web", "endpoint": "https://x"}],
    }
    file = RegistrationFile.from_json(json.dumps(legacy))
    assert file.service("WEB").endpoint == "https://x"
    assert "endpoints" not in json.loads(file.to_json())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"name": ""}), "name"),
        (json.dumps({"name": "a", "type": "https://other"}), "type"),
        (json.dumps({"name": "a", "services": [{"name": "web"}]}), "services.0.endpoint"),
        (
            json.dumps({"name": "a", "registrations": [{"agentId": 1, "agentRegistry": "0xabc"}]}),
            "agentRegistry",
        ),
        (json.dumps({"name": "a", "registrations": [{"agentId": -1, "agentRegistry": "x"}]}), "agentId"),
    ],
    ids=[
        "garbage",
        "array",
        "empty-name",
        "wrong-type",
        "service-no-endpoint",
        "bad-registry",
        "negative-id",
    ],
)
def test_from_json__malformed__raises_readable_error(text, message):
    with pytest.raises(RegistrationFileError, match=message):
        RegistrationFile.from_json(text)


@pytest.mark.parametrize(
    "uri",
    [
        "https://agents.example/a.json",
        DATA_URI_PREFIX + "!!!not-base64",
        DATA_URI_PREFIX + base64.b64encode(b"{").decode(),
    ],
    ids=["not-data-uri", "bad-base64", "bad-json"],
)
def test_from_data_uri__malformed__raises(uri):
    with pytest.raises(RegistrationFileError):
        RegistrationFile.from_data_uri(uri)
