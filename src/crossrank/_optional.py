"""One place that words the error for a missing optional dependency."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(feature: str, extra: str, error: ImportError) -> ImportError:
    """Build the ImportError raised when ``feature`` needs ``crossrank[extra]``.

    Raise it ``from`` the original error so the real cause stays visible::

        try:
            import haystack
        except ImportError as e:
            raise missing_extra("The Haystack ranker", "haystack", e) from e
    """
    message = (
        f"{feature} needs an optional dependency that is not installed "
        f"({error.name or error}). Install it with: pip install \"crossrank[{extra}]\""
    )
    return ImportError(message, name=error.name)
