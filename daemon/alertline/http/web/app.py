"""Building the web pieces from the configuration: the signing key, the pages, the links."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alertline.http.web.guard import Signer
from alertline.http.web.links import AckLinks, LinkedTexts, LinkSigner
from alertline.http.web.views import StatusSource, WebPages, WebSettings

if TYPE_CHECKING:
    from alertline.config.sections import Config
    from alertline.engine.core import Engine

def load_key(configured: str | None, key_file: Path) -> bytes:
    """The secret that signs links and sessions: ``web.secret`` if set, else a random key kept
    in ``key_file`` (created once, readable by the daemon's user only)."""
    if configured:
        return configured.encode()
    try:
        return key_file.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def create_web(engine: Engine, section: dict[str, Any], public_url: str | None, key: bytes,
               *, status: StatusSource | None = None) -> tuple[WebPages, AckLinks | None]:
    """The pages, and the link maker when ``public_url`` is known (links need it)."""
    signer = LinkSigner(key, ttl=timedelta(seconds=float(section.get("link_ttl", 3 * 86400))))
    settings = WebSettings(
        users={name: str(user["password_hash"])
               for name, user in (section.get("users") or {}).items()},
        trusted_header=section.get("trusted_header"),
        trusted_proxies=tuple(section.get("trusted_proxies") or ("127.0.0.1", "::1")),
        link_resolve=bool(section.get("link_resolve", False)),
        secure_cookies=bool(public_url and public_url.startswith("https://")))
    session_ttl = timedelta(seconds=float(section.get("session_ttl", 12 * 3600)))
    pages = WebPages(engine, signer, Signer(key, session_ttl=session_ttl), settings,
                     status=status)
    links = AckLinks(signer, public_url) if public_url else None
    return pages, links


def web_for_config(engine: Engine, config: Config,
                   *, status: StatusSource | None = None) -> tuple[WebPages | None,
                                                                   LinkedTexts | None]:
    """What the daemon mounts: the pages when a user can log in (``web.users`` or a trusted
    proxy header) or links can be made (``http.public_url``), and the SMS link filler."""
    section: dict[str, Any] = config.raw.get("web") or {}
    public_url = config.http.get("public_url")
    has_login = bool(section.get("users") or section.get("trusted_header"))
    if not config.http.get("enabled", True) or not section.get("enabled", True) or \
            not (has_login or public_url):
        return None, None
    key = load_key(section.get("secret"), Path(f"{config.store_path}.web-key"))
    pages, links = create_web(engine, section, public_url, key, status=status)
    return pages, LinkedTexts(links, config.raw) if links is not None else None
