"""``python -m omnichannel_meta``: set up a Page or an Instagram account for webhooks.

```console
python -m omnichannel_meta subscribe facebook --config omnichannel.toml
python -m omnichannel_meta subscribe instagram --field comments --field messages
```

The settings come from the config file and the environment, as for
``omnichannel serve`` (``[facebook]`` / ``[instagram]`` sections,
``OMNICHANNEL_FACEBOOK_*`` variables). The exit status is 0 when every field
is subscribed and no permission is known to be missing, 1 otherwise (or on a
network error), 2 for a settings problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO, cast

import anyio

from omnichannel.errors import ConfigurationError, OmnichannelError
from omnichannel.settings import Config

from ._adapter import FacebookAdapter, InstagramAdapter, MetaAdapter
from ._setup import WebhookSubscription

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m omnichannel_meta``."""
    parser = argparse.ArgumentParser(
        prog="python -m omnichannel_meta",
        description="Set up a Facebook Page or an Instagram account for omnichannel.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    subscribe = verbs.add_parser(
        "subscribe", help="install the app on the account for webhook fields",
        description="Install the app on the Page (or Instagram account) with "
                    "POST /{id}/subscribed_apps, then print the fields Meta lists and the "
                    "permissions the token lacks.",
    )
    subscribe.add_argument("network", choices=["facebook", "instagram"], help="which adapter")
    subscribe.add_argument("--config", metavar="FILE",
                           help="settings file (default: OMNICHANNEL_CONFIG, omnichannel.toml)")
    subscribe.add_argument("--field", action="append", metavar="NAME",
                           help="a webhook field (repeatable; default: the setup's fields)")
    return parser


def _print(report: WebhookSubscription, out: TextIO) -> None:
    print(f"{report.network} {report.object_id}: subscribed "
          f"{', '.join(report.subscribed) or 'nothing'}", file=out)
    if report.missing_fields:
        print(f"  missing fields: {', '.join(report.missing_fields)}", file=out)
    if report.missing_permissions is None:
        print("  permissions: not checked (the token cannot list them)", file=out)
    elif report.missing_permissions:
        print(f"  missing permissions: {', '.join(report.missing_permissions)}", file=out)
    else:
        print("  permissions: all granted", file=out)


async def _subscribe(adapter: MetaAdapter, fields: Sequence[str] | None) -> WebhookSubscription:
    async with adapter:
        return await adapter.subscribe_webhooks(fields=fields)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command; return the exit status (0 set up, 1 incomplete or failed, 2 settings)."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    cls = FacebookAdapter if args.network == "facebook" else InstagramAdapter
    try:
        adapter = cast(MetaAdapter, Config.load(args.config).build(cls))
        report = anyio.run(_subscribe, adapter, args.field)
    except ConfigurationError as exc:
        print(f"omnichannel_meta: error: {exc}", file=sys.stderr)
        return 2
    except OmnichannelError as exc:
        print(f"omnichannel_meta: error: {exc}", file=sys.stderr)
        return 1
    _print(report, out)
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover - the module's command line
    sys.exit(main())
