"""Running a plan: from plugin names to stored cells.

What a defense's run consists of (:mod:`.plan`, :mod:`.planning`, the leaderboard grid in :mod:`.grid`), the
runner and the units of work it hands an executor (:mod:`.runner`, :mod:`.tasks`, the executors), what a run
checks before it starts (:mod:`.preflight`), how per-example bits are scored (:mod:`.scoring`, the sanity
:mod:`.checks`), and the SQLite store that results are written to (:mod:`.store`). Imports only
:mod:`qbench.contract` and the shared top-level modules.
"""
