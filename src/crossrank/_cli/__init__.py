"""What every ``crossrank`` subcommand shares, below them all.

- :mod:`crossrank._cli.options`: the scorer's flags (:func:`add_scorer_options`,
  :func:`scorer_kwargs`, ``SCORER_FLAGS``), declared once for every command that builds a
  :class:`crossrank.CrossEncoderScorer`.
- :mod:`crossrank._cli.argtypes`: argparse types (``positive_int``, ``fraction`` ...).
- :mod:`crossrank._cli.parser`: the parser classes, the ``crossrank`` parser without its
  subcommands, and :func:`add_subcommand`.
- :mod:`crossrank._cli.candidates`: reading candidate files and writing JSON lines.

Exit codes, the error format and the checks made before loading anything are in
:mod:`crossrank._cli_checks`. The subcommands' modules (in :mod:`crossrank.cli`,
:mod:`crossrank.eval`, :mod:`crossrank.serve` and :mod:`crossrank.train`) import these;
:mod:`crossrank.cli` registers the subcommands. Nothing here imports a subcommand or
:mod:`crossrank.cli`, so no import runs back up (``tests/test_core_modules.py`` checks it).
"""
