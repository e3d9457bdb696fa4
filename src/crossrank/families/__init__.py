"""Model families: what a checkpoint is, how a (query, text) pair becomes its input, and
how its output becomes one relevance logit.

=====================  ==================================================================
module                 what it knows
=====================  ==================================================================
``source``             where the files come from (a folder or a Hub id), load errors
``checkpoint``         the files sentence-transformers saved (modules.json, prompts...)
``detect``             which family a checkpoint is (``family=`` overrides)
``loader``             loading a checkpoint as its family: net, template, encoder
``seq_cls``            sequence classification (BERT, XLM-R, DeBERTa, ModernBERT...)
``causal``             causal LMs scored by next-token logits; decoder classifiers
``st_modules``         sentence-transformers module pipelines (Pooling, Dense, LayerNorm)
``known``              the LLM rerankers known by name (Qwen3-Reranker, bge-reranker-gemma,
                       mxbai-rerank-v2): their templates and score tokens
``templates``          chat templates and format templates: a pair as one prompt
``prompts``            instructions and saved prompts: which one a call uses
``inputs``             pairs as token rows: truncation that keeps the template, windows
``limits``             ``max_length``: tokenizer, position table, sentence-transformers
``net``                the score net every family builds and every runtime runs
=====================  ==================================================================

Nothing here runs a backend: :mod:`crossrank.runtimes` does, on the score net.
"""

from crossrank.families.detect import FAMILIES, check_family
from crossrank.families.inputs import Encoder, PairEncoder, PairRows, TemplateEncoder
from crossrank.families.loader import FamilyOptions, LoadedFamily, load_family
from crossrank.families.net import ScoreNet

__all__ = [
    "FAMILIES",
    "Encoder",
    "FamilyOptions",
    "LoadedFamily",
    "PairEncoder",
    "PairRows",
    "ScoreNet",
    "TemplateEncoder",
    "check_family",
    "load_family",
]
