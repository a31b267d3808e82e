"""One module per experiment of the course: run -> typed result -> plots -> explorer.

Each module owns everything one experiment needs beyond the shared core (models, training,
stacked training, checks, the house style in :mod:`bn_utils.style`), so adding a chapter adds a
module here and touches no other file of ``bn_utils`` except, for a new normalization, the norm
registry (:mod:`bn_utils.norms`). Import a module by
name, e.g. ``from bn_utils.experiments import batch_size``.
"""
