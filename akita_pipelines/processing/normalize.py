"""Placeholder normalisers (replaced by the full module)."""

from __future__ import annotations

from functools import lru_cache

FREE = frozenset({"gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com"})


@lru_cache(maxsize=1)
def _psl() -> object:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


@lru_cache(maxsize=65536)
def registered_domain(value: str | None) -> str | None:
    if not value:
        return None
    host = value.strip().lower().split("@")[-1]
    host = host.split("://")[-1].split("/")[0].split(":")[0]
    result = _psl().privatesuffix(host)  # type: ignore[attr-defined]
    return str(result) if result else None


def account_domain(website: str | None, email: str | None = None) -> str | None:
    domain = registered_domain(website) or registered_domain(email)
    return None if domain in FREE else domain


def normalize_email(value: str | None) -> str | None:
    if not value or "@" not in value:
        return None
    return value.strip().lower()


def normalize_phone(value: str | None, default_region: str = "US") -> str | None:
    return value.strip() if value else None
