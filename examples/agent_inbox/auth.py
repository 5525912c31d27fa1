"""Agent login: scrypt password hashes, a signed session cookie, CSRF tokens bound to it.

A password is stored as ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` (make one with
``python -m examples.agent_inbox --hash-password``). The session cookie carries the
agent's id and an expiry, signed with HMAC-SHA256 under a key that never leaves the
server; each form carries a token derived from the session, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Hash ``password`` with scrypt and a random salt, in the stored form."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


class Sessions:
    """Signed session cookies and the CSRF tokens derived from them."""

    def __init__(self, key: bytes | None = None, *, lifetime: float = 12 * 3600) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self.lifetime = lifetime

    def __repr__(self) -> str:
        return "<Sessions>"

    def _sign(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def issue(self, agent: str) -> str:
        """A cookie value for ``agent``'s new session."""
        value = f"{agent}|{int(time.time() + self.lifetime)}|{secrets.token_hex(8)}"
        return f"{value}|{self._sign(value)}"

    def agent(self, cookie: str | None) -> str | None:
        """The agent a cookie belongs to, or ``None`` if it is forged or expired."""
        if not cookie or cookie.count("|") != 3:
            return None
        value, _, signature = cookie.rpartition("|")
        if not hmac.compare_digest(self._sign(value), signature):
            return None
        agent, expires, _ = value.split("|")
        return agent if int(expires) > time.time() else None

    def csrf(self, cookie: str) -> str:
        """The CSRF token for the forms of the session (or pre-login cookie) ``cookie``."""
        return self._sign(f"csrf:{cookie}")

    def csrf_ok(self, cookie: str | None, token: str | None) -> bool:
        """Whether ``token`` is the CSRF token of ``cookie``."""
        return bool(cookie and token) and hmac.compare_digest(self.csrf(cookie or ""), token or "")
