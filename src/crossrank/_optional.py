"""One place that words the error for a missing optional dependency."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(feature: str, extra: str, error: ImportError) -> ImportError:
    """Build the ImportError raised when ``feature`` needs the optional extra ``extra``.

    Adapters call it in the ``except ImportError as e`` branch around their framework
    import and raise the result ``from e``, so the real cause stays visible. The message
    names the exact install command, quoted for every shell.
    """
    message = (
        f"{feature} needs an optional dependency that is not installed "
        f"({error.name or error}). Install it with: pip install \"crossrank[{extra}]\""
    )
    return ImportError(message, name=error.name)
