"""Whether to contact the Hugging Face Hub at all, decided once before loading a Hub id.

Without this, a machine that cannot reach the Hub spends about 25 seconds in
huggingface_hub's retries (with a "Retrying in 8s" line each) before the load fails. So,
for a model given by Hub id, crossrank reads only the local cache when

- ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, or
- one request to the Hub's endpoint, without retries, gets no answer (any HTTP answer
  counts as reachable; a cached model then still loads).

When the model is not in the cache either, the load fails at once with
:class:`~crossrank.errors.HubUnreachableError`, whose hint is :data:`UNREACHABLE_HINT`.
"""

from __future__ import annotations

import logging
import os

__all__ = ["UNREACHABLE_HINT", "cache_only", "hub_offline", "hub_unreachable"]

logger = logging.getLogger("crossrank")

#: What to do when a Hub model cannot be loaded offline (Python names; the CLI shows flags).
UNREACHABLE_HINT = (
    "Download it once where the Hub is reachable (it is then cached), or pass the path of a "
    "local model folder: model=PATH, or CROSSRANK_MODEL=PATH in the environment. Set "
    "HF_HUB_OFFLINE=1 to read the local cache only, without contacting the Hub."
)

_TRUE = ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """Whether offline mode is on: ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set now,
    or huggingface_hub's own setting (read when it was imported)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_unreachable() -> str | None:
    """One request to the Hub's endpoint (``HF_ENDPOINT``), no retries, with
    huggingface_hub's session (its proxies and headers) and its metadata timeout
    (``HF_HUB_ETAG_TIMEOUT``, 10 s by default).

    Returns:
        None when the Hub answered (with any HTTP status), else why it did not.
    """
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except Exception as e:  # requests and httpx raise their own connection errors
        return f"{type(e).__name__}: {e}"
    return None


def cache_only() -> bool:
    """Whether a Hub id should be read from the local cache only (offline mode, or the Hub
    did not answer one request). Logs the reason at INFO level."""
    if hub_offline():
        logger.info("crossrank: HF_HUB_OFFLINE is set; reading the model from the local cache")
        return True
    why = hub_unreachable()
    if why is not None:
        logger.info(
            "crossrank: the Hugging Face Hub did not answer (%s); reading the model from the "
            "local cache",
            why,
        )
        return True
    return False
