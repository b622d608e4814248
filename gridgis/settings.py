"""Settings: one typed object read from the environment (prefix ``GRIDGIS_``), cached."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Values a secret may not have outside development: what examples and templates hold.
PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "password", "todo", "xxx"}
Colour = Literal["blue", "yellow", "orange", "red"]  # China's warning levels, rank 1..4
DEFAULT_ACK_WINDOWS: dict[Colour, float] = {"blue": 120.0, "yellow": 60.0, "orange": 30.0,
                                            "red": 15.0}
SecondChannel = Literal["sms", "email"]  # where escalations go beside the feed


class TeamRoute(BaseModel):
    """Where a grid team's group robot listens: the shape to post, its URL and signing secret."""

    channel: Literal["webhook", "wecom", "dingtalk"]
    url: SecretStr  # WeCom and DingTalk robot URLs carry their key
    secret: SecretStr | None = None  # DingTalk 加签 secret


class Settings(BaseSettings):
    """Everything gridgis can be told; each field is ``GRIDGIS_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GRIDGIS_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # With no database URL, gridgis runs its own PostGIS cluster in ``pg_dir`` (embedded default).
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("GRIDGIS_DATABASE_URL", "DATABASE_URL")
    )
    # The role the server and dispatcher work as (SET ROLE after connecting; migration 0013
    # makes it): not the tables' owner, only appending to the audit log. Empty when the URL
    # already logs in as such a role.
    database_role: str | None = Field(default="gridgis_app", pattern=r"^([a-z_][a-z0-9_]{0,62})?$")
    # Connections each process keeps (and may add) to the database. The server lets in as many
    # requests at once as pool + overflow (gridgis/admission.py); others wait up to
    # ``admission_wait_seconds`` for their turn, then get 503 with Retry-After.
    db_pool_size: int = Field(default=10, gt=0)
    db_pool_overflow: int = Field(default=20, ge=0)
    admission_wait_seconds: float = Field(default=20.0, gt=0)
    pg_dir: Path = PROJECT_DIR / "var" / "pg"
    pg_port: int = Field(default=55432, ge=1024, le=65535)
    pg_database: str = "gridgis"
    # initdb refuses root: when run as root, the cluster runs as this unprivileged system user.
    pg_system_user: str = "gridgis"

    host: str = "127.0.0.1"
    port: int = 8000
    token_minutes: int = Field(default=12 * 60, gt=0)

    # Other intranet sites whose pages may call the API from a browser (CORS), e.g.
    # GRIDGIS_CORS_ORIGINS='["https://duty.example.gov.cn"]'; none by default: same origin only.
    cors_origins: list[str] = Field(default_factory=list)

    # Base map tile URL template (``{z}/{x}/{y}``); none on an intranet without a tile server.
    basemap_url: str | None = None
    basemap_attribution: str = ""
    assets_dir: Path = PROJECT_DIR / "assets" / "node_modules"
    page_size_max: int = Field(default=5000, gt=0)
    import_max_mb: float = Field(default=100, gt=0)
    # The largest request body anything but a file import takes (a drawn area, a CAP file,
    # a changeset operation): 100,000 vertices of GeoJSON are ~4 MB.
    body_max_mb: float = Field(default=8, gt=0)
    demo_seed: int = 2024

    # The dispatcher (``gridgis dispatch``): see gridgis/alerts/dispatch.py.
    dispatch_concurrency: int = Field(default=8, gt=0, le=64)
    # Ten attempts at the default backoff: a message goes dead only after its channel has
    # been down for 25 minutes at least (pacing.shortest_life_s), 51 at most.
    dispatch_max_attempts: int = Field(default=10, gt=0)
    dispatch_lease_seconds: float = Field(default=60.0, gt=0)
    dispatch_backoff_seconds: float = Field(default=10.0, gt=0)
    dispatch_backoff_max_seconds: float = Field(default=900.0, gt=0)
    dispatch_poll_seconds: float = Field(default=1.0, gt=0)
    dispatch_timeout_seconds: float = Field(default=10.0, gt=0)
    # Messages a second per channel (per robot for wecom and dingtalk); absent or 0: no limit.
    # The feed is never limited: it is a NOTIFY, sent in batches.
    dispatch_rates: dict[str, float] = Field(
        default_factory=lambda: {"wecom": 0.3, "dingtalk": 0.3, "sms": 50.0, "email": 10.0})
    dispatch_timezone: str = "Asia/Shanghai"
    # Grid code prefix -> the team's group robot; the longest matching prefix wins. As JSON:
    # GRIDGIS_TEAM_WEBHOOKS='{"440115": {"channel": "wecom", "url": "https://..."}}'
    team_webhooks: dict[str, TeamRoute] = Field(default_factory=dict)
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "gridgis@localhost"
    smtp_starttls: bool = True
    sms_gateway_url: str | None = None
    sms_gateway_key: SecretStr | None = None
    # How long a grid team has to acknowledge an alert, by warning level (signals count as
    # their colour: 1 blue, 3 yellow, 8 orange, 9/10 red), before it goes one step up the
    # hierarchy; escalations go on the feed and on these channels (those a person has).
    ack_window_minutes: dict[Colour, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_ACK_WINDOWS))
    escalation_channels: list[SecondChannel] = Field(
        default_factory=lambda: list(get_args(SecondChannel)))
    # Checklists: the rules file (default gridgis/alerts/checklist_rules.toml), and how long
    # before a grid's gale ETA its work is due.
    checklist_rules: Path | None = None
    checklist_margin_minutes: float = Field(default=120.0, ge=0)
    # Planning: what a published grid may be. Overlaps and new gaps smaller than the
    # tolerance (square metres) are digitising noise, not errors.
    planning_tolerance_m2: float = Field(default=10.0, ge=0)
    # The command page draws grids as vector tiles above this many (GeoJSON below).
    map_vector_tiles_above: int = Field(default=5000, ge=0)
    # Tiles of admin units, grids and buildings each API process keeps, in MB (0: none);
    # a kept tile is rendered again when its tables are written.
    tile_cache_mb: float = Field(default=256.0, ge=0)
    planning_grid_m2: tuple[float, float] = (2_000.0, 10_000_000.0)  # smallest, largest
    planning_households: tuple[int, int] = (0, 3_000)  # fewest, most
    # Fields: {text} {subject} {title} {heading} {grid} {level} {event} {headline} {eta} {key}
    sms_template: str = "{text}"

    @model_validator(mode="after")
    def refuse_placeholder_secrets(self) -> "Settings":
        """Outside development, refuse to start with a secret left as a placeholder."""
        if self.environment == "development":
            return self
        secrets = {"GRIDGIS_SMTP_PASSWORD": self.smtp_password,
                   "GRIDGIS_SMS_GATEWAY_KEY": self.sms_gateway_key}
        for prefix, route in self.team_webhooks.items():
            secrets[f"GRIDGIS_TEAM_WEBHOOKS[{prefix!r}].secret"] = route.secret
        placeholders = sorted(name for name, value in secrets.items() if value is not None
                              and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS)
        if placeholders:
            raise ValueError(f"{', '.join(placeholders)}: a placeholder, not a secret; set the "
                             f"real one (refused outside development)")
        return self


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (read once from the environment)."""
    return Settings()
