"""Requests, responses and routing for sandboxes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl

import httpx
from pydantic import JsonValue

if TYPE_CHECKING:
    from ._world import Account

__all__ = [
    "HandlerResult",
    "Route",
    "Router",
    "SandboxAbort",
    "SandboxRequest",
    "SandboxResponse",
    "route",
]


@dataclass(frozen=True)
class SandboxRequest:
    """One HTTP request as a sandbox handler sees it.

    Attributes:
        method: Upper-case method.
        path: The URL path (percent-decoded).
        query: The query string, multi-valued (``query.get_list("types[]")``).
        headers: Case-insensitive headers.
        body: The raw body.
        params: Path parameters of the matched route (``{"id": "42"}``).
        route: The matched route template, ``""`` before matching.
        account: The authenticated account, ``None`` on routes without auth.
        token: The credential the request carried, when any.
        seq: Sandbox-wide request number (from 1).
    """

    method: str
    path: str
    query: httpx.QueryParams = field(default_factory=httpx.QueryParams)
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    body: bytes = b""
    params: Mapping[str, str] = field(default_factory=dict)
    route: str = ""
    account: Account | None = None
    token: str | None = field(default=None, repr=False)
    seq: int = 0

    def with_(self, **changes: object) -> SandboxRequest:
        """Return a copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-case, without parameters."""
        value: str = self.headers.get("content-type", "")
        return value.split(";")[0].strip().lower()

    def bearer(self) -> str | None:
        """Return the ``Authorization: Bearer`` token, if there is one."""
        header: str = self.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return value.strip() or None

    def json(self) -> JsonValue:
        """Decode the body as JSON.

        Raises:
            SandboxAbort: The body is not JSON (answered as a 400).
        """
        try:
            value: JsonValue = json.loads(self.body or b"null")
        except ValueError:
            answer = SandboxResponse.json({"error": "body is not JSON"}, status=400)
            raise SandboxAbort(answer) from None
        return value

    def form(self) -> dict[str, list[str]]:
        """Decode an ``application/x-www-form-urlencoded`` body (multi-valued)."""
        out: dict[str, list[str]] = {}
        for key, value in parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True):
            out.setdefault(key, []).append(value)
        return out

    def data(self) -> dict[str, JsonValue]:
        """Return the body's fields, whether sent as JSON or as a form.

        Form fields with one value become strings; repeated ones (``a[]``) lists.
        A JSON body that is not an object gives ``{}``.
        """
        if self.content_type == "application/x-www-form-urlencoded":
            return {k: (v[0] if len(v) == 1 and not k.endswith("[]") else list(v))
                    for k, v in self.form().items()}
        if not self.body:
            return {}
        value = self.json()
        return value if isinstance(value, dict) else {}

    def field(self, name: str, default: str | None = None) -> str | None:
        """Return one body field (JSON or form) as a string, else the query parameter."""
        value = self.data().get(name)
        if value is None:
            found: str | None = self.query.get(name, default)
            return found
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        return json.dumps(value)


@dataclass
class SandboxResponse:
    """What a handler answers.

    Attributes:
        status: HTTP status.
        body: The body bytes (ignored when ``stream`` is set).
        headers: Response headers (names as the network writes them).
        stream: For streaming endpoints (SSE, long polls): a factory of an
            async iterator of body chunks, sent as they come.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Callable[[], AsyncIterator[bytes]] | None = None

    @classmethod
    def json(
        cls, data: object, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> SandboxResponse:
        """Build a JSON response (UTF-8, not ASCII-escaped, compact)."""
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        kind = {"content-type": "application/json; charset=utf-8"}
        return cls(status, body, {**kind, **(headers or {})})

    @classmethod
    def text(
        cls, text: str, *, status: int = 200, headers: Mapping[str, str] | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> SandboxResponse:
        """Build a text response."""
        return cls(status, text.encode(), {"content-type": content_type, **(headers or {})})

    @classmethod
    def empty(
        cls, *, status: int = 204, headers: Mapping[str, str] | None = None
    ) -> SandboxResponse:
        """Build a response without a body."""
        return cls(status, b"", dict(headers or {}))

    def json_body(self) -> JsonValue:
        """Decode the body as JSON (for tests)."""
        value: JsonValue = json.loads(self.body)
        return value


class SandboxAbort(Exception):
    """Raised inside a handler to answer at once with ``response``.

    ``raise SandboxAbort(self.bad_request(request, "Text can't be blank", status=422))``
    """

    def __init__(self, response: SandboxResponse) -> None:
        self.response = response
        super().__init__(f"answer with {response.status}")


HandlerResult = SandboxResponse | Mapping[str, object] | Sequence[Mapping[str, object]]
"""A handler returns a ``SandboxResponse``, or JSON data answered with 200."""

Handler = Callable[[SandboxRequest], HandlerResult]
F = TypeVar("F", bound=Callable[..., HandlerResult])

_ROUTES_ATTR = "__sandbox_routes__"


@dataclass(frozen=True)
class RouteSpec:
    """How a route was declared with [`route`][omnichannel.testing.sandbox.route]."""

    method: str
    template: str
    auth: bool
    rate_limit: str | None
    name: str | None


def route(
    method: str, template: str, *, auth: bool = True, rate_limit: str | None = "default",
    name: str | None = None,
) -> Callable[[F], F]:
    """Declare a sandbox method as the handler of ``method template``.

    Args:
        method: HTTP method (``"GET"``, ``"POST"``...).
        template: Path with ``{name}`` parameters (one segment) or
            ``{name:path}`` (the rest of the path).
        auth: Whether the request must carry a valid token (the sandbox's
            ``authenticate`` hook decides).
        rate_limit: The rate-limit bucket the route draws from; ``None`` for
            unlimited (and no rate-limit headers).
        name: A name for the route (defaults to ``"METHOD template"``).

    The decorator may be stacked to serve several routes with one method.
    """

    def mark(fn: F) -> F:
        specs: list[RouteSpec] = list(getattr(fn, _ROUTES_ATTR, ()))
        specs.append(RouteSpec(method.upper(), template, auth, rate_limit, name))
        setattr(fn, _ROUTES_ATTR, specs)
        return fn

    return mark


def declared_routes(obj: object) -> list[tuple[RouteSpec, Handler]]:
    """Collect the ``@route`` methods of ``obj``'s class (base classes first), bound to it."""
    found: list[tuple[RouteSpec, Handler]] = []
    seen: set[str] = set()
    for klass in reversed(type(obj).__mro__):
        for attr, value in vars(klass).items():
            specs = getattr(value, _ROUTES_ATTR, None)
            if specs is None or attr in seen:
                continue
            seen.add(attr)
            bound: Handler = getattr(obj, attr)
            found.extend((spec, bound) for spec in specs)
    return found


_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")


@dataclass(frozen=True)
class Route:
    """One route: a method, a path template, its handler and options.

    Attributes:
        method: The HTTP method.
        template: The path, with ``{name}`` parameters.
        handler: The sandbox method that answers.
        auth: Whether the request must carry a valid token.
        rate_limit: The rate-limit bucket it spends, or ``None``.
        name: Its name (by default ``"METHOD /template"``, as ``"POST /posts"``).
    """

    method: str
    template: str
    handler: Handler
    auth: bool = True
    rate_limit: str | None = "default"
    name: str = ""
    _rx: re.Pattern[str] = field(default=re.compile(""), repr=False, compare=False)

    @property
    def literal(self) -> bool:
        """Whether the template has no parameters."""
        return _PARAM.search(self.template) is None


class Router:
    """Maps ``METHOD /path`` to handlers; literal paths win over parameterised ones."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self, method: str, template: str, handler: Handler, *, auth: bool = True,
        rate_limit: str | None = "default", name: str | None = None,
    ) -> Route:
        """Register a handler; return the route."""
        pattern, pos = [], 0
        for m in _PARAM.finditer(template):
            pattern.append(re.escape(template[pos : m.start()]))
            part = ".+" if m.group(2) else "[^/]+"
            pattern.append(f"(?P<{m.group(1)}>{part})")
            pos = m.end()
        pattern.append(re.escape(template[pos:]))
        item = Route(
            method.upper(), template, handler, auth, rate_limit,
            name or f"{method.upper()} {template}", re.compile("".join(pattern) + r"\Z"),
        )
        self.routes.append(item)
        return item

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | list[str]:
        """Find the route for a request.

        Returns:
            ``(route, params)`` on a match; otherwise the methods the path
            allows (empty when the path is unknown).
        """
        allowed: list[str] = []
        ordered = sorted(self.routes, key=lambda r: not r.literal)
        for item in ordered:
            m = item._rx.match(path)
            if m is None:
                continue
            if item.method != method.upper():
                allowed.append(item.method)
                continue
            return item, dict(m.groupdict())
        return allowed
