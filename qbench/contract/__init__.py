"""The contract: what a plugin implements and what it is handed.

The component base and its typed config; the dataset, model, defense and attack contracts; the context a
plugin call receives (seeded RNGs, progress, device); the board's readout; and the helpers a built-in
plugin uses exactly as a third-party one would (standard training, the ART bridge, circuit classifiers,
``qbench.contract.testing`` for a plugin's own tests). Nothing here imports the layers above it
(:mod:`qbench.running`, :mod:`qbench.publishing`).
"""
