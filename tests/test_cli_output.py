"""What crossrank prints unasked: nothing. transformers' "Loading weights" bar and its
"Token indices sequence length" warning stay out of crossrank's calls (in every adapter, as
they all load and score through the core), and the caller's transformers settings are the
same after a crossrank call as before it."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import transformers
from transformers import AutoModelForSequenceClassification
from transformers.utils import logging as hf_logging

from crossrank import CrossEncoderScorer
from crossrank._quiet import quiet_transformers

BAR = "Loading weights"
TOO_LONG = "Token indices sequence length is longer than the specified maximum"
HAS_HOOK = hasattr(hf_logging, "set_tqdm_hook")
needs_bar = pytest.mark.skipif(
    int(transformers.__version__.split(".")[0]) < 5,
    reason="transformers 4.x draws no 'Loading weights' bar",
)


def _settings() -> dict[str, Any]:
    """The transformers and huggingface_hub settings a user may have chosen."""
    from huggingface_hub.utils import are_progress_bars_disabled  # type: ignore[attr-defined]

    root = logging.getLogger("transformers")
    return {
        "verbosity": hf_logging.get_verbosity(),
        "progress_bar": hf_logging.is_progress_bar_enabled(),
        "hub_bars_disabled": are_progress_bars_disabled(),
        "hook": getattr(hf_logging, "_tqdm_hook", None),
        "handlers": list(root.handlers),
        "filters": list(root.filters),
        "crossrank_filters": list(logging.getLogger("crossrank").filters),
    }


@pytest.fixture
def bars_on() -> Iterator[None]:
    """transformers' progress bars on (the default), restored afterwards."""
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    yield
    if not was:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


@needs_bar
@pytest.mark.usefixtures("bars_on")
def test_loading_draws_no_bar_and_leaves_the_settings(
    tiny_model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    assert BAR in capfd.readouterr().err  # transformers alone draws it: the test can fail
    before = _settings()
    CrossEncoderScorer(tiny_model_dir, device="cpu").warm_up()
    assert BAR not in capfd.readouterr().err
    assert _settings() == before
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    assert BAR in capfd.readouterr().err  # the user's own loads still draw it


@needs_bar
@pytest.mark.usefixtures("bars_on")
def test_a_users_verbosity_and_disabled_bars_stay_as_they_were(
    tiny_model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        before = _settings()
        CrossEncoderScorer(tiny_model_dir, device="cpu").warm_up()
        assert _settings() == before
        assert before["verbosity"] == logging.ERROR and before["progress_bar"] is False
    finally:
        hf_logging.set_verbosity(verbosity)
    assert BAR not in capfd.readouterr().err


@needs_bar
@pytest.mark.skipif(not HAS_HOOK, reason="this transformers has no set_tqdm_hook")
@pytest.mark.usefixtures("bars_on")
def test_a_users_tqdm_hook_is_kept_and_still_used_for_their_bars(tiny_model_dir: Path) -> None:
    seen: list[str] = []

    def mine(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        seen.append(str(kwargs.get("desc")))
        return factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(mine)
    try:
        CrossEncoderScorer(tiny_model_dir, device="cpu").warm_up()
        assert seen == []  # crossrank's load drew no bar, not even through the user's hook
        assert hf_logging._tqdm_hook is mine
        AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
        assert seen == [BAR]
    finally:
        hf_logging.set_tqdm_hook(previous)


@pytest.mark.skipif(not HAS_HOOK, reason="this transformers has no set_tqdm_hook")
@pytest.mark.usefixtures("bars_on")
def test_only_the_calling_thread_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    def draw(desc: str) -> None:
        for _ in hf_logging.tqdm(range(3), desc=desc):
            pass

    with quiet_transformers():
        draw("bar of the quiet thread")
        other = threading.Thread(target=draw, args=("bar of another thread",))
        other.start()
        other.join()
    draw("bar after the section")
    err = capfd.readouterr().err
    assert "bar of the quiet thread" not in err
    assert "bar of another thread" in err and "bar after the section" in err


@pytest.mark.usefixtures("bars_on")
def test_sections_in_many_threads_restore_the_settings() -> None:
    before = _settings()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def section() -> None:
        try:
            with quiet_transformers():
                barrier.wait(timeout=30)  # all four inside at once
                with quiet_transformers():  # re-entrant
                    pass
            barrier.wait(timeout=30)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=section) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _settings() == before


@pytest.fixture
def transformers_to_stderr(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """transformers' log records on the current stderr (capfd's), as a user's logging setup
    would print them (transformers' own handler keeps the stderr it was created with)."""
    handler = logging.StreamHandler(sys.stderr)
    target = logging.getLogger("transformers")
    target.addHandler(handler)
    yield
    target.removeHandler(handler)


def _warns_too_long(tiny_model_dir: Path, text: str, capfd: pytest.CaptureFixture[str]) -> bool:
    """Whether a fresh tokenizer of the model warns about ``text`` (the control)."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_model_dir)(text)
    return TOO_LONG in capfd.readouterr().err


@pytest.mark.usefixtures("transformers_to_stderr")
def test_a_long_query_gives_crossranks_warning_not_transformers(
    tiny_model_dir: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")  # 128 tokens per pair
    query = " ".join(["cat dog"] * 100)  # 200 tokens
    assert _warns_too_long(tiny_model_dir, query, capfd)  # the test can fail
    scorer.rerank(query, ["paris", "the dog"], token_budget=50)
    assert "the query has 200 tokens; it was cut" in caplog.text  # crossrank's own
    assert TOO_LONG not in capfd.readouterr().err


@pytest.mark.usefixtures("transformers_to_stderr")
def test_counting_tokens_of_long_texts_warns_nothing(
    tiny_model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    long_text = " ".join(["cat dog"] * 200)
    assert _warns_too_long(tiny_model_dir, long_text, capfd)  # the test can fail
    assert scorer.count_tokens([long_text]) == [400]
    scorer.rerank("cat", [long_text, "paris"], token_budget=500)
    assert TOO_LONG not in capfd.readouterr().err
