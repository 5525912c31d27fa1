"""Installing the app on a Page or an Instagram account: webhook fields and permissions.

Meta delivers webhooks for an account only once the app is installed on it
with ``POST /{id}/subscribed_apps`` (``subscribed_fields`` comma-separated):
the Page for Facebook, and for Instagram the professional account (Instagram
Login) or its linked Page (Facebook Login). This module holds what that
needs: the default fields, the permissions each field needs, and the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "DEFAULT_FIELDS",
    "FIELD_PERMISSIONS",
    "WebhookSubscription",
    "permissions_for",
]

Setup = Literal["facebook", "instagram", "instagram-facebook-login"]
"""Which setup a subscription is for: a Page, Instagram Login, or Instagram with
Facebook Login (the app is installed on the linked Page)."""

DEFAULT_FIELDS: Mapping[Setup, tuple[str, ...]] = {
    "facebook": ("feed", "messages"),
    "instagram": ("comments", "mentions", "messages", "message_reactions"),
    "instagram-facebook-login": ("feed",),
}
"""The fields subscribed when none are named. With Facebook Login an Instagram
account's own fields are chosen in the App Dashboard; subscribing the linked
Page (any field) is what installs the app on it."""

FIELD_PERMISSIONS: Mapping[Setup, Mapping[str, tuple[str, ...]]] = {
    "facebook": {
        "feed": ("pages_manage_metadata", "pages_read_engagement", "pages_show_list"),
        "mention": ("pages_manage_metadata", "pages_read_engagement", "pages_show_list"),
        "messages": ("pages_messaging", "pages_manage_metadata"),
        "message_echoes": ("pages_messaging", "pages_manage_metadata"),
        "message_reactions": ("pages_messaging", "pages_manage_metadata"),
    },
    "instagram": {
        "comments": ("instagram_business_basic", "instagram_business_manage_comments"),
        "live_comments": ("instagram_business_basic", "instagram_business_manage_comments"),
        "mentions": ("instagram_business_basic", "instagram_business_manage_comments"),
        "messages": ("instagram_business_basic", "instagram_business_manage_messages"),
        "message_reactions": ("instagram_business_basic",
                              "instagram_business_manage_messages"),
    },
    "instagram-facebook-login": {
        "feed": ("instagram_basic", "instagram_manage_comments", "pages_manage_metadata",
                 "pages_read_engagement", "pages_show_list"),
        "messages": ("instagram_basic", "instagram_manage_messages", "pages_manage_metadata"),
    },
}
"""The permissions each webhook field needs, per setup (Meta's webhook field
tables, 2026): a field not listed is checked against nothing."""


def permissions_for(setup: Setup, fields: Sequence[str]) -> tuple[str, ...]:
    """The permissions ``fields`` need under ``setup``, sorted, each once."""
    table = FIELD_PERMISSIONS[setup]
    return tuple(sorted({p for field in fields for p in table.get(field, ())}))


class WebhookSubscription(BaseModel):
    """What installing the app on an account found.

    Attributes:
        network: ``"facebook"`` or ``"instagram"``.
        object_id: The Page or Instagram account the app was installed on.
        requested: The fields asked for.
        subscribed: The fields Meta lists for the app on that object afterwards.
        missing_permissions: Permissions the fields need that the token was not
            granted; ``None`` when the token cannot list its permissions (a
            Page token may not), so nothing is known.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    network: str
    object_id: str
    requested: tuple[str, ...]
    subscribed: tuple[str, ...]
    missing_permissions: tuple[str, ...] | None

    @property
    def missing_fields(self) -> tuple[str, ...]:
        """Requested fields Meta does not list as subscribed."""
        return tuple(f for f in self.requested if f not in self.subscribed)

    @property
    def ok(self) -> bool:
        """Whether every field is subscribed and no permission is known to be missing."""
        return not self.missing_fields and not self.missing_permissions
