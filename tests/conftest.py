"""Shared fixtures.

- ``tiny_model_dir`` / ``tiny_two_logit_dir`` / ``tiny_bi_encoder_dir``: small random BERT
  models built once per session (no downloads), for fast offline unit tests.
- ``family_kit``: a tiny checkpoint of every reranker family and sentence-transformers' scores
  for it (tests/family_kit.py), each built on first use.
- ``shared_model_dir``, ``shared_bi_encoder_dir``, ``scifact_dir``: the real assets in
  ``../shared`` (``CROSSRANK_SHARED`` names another folder; ``CROSSRANK_TEST_MODEL``,
  ``CROSSRANK_TEST_BI_ENCODER`` and ``CROSSRANK_TEST_DATA`` name each asset). Missing assets skip
  the test with a reason locally and fail it in CI (``CI=true``).
- ``scifact_candidates``: 30 SciFact test queries with BM25 (bm25s) top-20 candidates,
  built once, for integration tests that compare crossrank paths with each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CROSSRANK_SHARED", ROOT.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# The core's default backend is "auto", which measures the machine once per model (a probe
# of several seconds, and exports). Tests build many throwaway models, so they pin "auto"
# to fp32 torch here (the reference every comparison with sentence-transformers needs);
# the tests of auto itself unset the variable (monkeypatch.delenv) or pass other backends.
os.environ["CROSSRANK_BACKEND"] = "torch"

_WORDS = (
    "the a an of and or in on to is are was what which who how why capital city france "
    "germany paris berlin cat dog cell cells protein gene genes cancer risk study studies "
    "patients treatment effect increase decrease blood brain heart drug dose"
).split()


def _vocab() -> dict[str, int]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = "abcdefghijklmnopqrstuvwxyz0123456789"
    tokens += list(chars) + list(".,;:!?-'\"()[]/%") + ["##" + c for c in chars] + _WORDS
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def build_tiny_model(
    folder: Path, *, num_labels: int = 1, head: bool = True, seed: int = 0
) -> Path:
    """Save a random 2-layer BERT cross-encoder (or a bare encoder) with a tiny vocabulary."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

    torch.manual_seed(seed)
    vocab = _vocab()
    tokenizer = BertTokenizer(vocab=vocab, model_max_length=128)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
    )
    model = BertForSequenceClassification(config) if head else BertModel(config)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exported ONNX files go to a temporary folder, never the user's ~/.cache."""
    os.environ["CROSSRANK_CACHE"] = str(tmp_path_factory.mktemp("crossrank-cache"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-ce"))


@pytest.fixture(scope="session")
def tiny_two_logit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-ce-2"), num_labels=2, seed=1)


@pytest.fixture(scope="session")
def tiny_bi_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bi"), head=False)


@pytest.fixture(scope="session")
def family_kit(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A tiny checkpoint of every reranker family, each built on first use, and
    sentence-transformers' reference scores for them (tests/family_kit.py)."""
    import transformers.dynamic_module_utils as dynamic_modules
    from family_kit import FamilyKit

    with pytest.MonkeyPatch.context() as patch:
        # Loading a trust_remote_code checkpoint copies its code to HF_MODULES_CACHE (by default
        # ~/.cache/huggingface/modules): the kit's copies go to the session's tmp instead.
        modules_cache = str(tmp_path_factory.mktemp("hf-modules"))
        patch.setattr(dynamic_modules, "HF_MODULES_CACHE", modules_cache)
        yield FamilyKit(tmp_path_factory.mktemp("family-kit"))


@pytest.fixture(scope="session")
def tiny_scorer(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """A loaded scorer on the tiny model, shared by the session (it is thread-safe)."""
    from crossrank import CrossEncoderScorer

    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    scorer.warm_up()
    return scorer


def _shared(path: Path, env: str | None = None) -> Path:
    if env and os.environ.get(env):
        path = Path(os.environ[env])
    if not path.exists():
        message = f"shared asset {path} is missing (see ../shared/README.md)"
        if IN_CI:
            pytest.fail(f"{message}; in CI (CI=true) the shared assets are required")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_model_dir() -> Path:
    return _shared(SHARED / "models" / "crossrank-minilm-l6-scifact", "CROSSRANK_TEST_MODEL")


@pytest.fixture(scope="session")
def shared_bi_encoder_dir() -> Path:
    return _shared(SHARED / "models" / "all-MiniLM-L6-v2", "CROSSRANK_TEST_BI_ENCODER")


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    return _shared(SHARED / "data" / "scifact", "CROSSRANK_TEST_DATA")


@pytest.fixture(scope="session")
def shared_scorer(shared_model_dir: Path):  # type: ignore[no-untyped-def]
    """The real shared cross-encoder through the core, fp32 on CPU, loaded once."""
    from crossrank import CrossEncoderScorer

    scorer = CrossEncoderScorer(shared_model_dir, device="cpu")
    scorer.warm_up()
    return scorer


@pytest.fixture(scope="session")
def scifact(scifact_dir: Path):  # type: ignore[no-untyped-def]
    """SciFact test split in BEIR layout, loaded once."""
    from crossrank.eval.data import load_beir

    return load_beir(scifact_dir, split="test")


@pytest.fixture(scope="session")
def scifact_candidates(scifact):  # type: ignore[no-untyped-def]
    """30 SciFact test queries, each with its BM25 (bm25s) top-20 ``[(doc_id, bm25)]``."""
    from crossrank.eval.first_stage import BM25Retriever

    query_ids = sorted(scifact.qrels)[:30]
    retriever = BM25Retriever(scifact.corpus)
    return {qid: retriever.search(scifact.queries[qid], k=20) for qid in query_ids}


@pytest.fixture(scope="session")
def scifact_core_run(scifact, scifact_candidates, shared_scorer):  # type: ignore[no-untyped-def]
    """The core's scores for ``scifact_candidates``: {qid: {doc_id: score}}.

    Adapters' end-to-end tests compare against this: the adapter must lose nothing.
    """
    run: dict[str, dict[str, float]] = {}
    for qid, hits in scifact_candidates.items():
        ids = [doc_id for doc_id, _ in hits]
        texts = [scifact.doc_text(doc_id) for doc_id in ids]
        run[qid] = dict(zip(ids, shared_scorer.score(scifact.queries[qid], texts), strict=True))
    return run


@dataclass(frozen=True)
class LongEvidenceCase:
    """Ten SciFact candidates for one query; the first is a long document whose only
    relevant passage (``relevant_text``, a judged-relevant abstract) starts at character
    ``passage_start``, after more than 1,000 tokens of unrelated abstracts."""

    query: str
    texts: list[str]
    passage_start: int
    relevant_text: str


@pytest.fixture(scope="session")
def long_evidence_case(scifact, scifact_candidates, shared_scorer) -> LongEvidenceCase:  # type: ignore[no-untyped-def]
    """The shared "evidence after token 1,000" case used by the core and adapter tests."""
    import numpy as np

    tokenizer = shared_scorer._model().tokenizer
    # A query whose relevant document the model ranks first among the BM25 candidates.
    chosen = None
    for qid in sorted(scifact_candidates):
        ids = [d for d, _ in scifact_candidates[qid]]
        relevant = [d for d in ids if scifact.qrels[qid].get(d, 0) > 0]
        if not relevant:
            continue
        scores = shared_scorer.score(scifact.queries[qid], [scifact.doc_text(d) for d in ids])
        if ids[int(np.argmax(scores))] in relevant:
            chosen = (qid, ids, ids[int(np.argmax(scores))])
            break
    assert chosen is not None, "no query where the shared model ranks a relevant doc first"
    qid, ids, relevant_id = chosen
    others = [d for d in ids if d != relevant_id][:9]
    # Filler: unrelated corpus documents (not among this query's candidates or judgments).
    filler_parts: list[str] = []
    filler = ""
    for doc_id in scifact.corpus:
        if doc_id in ids or doc_id in scifact.qrels[qid]:
            continue
        filler_parts.append(scifact.doc_text(doc_id))
        filler = " ".join(filler_parts)
        if len(tokenizer(filler, add_special_tokens=False)["input_ids"]) > 1000:
            break
    relevant_text = scifact.doc_text(relevant_id)
    long_doc = filler + " " + relevant_text
    return LongEvidenceCase(
        query=scifact.queries[qid],
        texts=[long_doc] + [scifact.doc_text(d) for d in others],
        passage_start=len(filler) + 1,
        relevant_text=relevant_text,
    )


@pytest.fixture(scope="module")
def spread_scorer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A loaded scorer on serve_kit's spread model (scores that differ between texts well
    above batching noise), once per test module: the reference the remote tests compare
    with, and what the fake providers score with."""
    from serve_kit import spread_model

    from crossrank import CrossEncoderScorer

    scorer = CrossEncoderScorer(spread_model(tmp_path_factory), device="cpu")
    scorer.warm_up()
    return scorer


@pytest.fixture(scope="module")
def fakes(spread_scorer):  # type: ignore[no-untyped-def]
    """Every fake provider (tests/provider_kit.py) on one local server, scoring with
    ``spread_scorer``, once per test module."""
    from provider_kit import fake_providers

    with fake_providers(spread_scorer) as running:
        yield running
