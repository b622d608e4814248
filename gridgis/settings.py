"""Settings: one typed object read from the environment (prefix ``GRIDGIS_``), cached."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRET = "change-me"


class Settings(BaseSettings):
    """Everything gridgis can be told; each field is ``GRIDGIS_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GRIDGIS_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # With no database URL, gridgis runs its own PostGIS cluster in ``pg_dir`` (embedded default).
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("GRIDGIS_DATABASE_URL", "DATABASE_URL")
    )
    pg_dir: Path = PROJECT_DIR / "var" / "pg"
    pg_port: int = Field(default=55432, ge=1024, le=65535)
    pg_database: str = "gridgis"
    # initdb refuses root: when run as root, the cluster runs as this unprivileged system user.
    pg_system_user: str = "gridgis"

    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = PLACEHOLDER_SECRET
    token_minutes: int = Field(default=12 * 60, gt=0)

    # Base map tile URL template (``{z}/{x}/{y}``); none on an intranet without a tile server.
    basemap_url: str | None = None
    basemap_attribution: str = ""
    assets_dir: Path = PROJECT_DIR / "assets" / "node_modules"
    page_size_max: int = Field(default=5000, gt=0)
    import_max_mb: float = Field(default=100, gt=0)
    demo_seed: int = 2024

    @model_validator(mode="after")
    def refuse_placeholder_secret(self) -> "Settings":
        if self.environment == "production" and self.secret_key == PLACEHOLDER_SECRET:
            raise ValueError("GRIDGIS_SECRET_KEY is the placeholder: set a real one in production")
        return self


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (read once from the environment)."""
    return Settings()
