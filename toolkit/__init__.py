"""demoforge's core: data model (``spec``, ``episode``), episode ``store`` and ``catalog``, format
converters (``formats``) and the ``demoforge`` command line (``cli``).

Nothing is imported here, so ``demoforge --help`` starts without loading numpy or zarr.
"""
