"""Publishing results: from the store to what a reader cites.

A run's numbers (:mod:`.summary`), leaderboard entries and their schema (:mod:`.entry`), the boards' Markdown and
HTML pages (:mod:`.render_markdown`, :mod:`.render_html`, :mod:`.coverage`), the published store committed
beside them (:mod:`.published_store`), ``qbench verify`` (:mod:`.verify`) and ``qbench.load_model``
(:mod:`.loading`). Builds on :mod:`qbench.running` and :mod:`qbench.contract`, never the other way round.
"""
