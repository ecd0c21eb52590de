"""Training: the LOSO splitter, the network, the metrics, the engines and the seed record.

- :mod:`~frreg.training.splits`: :class:`LeaveOneSourceOut` (fold order = sorted sources)
- :mod:`~frreg.training.network`: :class:`MLPConfig`, the network's shape (no torch)
- :mod:`~frreg.training.model`: the ``nn.Module`` of that shape
- :mod:`~frreg.training.settings`: :class:`TrainSettings`, :class:`FoldJob`, fold inputs
- :mod:`~frreg.training.metrics`: PLCC, SROCC, RMSE (``None`` when undefined)
- :mod:`~frreg.training.reference`: the straightforward loop (the oracle)
- :mod:`~frreg.training.batched`: every (seed, fold) model stepped together (the fast path)
- :mod:`~frreg.training.record`: :class:`SeedRecord`, the one shape of ``loso_seed{N}.json``
- :mod:`~frreg.training.loso`: :func:`run_loso` and the cache-key :func:`run_config`

Nothing here imports torch at package import time.
"""
