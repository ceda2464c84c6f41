"""Living inside solo-learn: finding, installing and extending the host. Importing this
package imports no solo-learn; the modules that need it import it inside their functions.

- :mod:`~cvr_solo.solo.env`: is a usable solo-learn installed? One message when not.
- :mod:`~cvr_solo.solo.install`: ``cvr-solo install-solo`` (the pinned GitHub commit).
- :mod:`~cvr_solo.solo.source`: where that source comes from (archive, checkout, download).
- :mod:`~cvr_solo.solo.registry`: cvr-solo's methods put into ``solo.methods.METHODS``.
- :mod:`~cvr_solo.solo.stem`: ``backbone.kwargs.small_stem`` for solo-learn's ResNets.
"""
