"""Model families: what a checkpoint is, how a (query, text) pair becomes its input, and
how its output becomes one relevance logit.

=====================  ==================================================================
module                 what it knows
=====================  ==================================================================
``source``             where the files come from (a folder or a Hub id), load errors
``loader``             which family a checkpoint is, and loading it as one
``seq_cls``            sequence classification (BERT, XLM-R, DeBERTa, ModernBERT...)
``inputs``             pairs as token rows: truncation, windows, the document's span
``limits``             ``max_length``: tokenizer, position table, sentence-transformers
``net``                the score net every family builds and every runtime runs
=====================  ==================================================================

Nothing here runs a backend: :mod:`crossrank.runtimes` does, on the score net.
"""

from crossrank.families.inputs import PairEncoder, PairRows
from crossrank.families.loader import LoadedFamily, load_family
from crossrank.families.net import ScoreNet

__all__ = ["LoadedFamily", "PairEncoder", "PairRows", "ScoreNet", "load_family"]
