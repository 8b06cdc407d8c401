"""The environment of a child pip: used by every stage that runs pip or a build backend
(PEP 517 metadata builds in ``index``, virtualenvs in ``resolve``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

# pip settings that would add packages from elsewhere, or constrain them otherwise
_SOURCES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_CONSTRAINT",
            "PIP_REQUIREMENT", "PIP_PRE", "PIP_ONLY_BINARY", "PIP_NO_BINARY", "PIP_CONFIG_FILE")


def pip_environment(base: Mapping[str, str]) -> dict[str, str]:
    """*base* for a child pip that installs from the planned index only: no pip configuration
    files (PIP_CONFIG_FILE=/dev/null) and no PIP_* variable naming another source or
    constraint; the rest (certificates, proxies, timeouts) is kept."""
    env = {k: v for k, v in base.items() if k not in _SOURCES}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def uv_environment(base: Mapping[str, str], index_url: str | None) -> dict[str, str]:
    """*base* for a child uv (a build environment's installer) that installs from *index_url*
    only: no uv configuration file (UV_NO_CONFIG) and no UV_* variable but the cache folder;
    the rest (certificates, proxies) is kept."""
    env = {k: v for k, v in base.items() if not k.startswith("UV_") or k in _UV_KEPT}
    env["UV_NO_CONFIG"] = "1"
    if index_url:
        env["UV_DEFAULT_INDEX"] = index_url
    return env


_UV_KEPT = ("UV_CACHE_DIR", "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT")
