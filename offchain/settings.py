"""Settings from the environment (prefix `AGENTL2_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where things live; override with AGENTL2_<NAME> environment variables."""

    model_config = SettingsConfigDict(env_prefix="AGENTL2_", case_sensitive=False)

    deployments_dir: Path = Path("deployments")
    """Folder of the deployments files, one per network (`<ecosystem>_<network>.json`)."""

    reports_dir: Path = Path("reports")
    """Folder where the main job (`ape run bootstrap`) and the benchmarks write their reports."""


def get_settings() -> Settings:
    return Settings()
