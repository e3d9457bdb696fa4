"""Every adapter with ``scorer=RemoteScorer(provider=...)`` in its framework's real pipeline,
against the fake providers (tests/provider_kit.py): the same documents, order and scores
as the local scorer's for every provider and adapter, first-stage fusion run on this side,
and each framework's saved form holding the provider's config with the key's variable name
only, loading back into a scorer that ranks the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from haystack import Pipeline
from haystack.utils import ComponentDevice
from pipeline_kit import (
    corpus_bm25,
    haystack_pipeline,
    haystack_run,
    langchain_run,
    llama_run,
    same_hits,
)
from provider_kit import KEY, FakeProviders
from serve_kit import QUERIES

from crossrank import CrossEncoderScorer, RemoteScorer
from crossrank.eval.first_stage import BM25Retriever
from crossrank.remote import make_provider
from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker
from langchain_crossrank import CrossEncoderRerank as LangChainRerank
from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank as LlamaRerank

pytestmark = pytest.mark.timeout(180)

NAMES = ("tei", "vllm", "infinity", "cohere", "jina", "voyage", "mixedbread", "pinecone")
SERVER_ENV = "CROSSRANK_FAKE_SERVER_KEY"
CPU = ComponentDevice.from_str("cpu")


def env_of(name: str) -> str:
    return make_provider(name).key_env or SERVER_ENV


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module", autouse=True)
def _keys(monkeypatch_module: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch_module.setenv(env_of(name), KEY)


@pytest.fixture(scope="module")
def bm25() -> BM25Retriever:
    return corpus_bm25()


def provider_scorer(fakes: FakeProviders, name: str, **kwargs: Any) -> RemoteScorer:
    return RemoteScorer(fakes.url(name), provider=name, api_key_env=env_of(name), **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_every_adapters_pipeline_ranks_with_a_provider_as_with_the_local_model(
    fakes: FakeProviders, spread_scorer: CrossEncoderScorer, bm25: BM25Retriever, name: str
) -> None:
    model = spread_scorer.model_name
    for fusion in ({}, {"fusion": "linear", "fusion_weight": 0.3}):
        remote = provider_scorer(fakes, name, **fusion)
        pipelines = (
            haystack_pipeline(CrossEncoderRanker(model=model, device=CPU, top_k=4, **fusion)),
            haystack_pipeline(CrossEncoderRanker(scorer=remote, top_k=4)),
        )
        for query in QUERIES[:2]:
            want = haystack_run(pipelines[0], query)
            assert len(want) == 4
            same_hits(haystack_run(pipelines[1], query), want)
        langchain = (
            LangChainRerank(model=model, device="cpu", top_n=4, **fusion),
            LangChainRerank(scorer=remote, top_n=4),
        )
        llama = (
            LlamaRerank(model=model, device="cpu", top_n=4, **fusion),
            LlamaRerank(scorer=remote, top_n=4),
        )
        for query in QUERIES[2:4]:
            same_hits(
                langchain_run(langchain[1], bm25, query), langchain_run(langchain[0], bm25, query)
            )
            same_hits(llama_run(llama[1], bm25, query), llama_run(llama[0], bm25, query))


@pytest.mark.parametrize("name", NAMES)
def test_each_adapter_saves_a_provider_scorer_and_loads_it_back(
    fakes: FakeProviders, bm25: BM25Retriever, name: str
) -> None:
    env = env_of(name)
    scorer = provider_scorer(fakes, name, fusion="rrf", max_documents=5, timeout=9.0)
    config = scorer.to_config()
    assert config["provider"] == name and config["api_key_env"] == env
    # Haystack: the config, with the key as an env-var Secret, through Pipeline.dumps/loads.
    ranker = CrossEncoderRanker(scorer=scorer, top_k=3)
    data = ranker.to_dict()["init_parameters"]["scorer"]
    assert data == {
        **{k: v for k, v in config.items() if k != "api_key_env"},
        "api_key": {"type": "env_var", "env_vars": [env], "strict": True},
    }
    pipeline = haystack_pipeline(ranker)
    saved = pipeline.dumps()
    assert KEY not in saved
    loaded = Pipeline.loads(saved)
    again = loaded.get_component("ranker")
    assert isinstance(again.scorer, RemoteScorer) and again.scorer.to_config() == config
    same_hits(haystack_run(loaded, QUERIES[0]), haystack_run(pipeline, QUERIES[0]))
    # LangChain: model_dump / model_validate_json.
    compressor = LangChainRerank(scorer=scorer, top_n=3)
    text = compressor.model_dump_json()
    assert KEY not in text and json.loads(text)["scorer"] == config
    rebuilt = LangChainRerank.model_validate_json(text)
    assert isinstance(rebuilt.scorer, RemoteScorer)
    same_hits(langchain_run(rebuilt, bm25, QUERIES[1]), langchain_run(compressor, bm25, QUERIES[1]))
    # LlamaIndex: to_dict / from_json.
    post = LlamaRerank(scorer=scorer, top_n=3)
    assert post.to_dict()["scorer"] == config and KEY not in post.to_json()
    copy = LlamaRerank.from_json(post.to_json())
    assert isinstance(copy.scorer, RemoteScorer) and copy.scorer.to_config() == config
    same_hits(llama_run(copy, bm25, QUERIES[2]), llama_run(post, bm25, QUERIES[2]))
