"""Optional API keys: ``Authorization: Bearer <key>``, compared in constant time.

Keys come from an environment variable (``--api-key-env NAME``; several keys separated by
commas or newlines) or a file (``--api-key-file PATH``; one key per line, ``#`` comments).
A key is never logged, echoed in an error or written to ``/info``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ApiKeys", "load_api_keys"]


class ApiKeys:
    """The keys a server accepts (none: every request is accepted).

    Example:
        >>> keys = ApiKeys(["s3cret"])
        >>> keys.allows("Bearer s3cret"), keys.allows("Bearer nope"), keys.allows(None)
        (True, False, False)
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = tuple(k.encode("utf-8") for k in keys)
        if any(not k.strip() for k in self._keys):
            raise ValueError("an API key must not be empty or whitespace")

    def __repr__(self) -> str:  # never the keys themselves
        return f"ApiKeys({len(self._keys)} key(s))"

    def __bool__(self) -> bool:
        return bool(self._keys)

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries one of the keys.

        Every key is compared (``hmac.compare_digest``), so the time taken does not tell
        which key, or how much of one, matched.
        """
        if not self._keys:
            return True
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        given = token.strip().encode("utf-8")
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(given, key)
        return found


def _split(text: str) -> list[str]:
    keys = []
    for line in text.replace(",", "\n").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line)
    return keys


def load_api_keys(*, env: str | None = None, file: str | os.PathLike[str] | None = None) -> ApiKeys:
    """The keys named by ``--api-key-env`` and ``--api-key-file`` (both may be given).

    Raises:
        ValueError: The variable is unset or empty, or the file holds no key. The message
            names the variable or file, never a key.
        FileNotFoundError: The file does not exist.
    """
    keys: list[str] = []
    if env is not None:
        value = os.environ.get(env, "")
        found = _split(value)
        if not found:
            raise ValueError(
                f"api_key_env={env}: the environment variable {env} is "
                f"{'empty' if env in os.environ else 'not set'}; export it with the key(s) "
                "the server should accept"
            )
        keys += found
    if file is not None:
        path = Path(file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"api_key_file={file}: no such file")
        found = _split(path.read_text(encoding="utf-8"))
        if not found:
            raise ValueError(f"api_key_file={file}: the file holds no key (one key per line)")
        keys += found
    return ApiKeys(keys)
