"""The side-by-side benchmark (``cvr-solo bench``): see :mod:`cvr_solo.bench.run`."""
