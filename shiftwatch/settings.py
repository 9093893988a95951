"""One pydantic-settings class for all configuration (``SHIFTWATCH_*`` env vars, optional TOML file)."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# A configured SHIFTWATCH_SECRET_KEY shorter than this is refused when auth is on.
MIN_SECRET_KEY_CHARS = 32
# ...and so is one whose characters carry less than this (estimated): 128 bits is the strength of
# the HMAC-SHA1 signatures itsdangerous makes, and what an attacker guessing offline must cover.
MIN_SECRET_KEY_BITS = 128
# Fewer distinct characters than this is a pattern ("abab..."), not a random key, whatever its length.
MIN_SECRET_KEY_DISTINCT = 8
SECRET_KEY_ADVICE = 'generate one with `python -c "import secrets; print(secrets.token_urlsafe(48))"`'


def estimated_key_bits(value: str) -> float:
    """Bits a key carries by its character frequencies (length x Shannon entropy per character).

    An upper bound on its real strength: it catches one repeated character, a tiny alphabet
    and a short word repeated; it cannot see every pattern, so generated keys stay the advice.
    """
    counts = Counter(value)
    return -sum(n * math.log2(n / len(value)) for n in counts.values())


def secret_key_problem(value: str) -> str | None:
    """Why ``value`` is too weak to sign sessions, or None when it will do."""
    if len(value) < MIN_SECRET_KEY_CHARS:
        return f"has {len(value)} characters, fewer than {MIN_SECRET_KEY_CHARS}"
    distinct, bits = len(set(value)), estimated_key_bits(value)
    if distinct < MIN_SECRET_KEY_DISTINCT or bits < MIN_SECRET_KEY_BITS:
        return (f"looks patterned, not random ({distinct} distinct characters, about {abs(bits):.0f} bits; "
                f"needs {MIN_SECRET_KEY_DISTINCT}+ distinct and {MIN_SECRET_KEY_BITS}+ bits)")
    return None


def _psycopg_url(value: str) -> str:
    """A PostgreSQL URL with the driver we ship (psycopg 3), so the plain postgresql:// form works."""
    if value.startswith("postgresql://") or value.startswith("postgres://"):
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    return value


class Settings(BaseSettings):
    """Everything a shiftwatch process can be told. Passed down explicitly; nothing else reads the environment."""

    model_config = SettingsConfigDict(env_prefix="SHIFTWATCH_", extra="forbid")

    database_url: str = "sqlite:///./shiftwatch.db"
    # A PostgreSQL streaming replica of database_url: detector windows, the console's pages and the
    # dashboards' reads go there; what must read its own writes stays on the primary (docs/scaling.md).
    read_database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Ingest limits: a request body over this is refused with 413 before it is parsed.
    max_request_bytes: int = Field(64 * 1024 * 1024, gt=0)
    max_batch_rows: int = Field(10_000, gt=0)
    # Batches stored at once per process; past this the server answers 503 + Retry-After.
    max_inflight_batches: int = Field(8, gt=0)
    # Bounded work per request (docs/security.md, "Limits on hostile input"). A JSON ingest body may
    # inflate to at most max_json_bytes, and its parse is charged at its measured cost against
    # max_parse_bytes (collector/json_rows.py: up to ~35x its size for bare numbers; bulk goes as .npz).
    max_json_bytes: int = Field(16 * 1024 * 1024, gt=0)
    # Bytes of request bodies held and being parsed at once in this process (ingest and gateway);
    # past it a request gets 503 + Retry-After instead of adding to memory. 256 MiB: bench/hostile_load.py.
    max_parse_bytes: int = Field(256 * 1024 * 1024, gt=0)
    # A request body must arrive within this many seconds, or the request gets 408 (stalled uploads).
    body_read_timeout_s: float = Field(30.0, gt=0)
    # Gateway images: a PNG/JPEG whose header claims more pixels is refused (413) before it is decoded.
    gateway_max_image_pixels: int = Field(4096 * 4096, gt=0)
    # Threads decoding gateway images at once (bounds the memory of concurrent decodes).
    gateway_decode_threads: int = Field(2, ge=1, le=64)
    # Days of predictions kept; older daily partitions (PostgreSQL) or rows (SQLite) are dropped.
    # Labeled samples, alerts and the audit log are kept regardless.
    retention_days: int = Field(30, ge=1)
    # Share of each version's rows that keep their full embedding (a hash of the prediction id
    # decides, so replays agree); shadow and canary rows, and a model's production rows while it has
    # a rollout, always keep theirs. Every row keeps class, confidence and probabilities.
    # 0.05: 5.6x fewer bytes per 512-d row on PostgreSQL (0.1: 4.6x, as a row's ids, outputs and indexes
    # are ~440 B), embedding detectors' power unchanged at the same window (bench/embedding_keep.py).
    embedding_keep_rate: float = Field(0.05, ge=0, le=1)
    # Daily partitions created ahead of time on PostgreSQL.
    partitions_ahead_days: int = Field(3, ge=1)
    # Where model artifacts, reports and demo outputs are written.
    data_dir: Path = Path("./shiftwatch-data")
    # Run the schedulers (detectors, rollout controller) inside `shiftwatch serve`.
    scheduler_enabled: bool = True
    # Label Studio (optional): when unset, the built-in oracle labels in the demo.
    label_studio_url: str | None = None
    label_studio_token: str | None = None
    # A shiftwatch API token (scope "label") Label Studio sends with its webhooks when auth_required is on.
    label_studio_callback_token: str | None = None
    # Origins (scheme://host[:port], comma-separated) Label Studio's pages are served from besides
    # SHIFTWATCH_LABEL_STUDIO_URL's, e.g. its public https name when that URL is internal. Only these
    # origins' pages may load the signed image links (CORS; shiftwatch.labeling.media_cors).
    label_studio_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Labeling budget: samples queued per model per UTC day (per-model overrides by name), and per batch.
    labeling_daily_budget: int = Field(200, ge=0)
    labeling_daily_budgets: dict[str, int] = Field(default_factory=dict)
    labeling_batch_size: int = Field(50, ge=1)
    # The audit slice: uniformly random samples per route carrying traffic (production, shadow, canary),
    # per selection run. 10: three runs give each arm of a canary the 30 labels its accuracy test
    # starts from (rollout.guardrails.MIN_LABELED_PER_ARM). The share of each batch drawn for it first, and,
    # while a candidate's shadow or canary carries traffic, of the day: uncertain and flagged picks then stop
    # when the rest of the daily budget is used, so the canary's arms keep getting labels all day.
    labeling_audit_per_route: int = Field(10, ge=0)
    labeling_audit_share: float = Field(0.5, ge=0, le=1)
    # The labeling job (select, push, pull) runs this often inside `shiftwatch serve`.
    labeling_sync_interval_s: int = Field(300, ge=10)
    # Image links sent to Label Studio stay valid this long (an annotator may open a task days later).
    labeling_link_ttl_s: int = Field(14 * 86400, ge=60)
    # Public base URL of this server, used in links sent to people and to Label Studio. Unset: loopback
    # on ``port`` (http://127.0.0.1:8000 by default), so links follow SHIFTWATCH_PORT.
    public_url: str = "http://127.0.0.1:8000"
    # Comma-separated webhook URLs that receive alerts.
    alert_webhooks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Per-endpoint HMAC secrets for alert webhooks, as JSON {"<url as listed>": "<secret>"}; a listed
    # endpoint without one gets unsigned requests (fine for Slack, whose URL is the secret).
    alert_webhook_secrets: dict[str, str] = Field(default_factory=dict)
    # How often the detector job wakes up; each config runs when its own schedule_seconds have passed.
    detector_tick_seconds: int = Field(60, ge=1)
    # A detector worker renews its claim on the model version it runs every third of this; a claim
    # unrenewed this long is a dead worker's, and another takes it (detectors/claims.py). Keep it
    # under detector_tick_seconds so a killed worker's version runs again by the next tick.
    detector_lease_seconds: float = Field(30.0, gt=0)
    # Serving gateway (rollout): concurrent requests gathered into one ONNX Runtime call, up to this
    # many images or this long a wait (1 = no batching). 32 / 5 ms: see bench/gateway.py.
    gateway_max_batch_size: int = Field(32, ge=1, le=1024)
    gateway_max_wait_ms: float = Field(5.0, ge=0, le=1000)
    # ONNX Runtime intra-op threads per loaded model version.
    gateway_ort_threads: int = Field(1, ge=1, le=64)
    # A gathered batch runs as this many chunks at once (one per core to use; 1 = one ORT call per batch).
    gateway_batch_parallelism: int = Field(1, ge=1, le=64)
    # How often the gateway re-reads which versions serve which route (new ones load in the background).
    gateway_refresh_seconds: float = Field(1.0, gt=0)
    # How often the rollout controller judges shadow and canary evidence.
    rollout_tick_seconds: int = Field(30, ge=1)
    # Auth: every route but the public ones (shiftwatch.auth.PUBLIC_ROUTES) needs a scoped token
    # (`shiftwatch token create`). False makes every caller the local admin: `serve` then refuses
    # any address but loopback (shiftwatch.exposure).
    auth_required: bool = True
    # Signs console session cookies, CSRF tokens and labeling links. Unset (""): a random key is
    # generated once and kept in DATA_DIR/secret_key (shiftwatch.secret_key); replicas share it.
    secret_key: str = ""
    # Host names clients may use besides the public URL's host and loopback (comma-separated), e.g. the
    # gateway's internal name. Any other Host header is refused (400): DNS rebinding (shiftwatch.cross_site).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Addresses of reverse proxies whose X-Forwarded-Proto is believed (comma-separated): "https" from
    # one of them marks console cookies Secure, as an https SHIFTWATCH_PUBLIC_URL does.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- Hostile clients, disks and connections (docs/security.md, "Limits on hostile input"). ---
    # Model artifacts: uploads (POST /v1/artifacts) over this size are refused; registering by path
    # accepts only files under data_dir/artifacts.
    artifact_max_bytes: int = Field(512 * 1024 * 1024, gt=0)
    artifact_upload_timeout_s: float = Field(300.0, gt=0)
    # Gateway input images are decoded and re-encoded before they are stored (collector.inputs);
    # one larger than this re-encoded is not stored (its prediction is, counted as inputs_refused).
    input_max_bytes: int = Field(8 * 1024 * 1024, gt=0)
    # Stored inputs no prediction or labeling row refers to are deleted by the retention job once
    # older than this (a file is written just before the row that refers to it is committed).
    input_orphan_grace_s: int = Field(3600, ge=0)
    # `shiftwatch serve` (uvicorn): connections and requests in flight past limit_concurrency get 503;
    # a request's headers must arrive within header_timeout_s and fit in max_header_bytes; an idle
    # keep-alive connection is closed after keep_alive_timeout_s.
    limit_concurrency: int = Field(1000, ge=1)
    header_timeout_s: float = Field(10.0, gt=0)
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    keep_alive_timeout_s: float = Field(5.0, gt=0)
    backlog: int = Field(2048, ge=1)
    # Ingest through NATS JetStream (docs/scaling.md, "Ingest through a broker"): set, the API and the
    # gateway validate a batch and publish it to the stream, answering once JetStream has it; any number of
    # `shiftwatch ingest-worker` processes store it. Unset: they store it themselves. Needs the [broker] extra.
    ingest_broker_url: str | None = None
    # The JetStream stream and its subject; rows the store refuses go to "<stream>_DEAD" on "<subject>.dead".
    ingest_broker_stream: str = Field("SHIFTWATCH_INGEST", pattern=r"^[A-Za-z0-9_-]{1,200}$")
    ingest_broker_subject: str = Field("shiftwatch.ingest", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    # The durable pull consumer all ingest workers share (each message goes to one of them).
    ingest_broker_consumer: str = Field("ingest-workers", pattern=r"^[A-Za-z0-9_-]{1,200}$")
    # A message a worker has not acked within this long (killed, stuck) goes to another worker.
    ingest_broker_ack_wait_s: float = Field(30.0, gt=0)
    # How long a publish waits for JetStream's ack before the API answers 503 (the gateway spills).
    ingest_broker_publish_timeout_s: float = Field(10.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("database_url must be a sqlite:/// or postgresql+psycopg:// URL")
        return _psycopg_url(value)

    @field_validator("read_database_url")
    @classmethod
    def _postgres_replica(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        if not value.startswith(("postgresql", "postgres://")):
            raise ValueError("read_database_url must be a postgresql+psycopg:// URL (a streaming replica)")
        if not str(info.data.get("database_url", "")).startswith("postgresql"):
            raise ValueError("read_database_url needs a PostgreSQL database_url (SQLite has no replicas)")
        return _psycopg_url(value)

    @field_validator("ingest_broker_url")
    @classmethod
    def _nats_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value.split(",")[0].strip()).scheme not in ("nats", "tls"):
            raise ValueError("ingest_broker_url must be a nats:// (or tls://) URL, e.g. nats://127.0.0.1:4222")
        return value or None

    @field_validator("secret_key")
    @classmethod
    def _secret_key_strong_when_auth_on(cls, value: str, info: ValidationInfo) -> str:
        # A short or patterned key can be guessed, and then anyone could forge a console session cookie.
        problem = secret_key_problem(value) if value and info.data.get("auth_required") else None
        if problem is not None:
            raise ValueError(f"{problem} when auth_required is true; {SECRET_KEY_ADVICE}, "
                             "or leave it unset: a key is then generated under data_dir")
        return value

    @field_validator("alert_webhooks", "allowed_hosts", "trusted_proxies", "label_studio_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)  # the JSON list form works too
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("label_studio_origins")
    @classmethod
    def _origins_only(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
                raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port], e.g. https://label.example.com")
        return [origin.rstrip("/").lower() for origin in value]

    @model_validator(mode="after")
    def _public_url_follows_the_port(self) -> Settings:
        # Written into __dict__, not assigned: the field stays "unset", which `serve` reads (served_public_url).
        if "public_url" not in self.model_fields_set:
            self.__dict__["public_url"] = f"http://127.0.0.1:{self.port}"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("SHIFTWATCH_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and ``SHIFTWATCH_CONFIG`` TOML file), with explicit overrides on top."""
    import tomllib

    from shiftwatch.errors import Invalid

    config_file = os.environ.get("SHIFTWATCH_CONFIG")
    if config_file:
        if not Path(config_file).is_file():
            raise Invalid("SHIFTWATCH_CONFIG", f"config file {config_file!r} does not exist")
        try:
            tomllib.loads(Path(config_file).read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise Invalid("SHIFTWATCH_CONFIG", f"{config_file} is not valid TOML ({exc})") from None
    return Settings(**overrides)
