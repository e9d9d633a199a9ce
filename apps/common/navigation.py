"""Links that apps contribute to the role home pages.

A home page lists only what exists: each app registers links to its own pages from its
``AppConfig.ready()``, and a link shows on a role's home only if that role holds the capability.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class NavLink:
    key: str
    title: str
    description: str
    url_name: str
    capability: str
    roles: tuple[str, ...]
    section: str = "General"
    order: int = 100

    def url(self) -> str | None:
        try:
            return reverse(self.url_name)
        except NoReverseMatch:
            return None


_LINKS: dict[str, NavLink] = {}


def register_link(link: NavLink) -> NavLink:
    """Add or replace a link (by key)."""
    _LINKS[link.key] = link
    return link


def links_for_role(*, role: str, user) -> list[tuple[NavLink, str]]:
    """Links for ``role``'s home that ``user`` may follow and that resolve, as (link, url) pairs."""
    result = []
    for link in sorted(_LINKS.values(), key=lambda item: (item.order, item.title)):
        if role not in link.roles:
            continue
        if not user.has_perm(f"accounts.{link.capability}"):
            continue
        url = link.url()
        if url is not None:
            result.append((link, url))
    return result
