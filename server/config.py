"""Server settings: defaults, then BRUSHLINK_HOME/config.toml, then command-line flags.

[server]
host = "127.0.0.1"
port = 7437
device = "auto"                 # auto | cpu | cuda | cuda:N | mps (auto, cuda: every GPU)
workers = 0                     # local workers: 0 = one per device; N = N of them (CPU: N workers)
ray = ""                        # run engines on a Ray cluster: auto | local | ray://host:10001
ray_cpus_per_worker = 0         # Ray: 0 = one worker per GPU; K = CPU workers of K cores each
ray_poll_s = 10                 # Ray: how often the cluster is looked at for new capacity
allowed_origins = []            # browser origins allowed to connect, e.g. "https://example.org"
allowed_hosts = []              # extra Host header names accepted (besides the bound address)
result_ttl_s = 900              # finished results stay collectable this long
# sdapi = "7860"                # also serve the A1111 web-UI API: "[HOST:]PORT" (off when unset)

[limits]
max_message_bytes = 67108864
max_pixels = 16777216
max_prompt_chars = 2000
max_queued_per_client = 32
max_outgoing_bytes = 268435456  # unsent results held for one connection before it is dropped
write_timeout_s = 60            # seconds one frame may wait for a client that does not read

[models]
dirs = []                       # extra model folders
defaults = { inpaint = "fill" } # default model per kind
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from brushlink.plugin.home import default_home, read_config
from brushlink.plugin.protocol import DEFAULT_PORT


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 64 * 2**20
    max_pixels: int = 4096 * 4096
    max_prompt_chars: int = 2000
    max_queued_per_client: int = 32
    max_candidates: int = 16
    max_steps: int = 200
    max_side: int = 8192
    # a client that does not read its results: once this much waits to be sent to it, or one
    # frame has waited write_timeout_s for the socket, the connection is closed (its results
    # stay collectable for result_ttl_s)
    max_outgoing_bytes: int = 256 * 2**20
    write_timeout_s: int = 60

    def to_wire(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ServerConfig:
    home: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    device: str = "auto"
    models_dirs: tuple[Path, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    default_models: dict[str, str] = field(default_factory=dict)
    result_ttl_s: float = 900.0
    vram_budget: str | None = None  # e.g. "10G": loaded pipelines beyond it are evicted
    ram_budget: str | None = None
    compile: bool = False  # torch.compile the UNet on GPUs (slow first job, faster after)
    sdapi: str | None = None  # "[HOST:]PORT": also serve the A1111 web-UI API there
    workers: int = 0  # local workers: 0 = one per device; N: that many (on the CPU: N workers)
    ray: str | None = None  # a Ray cluster's address (auto, local, ray://...): engines run there
    ray_cpus_per_worker: float = 0  # 0: one Ray worker per GPU; K: CPU workers of K cores
    ray_poll_s: float = 10.0  # how often the Ray cluster is looked at for new capacity
    limits: Limits = Limits()

    def sdapi_address(self) -> tuple[str, int] | None:
        """Where the A1111 API listens (the websocket's host unless the setting names one)."""
        return None if self.sdapi is None else parse_address(self.sdapi, self.host)

    @property
    def models_root(self) -> Path:
        return self.home / "models"

    @property
    def all_model_dirs(self) -> list[Path]:
        return [self.models_root, *self.models_dirs]


def parse_address(text: str, default_host: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); port 0 picks a free one."""
    text = str(text).strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = "", text
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"expected [HOST:]PORT, not {text!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"the port must be 0..65535, not {number}")
    return host or default_host, number


def load_config(home: Path | None = None, **overrides: Any) -> ServerConfig:
    """Defaults < config.toml < keyword overrides (flags); None overrides are ignored."""
    home = (home or default_home()).expanduser()
    data = read_config(home)
    server = data.get("server", {})
    limits_data = data.get("limits", {})
    models = data.get("models", {})
    limit_names = {f.name for f in fields(Limits)}
    limits = Limits(**{k: int(v) for k, v in limits_data.items() if k in limit_names})
    config = ServerConfig(
        home=home,
        host=str(server.get("host", "127.0.0.1")),
        port=int(server.get("port", DEFAULT_PORT)),
        device=str(server.get("device", "auto")),
        models_dirs=tuple(Path(p).expanduser() for p in models.get("dirs", [])),
        allowed_origins=tuple(server.get("allowed_origins", [])),
        allowed_hosts=tuple(server.get("allowed_hosts", [])),
        default_models=dict(models.get("defaults", {})),
        result_ttl_s=float(server.get("result_ttl_s", 900.0)),
        vram_budget=models.get("vram_budget"),
        ram_budget=models.get("ram_budget"),
        compile=bool(server.get("compile", False)),
        sdapi=str(server["sdapi"]) if server.get("sdapi") not in (None, "", False) else None,
        workers=int(server.get("workers", 0)),
        ray=str(server.get("ray", "")) or None,
        ray_cpus_per_worker=float(server.get("ray_cpus_per_worker", 0)),
        ray_poll_s=float(server.get("ray_poll_s", 10.0)),
        limits=limits,
    )
    given = {k: v for k, v in overrides.items() if v is not None}
    if "models_dirs" in given:
        given["models_dirs"] = config.models_dirs + tuple(given["models_dirs"])
    return replace(config, **given)


def new_token() -> str:
    """32 random bytes, URL-safe, never starting with ``-`` (command lines read that as an
    option)."""
    token = secrets.token_urlsafe(32)
    return token if not token.startswith("-") else "t" + token[1:]


def ensure_home(home: Path) -> str:
    """Create the home layout and the token (mode 0600) on first start; return the token."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "models").mkdir(exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    path = home / "token"
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = new_token()
        # Created with mode 0600 so the token is never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
    os.chmod(path, 0o600)
    return token
