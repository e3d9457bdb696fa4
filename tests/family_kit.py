"""Tiny checkpoints of every reranker family, and what sentence-transformers 6.x scores for them.

The parity tests of crossrank's families stand on this kit. For each family: a random-weight
checkpoint (2 layers of width 32, seeded) whose tokenizer is trained here with the ``tokenizers``
library (tests/family_tokenizers.py), saved the way the family's Hub checkpoints are saved
(tests/family_builders.py); and the sentence-transformers reference (:meth:`FamilyKit.reference`):
``CrossEncoder.predict``'s raw scores (identity activation) for :data:`PAIRS` (a SciFact-like claim
and 8 abstracts of mixed length, 2 to 6 of them longer than ``max_length``) and the model input it
builds for each pair, decoded. Texts and prompt formats: tests/family_formats.py. In a test::

    def test_x(family_kit):
        folder = family_kit.path("qwen3-causal")        # built on first use, once a session
        expected = family_kit.reference("qwen3-causal")  # StReference: scores, inputs, ...

Families (``FAMILIES`` key: the Hub checkpoint it mirrors, what its folder holds, deviations).
Every folder holds config.json, model.safetensors, tokenizer.json and tokenizer_config.json, as
transformers 5 saves them: no sentencepiece ``.model``, vocab.txt, vocab.json, merges.txt or
special_tokens_map.json (transformers 5 neither writes nor needs them; on load it rebuilds these
tokenizer classes' normalizer and pre-tokenizer from the class, as it does for the Hub's files).
``max_length`` is :data:`MAX_LENGTH` (160, the tokenizers' ``model_max_length``), BERT's 128.

- ``bert``, ``bert-2labels``: ``cross-encoder/ms-marco-MiniLM-L6-v2``
  (``BertForSequenceClassification``, 1 or 2 labels): conftest's ``build_tiny_model``, its weights
  redrawn with std 0.4 (at 0.02 its 8 scores lie within 1e-6, too close to check an order).
- ``bert-default-prompt``: that BERT saved by ``CrossEncoder.save`` with prompts
  (:data:`BERT_PROMPTS`, default ``query`` = "query: "): + modules.json,
  sentence_bert_config.json, config_sentence_transformers.json, README.md. Without a chat template
  the prompt is text: sentence-transformers prepends it to each pair's query.
- ``xlmr``: ``BAAI/bge-reranker-v2-m3`` (``XLMRobertaForSequenceClassification``, 1 label, pad id 1,
  a position table of 160 + 2 for RoBERTa's offset; Unigram ``XLMRobertaTokenizer``).
- ``xlmr-short-positions``: the same, a table of 66 (64 usable) under a tokenizer saying 8192.
- ``deberta``: ``mixedbread-ai/mxbai-rerank-xsmall-v1`` (``DebertaV2ForSequenceClassification``,
  DeBERTa-v3's relative attention, ``type_vocab_size=0``: the tokenizer returns ``token_type_ids``
  that the model ignores; Unigram ``DebertaV2Tokenizer``).
- ``modernbert``: ``Alibaba-NLP/gte-reranker-modernbert-base``
  (``ModernBertForSequenceClassification``; ``classifier_pooling="mean"``, the real one's pooling
  unverified; ``local_attention=16`` and ``global_attn_every_n_layers=3``: layer 0 global, layer 1
  local; byte-level BPE ``PreTrainedTokenizerFast``, [CLS] a [SEP] b [SEP], no token types).
- ``electra``: ``cross-encoder/ms-marco-electra-base`` (``ElectraForSequenceClassification``,
  1 label, WordPiece; tokenizer_config.json says ``ElectraTokenizer``).
- ``qwen3-seq-cls``: ``cross-encoder-testing/Qwen3-Reranker-0.6B-seq-cls-STv6``
  (``Qwen3ForSequenceClassification``, 1 label, pad ``<|endoftext|>``), saved by
  ``CrossEncoder.save`` with one ``Transformer`` (sequence-classification) module; it adds
  modules.json, sentence_bert_config.json, config_sentence_transformers.json (prompts
  ``web_search`` = Qwen's default instruction and ``scifact`` = :data:`INSTRUCTION`, default
  ``web_search``, Identity), chat_template.jinja (Qwen3-Reranker's format) and README.md.
  ``qwen3-seq-cls-no-pad``: the same without a pad token, in tokenizer or config.
- ``qwen3-causal``: ``Qwen/Qwen3-Reranker-0.6B`` in the sentence-transformers 6.x format, saved by
  ``CrossEncoder.save`` from ``Transformer`` (text-generation, ``Qwen3ForCausalLM``) and
  ``LogitScore`` ("yes", "no"); it adds 1_LogitScore/config.json and generation_config.json too.
  Its default prompt (``query``) is :data:`INSTRUCTION`. Deviation: the Hub's default prompt is the
  template's own default instruction; here they differ, so ignoring the prompt changes the scores.
- ``qwen3-causal-old-paths``: the same, modules.json naming the older module paths that
  sentence-transformers 6.3 still resolves (:data:`OLD_MODULE_PATHS`). The 6.0 development path
  ``sentence_transformers.base.models.Transformer`` raises ModuleNotFoundError in 6.3: not used.
- ``zerank``: ``zeroentropy/zerank-2`` (``Qwen3ForCausalLM`` + ``LogitScore`` on "Yes" alone; the
  query is the system turn, the document the user turn; the assistant turn is opened by
  ``add_generation_prompt``, switched on by sentence_bert_config.json's ``processing_kwargs``).
- ``bge-gemma``: ``BAAI/bge-reranker-v2-gemma`` (``GemmaForCausalLM``, tied; BPE
  ``GemmaTokenizer`` adding ``<bos>``, with "Yes", "yes" and "no" as pieces); no
  sentence-transformers files and no chat template (base gemma-2b's tokenizer has none,
  unverified).
- ``mxbai-v2``: ``mixedbread-ai/mxbai-rerank-base-v2`` (``Qwen2ForCausalLM``, "1" and "0" single
  tokens); no sentence-transformers files; a Qwen2.5-style ChatML template (default system turn
  "You are Qwen...") written here.
- ``qwen3-reranker-original``: ``Qwen/Qwen3-Reranker-0.6B`` downloaded before its
  sentence-transformers files: ``Qwen3ForCausalLM``, an ordinary Qwen3-style ChatML template kept
  in tokenizer_config.json (where tokenizers kept it before chat_template.jinja).
- ``ettin``: ``cross-encoder/ettin-reranker-17m-v1``, built as its published training script
  builds it and saved by ``CrossEncoder.save``: ``Transformer`` (feature-extraction,
  ``ModernBertModel``) -> ``Pooling(cls)`` -> ``Dense(H, H, bias=False, GELU)`` -> ``LayerNorm(H)``
  -> ``Dense(H, 1, scores)``; it adds 1_Pooling/, 2_Dense/, 3_LayerNorm/ and 4_Dense/ (config.json,
  and model.safetensors for Dense and LayerNorm).
- ``remote-code``: gte-multilingual-reranker / jina-reranker-v2 style: config.json's ``auto_map``
  names configuration_tiny_rerank.py and modeling_tiny_rerank.py in the folder (a renamed BERT,
  ``TinyRerankForSequenceClassification``; XLM-R tokenizer). ``remote-code-broken``: its modeling
  file imports ``create_position_ids_from_input_ids``, gone in transformers 5 (jina-v2's failure).
- Fitting no family: ``bare-encoder`` (a ``BertModel``), ``t5`` (``T5ForConditionalGeneration``)
  and ``unknown-module`` (the BERT cross-encoder saved by sentence-transformers, modules.json naming
  an extra :data:`UNKNOWN_MODULE_TYPE` whose code is nowhere).

``Family.st_note`` says what sentence-transformers 6.3 does with each folder, ``Family.st_error``
what its default load raises. Where its default is not the model card's usage (``bge-gemma``,
``mxbai-v2``, ``qwen3-reranker-original``), the reference is the card's format run through
sentence-transformers modules (``Family.documented``), and :meth:`FamilyKit.st_default` gives the
default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import build_tiny_model
from family_builders import (
    BERT_PROMPTS,
    OLD_MODULE_PATHS,
    UNKNOWN_MODULE_TYPE,
    build_bert,
    build_bert_default_prompt,
    build_bge_gemma,
    build_deberta,
    build_electra,
    build_ettin,
    build_modernbert,
    build_mxbai_v2,
    build_qwen3_causal,
    build_qwen3_causal_old_paths,
    build_qwen3_reranker_original,
    build_qwen3_seq_cls,
    build_remote_code,
    build_t5,
    build_unknown_module,
    build_xlmr,
    build_zerank,
)
from family_formats import (
    BGE_GEMMA_PROMPT,
    BGE_GEMMA_TEMPLATE,
    DOCUMENTS,
    INSTRUCTION,
    MAX_LENGTH,
    MXBAI_SUFFIX,
    MXBAI_V2_TEMPLATE,
    PAIRS,
    QUERY,
    QWEN3_RERANKER_TEMPLATE,
    QWEN3_SUFFIX,
    ZERANK_SUFFIX,
)

__all__ = [
    "BERT_PROMPTS",
    "DOCUMENTS",
    "FAMILIES",
    "INSTRUCTION",
    "MAX_LENGTH",
    "OLD_MODULE_PATHS",
    "PAIRS",
    "PARITY_FAMILIES",
    "QUERY",
    "UNKNOWN_MODULE_TYPE",
    "Documented",
    "Family",
    "FamilyKit",
    "StReference",
    "documented_reference",
    "load_cross_encoder",
    "reference_of",
    "st_reference",
]


@dataclass(frozen=True)
class StReference:
    """What sentence-transformers does with a checkpoint for a list of (query, document) pairs.

    Lists follow the order of the pairs. ``scores``: a float per pair (a list per pair for several
    labels). ``inputs``: each pair's model input as sentence-transformers builds it, decoded with
    special tokens and without padding; ``input_ids`` the same ids. ``truncated``: the pair reached
    ``max_length``. ``padding_side``: where its batch padding went, read from the attention mask.
    """

    scores: list[Any]
    inputs: list[str]
    input_ids: list[list[int]]
    truncated: list[bool]
    max_length: int
    padding_side: str


def reference_of(
    model: Any,
    pairs: Sequence[tuple[str, str]] = PAIRS,
    *,
    prompt: str | None = None,
    prompt_name: str | None = None,
    batch_size: int = 32,
    processing_kwargs: dict[str, Any] | None = None,
) -> StReference:
    """Raw ``predict`` scores of a loaded ``CrossEncoder`` (identity activation) and its inputs."""
    import torch

    pairs = list(pairs)
    scores = model.predict(
        pairs,
        prompt=prompt,
        prompt_name=prompt_name,
        batch_size=batch_size,
        activation_fn=torch.nn.Identity(),
        show_progress_bar=False,
        convert_to_numpy=True,
        processing_kwargs=processing_kwargs,
    )
    # predict's preprocessing, with the prompt predict resolves; predict sorts the pairs by length
    # into its batches, but padding aside each row comes out the same.
    resolved = model._resolve_prompt(prompt, prompt_name)
    rows: list[list[int]] = []
    padded_left = padded_right = False
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        features = model.preprocess(batch, prompt=resolved, processing_kwargs=processing_kwargs)
        mask = features["attention_mask"].bool()
        rows += [ids[keep].tolist() for ids, keep in zip(features["input_ids"], mask, strict=True)]
        padded_left |= bool((~mask[:, 0]).any())
        padded_right |= bool((~mask[:, -1]).any())
    max_length = int(model.max_seq_length)
    tokenizer = model.tokenizer
    padding_side = "left" if padded_left else "right" if padded_right else tokenizer.padding_side
    return StReference(
        scores=scores.tolist(),
        inputs=[tokenizer.decode(row, skip_special_tokens=False) for row in rows],
        input_ids=rows,
        truncated=[len(row) >= max_length for row in rows],
        max_length=max_length,
        padding_side=padding_side,
    )


def load_cross_encoder(folder: Path, **kwargs: Any) -> Any:
    """``CrossEncoder(folder, **kwargs)`` offline on CPU, identity activation unless given."""
    import torch
    from sentence_transformers import CrossEncoder

    kwargs.setdefault("activation_fn", torch.nn.Identity())
    return CrossEncoder(str(folder), device="cpu", local_files_only=True, **kwargs)


def st_reference(
    folder: Path,
    pairs: Sequence[tuple[str, str]] = PAIRS,
    *,
    st_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> StReference:
    """What ``CrossEncoder(folder, **st_kwargs).predict(pairs, **options)`` does (the options of
    :func:`reference_of`)."""
    return reference_of(load_cross_encoder(folder, **(st_kwargs or {})), pairs, **options)


@dataclass(frozen=True)
class Documented:
    """A model card's scoring that sentence-transformers' default load does not do, rebuilt from
    sentence-transformers modules: a text-generation ``Transformer`` with ``template`` as its chat
    template (a prompt arrives as the system message) and ``LogitScore`` on the given tokens.
    ``card`` says what the model's own code does, and where it differs from this."""

    template: str
    true_token: str
    false_token: str | None
    card: str


def documented_reference(
    folder: Path,
    documented: Documented,
    pairs: Sequence[tuple[str, str]] = PAIRS,
    *,
    prompt: str | None = None,
) -> StReference:
    """The model card's scores for ``pairs``, computed by sentence-transformers modules."""
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.cross_encoder.modules import LogitScore

    transformer = Transformer(
        str(folder),
        transformer_task="text-generation",
        processor_kwargs={"chat_template": documented.template},
    )
    token_id = transformer.tokenizer.convert_tokens_to_ids
    false_id = None if documented.false_token is None else token_id(documented.false_token)
    head = LogitScore(token_id(documented.true_token), false_id)
    identity = torch.nn.Identity()
    model = CrossEncoder(modules=[transformer, head], activation_fn=identity, device="cpu")
    return reference_of(model, pairs, prompt=prompt)


@dataclass(frozen=True)
class Family:
    """One checkpoint of the kit and what sentence-transformers 6.3 does with it.

    ``parity``: crossrank must score it as :meth:`FamilyKit.reference` does, which is
    ``CrossEncoder(folder, **st_kwargs).predict(PAIRS, batch_size=..., processing_kwargs=...)``,
    or ``documented`` run through sentence-transformers. ``suffix``: the fixed tail every input of a
    templated family ends with, truncated or not. ``st_error``: the exception type and a part of its
    message that ``CrossEncoder(folder)`` (no options) or its ``predict`` raises.
    """

    name: str
    build: Callable[[Path], Path]
    mirrors: str
    st_note: str
    parity: bool = True
    st_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    processing_kwargs: dict[str, Any] | None = None
    suffix: str | None = None
    st_error: tuple[type[Exception], str] | None = None
    documented: Documented | None = None


ROLES_DROPPED = "cannot carry a 'query'/'document' pair"
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in [
        Family(
            "bert",
            build_bert,
            "cross-encoder/ms-marco-MiniLM-L6-v2",
            "sequence-classification Transformer, right padding",
        ),
        Family(
            "bert-2labels",
            lambda folder: build_bert(folder, num_labels=2, seed=1),
            "a 2-label BertForSequenceClassification (cross-encoder/nli-*, -seq conversions)",
            "sequence-classification Transformer; predict returns both logits of each pair",
        ),
        Family(
            "bert-default-prompt",
            build_bert_default_prompt,
            "a BERT cross-encoder saved by sentence-transformers 6.x with prompts and a default",
            "no chat template: the prompt is prepended to the query text of each pair",
        ),
        Family(
            "xlmr",
            build_xlmr,
            "BAAI/bge-reranker-v2-m3",
            "sequence-classification Transformer; max_length = min(tokenizer's, table size)",
        ),
        Family(
            "xlmr-short-positions",
            lambda folder: build_xlmr(folder, positions=64, tokenizer_max_length=8192, seed=5),
            "bge-reranker-v2-m3 with a position table (66) shorter than its tokenizer's 8192",
            "caps max_length at max_position_embeddings (66), forgetting RoBERTa's offset of 2, so "
            "predict indexes past the table; the reference passes max_length=64, the right cap",
            st_kwargs={"max_length": 64},
            st_error=(RuntimeError, "index 66 is out of bounds"),
        ),
        Family(
            "deberta",
            build_deberta,
            "mixedbread-ai/mxbai-rerank-xsmall-v1",
            "sequence-classification Transformer; token_type_ids fed, ignored by the model",
        ),
        Family(
            "modernbert",
            build_modernbert,
            "Alibaba-NLP/gte-reranker-modernbert-base",
            "sequence-classification Transformer; right-padded rows go through the local layer",
        ),
        Family(
            "electra",
            build_electra,
            "cross-encoder/ms-marco-electra-base",
            "sequence-classification Transformer",
        ),
        Family(
            "qwen3-seq-cls",
            build_qwen3_seq_cls,
            "cross-encoder-testing/Qwen3-Reranker-0.6B-seq-cls-STv6",
            "chat template with the prompt as its system message (default 'web_search'); right "
            "padding, the head reads the last non-pad token; truncation keeps the template's tail",
            suffix=QWEN3_SUFFIX,
        ),
        Family(
            "qwen3-seq-cls-no-pad",
            lambda folder: build_qwen3_seq_cls(folder, pad=False),
            "the seq-cls checkpoint with no pad token in its tokenizer or config",
            "predict raises the tokenizer's ValueError, even one pair at a time (it asks for "
            "padding); the reference scores each pair alone with padding=False",
            batch_size=1,
            processing_kwargs={"text": {"padding": False}},
            suffix=QWEN3_SUFFIX,
            st_error=(ValueError, "does not have a padding token"),
        ),
        Family(
            "qwen3-causal",
            build_qwen3_causal,
            "Qwen/Qwen3-Reranker-0.6B (its sentence-transformers 6.x files)",
            "Transformer(text-generation) + LogitScore(yes, no); default prompt 'query' as the "
            "system message; left padding; truncation keeps the template's tail",
            suffix=QWEN3_SUFFIX,
        ),
        Family(
            "qwen3-causal-old-paths",
            build_qwen3_causal_old_paths,
            "Qwen3-Reranker's 6.x files with modules.json naming older module paths",
            "resolves the old paths to the same Transformer and LogitScore",
            suffix=QWEN3_SUFFIX,
        ),
        Family(
            "zerank",
            build_zerank,
            "zeroentropy/zerank-2",
            "LogitScore(Yes) alone; add_generation_prompt from sentence_bert_config.json; the "
            "template ignores a prompt (system message)",
            suffix=ZERANK_SUFFIX,
        ),
        Family(
            "bge-gemma",
            build_bge_gemma,
            "BAAI/bge-reranker-v2-gemma",
            "no modules.json and a ForCausalLM: LogitScore(yes, no) on the plain pair "
            "'<bos>query<bos>document', not the card's 'Yes' logit and A:/B: prompt",
            suffix="\n" + BGE_GEMMA_PROMPT,
            documented=Documented(
                BGE_GEMMA_TEMPLATE,
                "Yes",
                None,
                "FlagEmbedding FlagLLMReranker: '<bos>A: {query}\\nB: {passage}\\n{prompt}', "
                "logit('Yes') at the last token, left padding; it cuts the query to 3/4 of "
                "max_length and the passage on its own, so its truncated rows can differ",
            ),
        ),
        Family(
            "mxbai-v2",
            build_mxbai_v2,
            "mixedbread-ai/mxbai-rerank-base-v2",
            "no modules.json and a ForCausalLM: LogitScore(yes, no) through the tokenizer's chat "
            "template, which drops the query/document roles: predict raises ValueError",
            suffix=MXBAI_SUFFIX,
            st_error=(ValueError, ROLES_DROPPED),
            documented=Documented(
                MXBAI_V2_TEMPLATE,
                "1",
                "0",
                "mxbai_rerank.MxbaiRerankV2: Qwen2.5's system turn, then 'query: {q}\\ndocument: "
                "{d}\\n' and its task prompt as the user turn, logit('1') - logit('0'), left "
                "padding to a multiple of 8; it cuts the query to 3/4 of max_length and the "
                "document on its own, so its truncated rows can differ",
            ),
        ),
        Family(
            "qwen3-reranker-original",
            build_qwen3_reranker_original,
            "Qwen/Qwen3-Reranker-0.6B downloaded before its sentence-transformers files",
            "LogitScore(yes, no) through the tokenizer's ordinary chat template, which drops the "
            "query/document roles: predict raises ValueError (sentence-transformers' own tests "
            "pass the reranker template in processor_kwargs, as the reference does)",
            suffix=QWEN3_SUFFIX,
            st_error=(ValueError, ROLES_DROPPED),
            documented=Documented(
                QWEN3_RERANKER_TEMPLATE,
                "yes",
                "no",
                "Qwen3-Reranker's card: its system prompt, <Instruct>/<Query>/<Document>, the "
                "assistant <think> block, logit('yes') - logit('no') at the last token (the card "
                "reports p(yes), the sigmoid of it), left padding",
            ),
        ),
        Family(
            "ettin",
            build_ettin,
            "cross-encoder/ettin-reranker-17m-v1",
            "Transformer(feature-extraction) -> Pooling(cls) -> Dense(GELU) -> LayerNorm -> "
            "Dense(scores); right padding",
        ),
        Family(
            "remote-code",
            build_remote_code,
            "Alibaba-NLP/gte-multilingual-reranker-base, jinaai/jina-reranker-v2-base-multilingual",
            "loads only with trust_remote_code=True, a ValueError naming it otherwise",
            st_kwargs={"trust_remote_code": True},
            st_error=(ValueError, "trust_remote_code=True"),
        ),
        Family(
            "remote-code-broken",
            lambda folder: build_remote_code(folder, broken=True),
            "jinaai/jina-reranker-v2-base-multilingual on transformers 5",
            "a ValueError asking for trust_remote_code; with it, the modeling file's import "
            "raises ImportError naming create_position_ids_from_input_ids",
            parity=False,
            st_error=(ValueError, "trust_remote_code=True"),
        ),
        Family(
            "bare-encoder",
            lambda folder: build_tiny_model(folder, head=False),
            "a bare BertModel (an embedding model's encoder)",
            "adds a BertForSequenceClassification head, newly random at every load",
            parity=False,
        ),
        Family(
            "t5",
            build_t5,
            "an encoder-decoder (T5ForConditionalGeneration)",
            "not a ForCausalLM, so T5ForSequenceClassification with a head random at every load",
            parity=False,
        ),
        Family(
            "unknown-module",
            build_unknown_module,
            "a cross-encoder whose modules.json names a module sentence-transformers lacks",
            "a ValueError asking for trust_remote_code; with it, ModuleNotFoundError",
            parity=False,
            st_error=(ValueError, UNKNOWN_MODULE_TYPE),
        ),
    ]
}
#: The families crossrank must score exactly as :meth:`FamilyKit.reference` does.
PARITY_FAMILIES = [name for name, family in FAMILIES.items() if family.parity]


class FamilyKit:
    """Builds each family's checkpoint under ``root`` on first use, and caches its references."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, Path] = {}
        self._references: dict[tuple[str, str | None, str | None], StReference] = {}

    def path(self, name: str) -> Path:
        """The folder of family ``name``'s checkpoint (built on the first call)."""
        if name not in self._built:
            self._built[name] = FAMILIES[name].build(self.root / name)
        return self._built[name]

    def reference(
        self, name: str, *, prompt: str | None = None, prompt_name: str | None = None
    ) -> StReference:
        """What crossrank must reproduce for :data:`PAIRS`, with ``prompt`` or ``prompt_name``."""
        family = FAMILIES[name]
        if not family.parity:
            raise ValueError(f"{name} fits no family; sentence-transformers: {family.st_note}")
        key = (name, prompt, prompt_name)
        if key not in self._references:
            if family.documented is not None:
                if prompt_name is not None:
                    raise ValueError(f"{name} saves no prompts; pass prompt= instead")
                reference = documented_reference(self.path(name), family.documented, prompt=prompt)
            else:
                reference = st_reference(
                    self.path(name),
                    st_kwargs=family.st_kwargs,
                    prompt=prompt,
                    prompt_name=prompt_name,
                    batch_size=family.batch_size,
                    processing_kwargs=family.processing_kwargs,
                )
            self._references[key] = reference
        return self._references[key]

    def st_default(self, name: str, **st_kwargs: Any) -> StReference:
        """What plain ``CrossEncoder(folder).predict(PAIRS)`` does (it may raise ``st_error``)."""
        return st_reference(self.path(name), st_kwargs=st_kwargs)
