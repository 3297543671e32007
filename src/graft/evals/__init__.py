"""Eval suites and the regression gate (``graft eval``).

- ``suite``: the suite file format and ``load_suite`` (``graft eval from-feedback`` writes it);
- ``transcript``: what a case's turn did, folded from the events of ``run_turn``;
- ``checks``: one function per kind of check; ``judge``: model-graded checks;
- ``runner``: every case through ``run_turn``, the same path as a chat turn;
- ``report`` (table, JUnit XML, JSON) and ``html``: the reports;
- ``compare``: one suite on two models, and the gate's decision;
- ``bfcl``, ``bfcl_checker``, ``bfcl_data``: BFCL's tool-calling benchmark (``graft eval bfcl``).

Nothing is imported here: ``graft.evals.suite`` stays light for the code that only writes
or reads suites.
"""
