"""Passwords and API tokens: hashing by pwdlib (Argon2), tokens random and stored hashed.

* Passwords are hashed with Argon2 (pwdlib's recommended parameters); a hash
  made with older parameters is re-hashed at the next successful login
  (:func:`verify_password` returns the new hash).
* :func:`verify_password` of an unknown user is checked against a dummy hash,
  so the answer takes as long as for a real user and timing does not reveal
  who exists.
* An API token is 32 random bytes (URL-safe text) given to the client once;
  the store keeps only its SHA-256, so a copy of the database does not give
  working tokens. A fast hash is right here (the token is random, not a
  password a person chose) and lets a request find its token by lookup.
"""

from __future__ import annotations

import hashlib
import secrets

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError

_hasher = PasswordHash.recommended()
#: Checked when the user does not exist, so that case costs the same time.
DUMMY_HASH = _hasher.hash("no such user: this hash only makes timing equal")
TOKEN_BYTES = 32
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """(matches, a new hash to store or None); ``hashed=None`` (unknown user) never matches."""
    if hashed is None:
        _hasher.verify(password, DUMMY_HASH)
        return False, None
    try:
        return _hasher.verify_and_update(password, hashed)
    except UnknownHashError:  # an unreadable stored hash reads as a wrong password
        _hasher.verify(password, DUMMY_HASH)
        return False, None


def new_token() -> str:
    """A fresh API token (shown to the client once, never stored as is)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """What the store keeps of a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
