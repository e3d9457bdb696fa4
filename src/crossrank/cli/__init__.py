"""The ``crossrank`` command: ``rerank``, ``eval``, ``bench``, ``calibrate``, ``serve``,
``train``.

Where things are:

- :mod:`crossrank.cli.command`: :func:`build_parser` registers every subcommand;
  :func:`main` runs one. The only module that imports the subcommands.
- The subcommands, each its flags (``register``) and a runner from parsed flags, apart from
  the work they call: :mod:`crossrank.cli.rerank`; :mod:`crossrank.eval.harness_cli`
  (``eval``), :mod:`crossrank.eval.bench_cli` (``bench``, ``bench --server``),
  :mod:`crossrank.eval.calibrate_cli` (``calibrate``); :mod:`crossrank.serve.cli`
  (``serve``, with :mod:`crossrank.serve.flags`); :mod:`crossrank.train.cli` (``train``).
- Below them all, what they share: :mod:`crossrank._cli` (the scorer's flags, argparse
  types, the parser classes, candidate files) and :mod:`crossrank._cli_checks` (exit codes,
  the error format, the checks made before anything loads). Nothing below imports this
  package.

The scorer's options (model, backend, device, batching, max length, activation and
calibration, long documents, loading) are declared once, by :func:`add_scorer_options`,
for every command that builds a :class:`crossrank.CrossEncoderScorer`;
:func:`scorer_kwargs` turns the parsed flags back into its keyword arguments.

Every subcommand shares one exit-code convention and one error format (see
:mod:`crossrank._cli_checks`), and these flags mean the same in each: ``-m/--model``,
``-o/--out`` (where the command writes its records or its JSON report), ``--quiet`` (no
progress bars, notes or warnings on stderr; errors still print), and ``-k/--top-k``
(``rerank``: keep the best K); the first-stage candidates per query of ``eval``,
``calibrate`` and ``bench`` are ``--candidates``. ``train`` names its model folder
``--output`` (it writes a folder, not records). Before any model is loaded, the command
checks the device, the backends' extras, the input file and every output path.
"""

from __future__ import annotations

from crossrank._cli.argtypes import fraction as fraction
from crossrank._cli.argtypes import positive_int
from crossrank._cli.candidates import read_candidates as read_candidates
from crossrank._cli.options import SCORER_FLAGS, add_scorer_options, scorer_kwargs
from crossrank.cli.command import build_parser as build_parser
from crossrank.cli.command import main

__all__ = ["SCORER_FLAGS", "add_scorer_options", "main", "positive_int", "scorer_kwargs"]
