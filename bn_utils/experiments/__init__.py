"""One module per experiment of the course: run -> typed result -> plots -> explorer.

Each module owns everything one experiment needs beyond the shared core (models, training,
stacked training, checks, the house style in :mod:`bn_utils.style`), so adding a chapter adds a
module here and touches no other file of ``bn_utils`` except the norm registries
(:data:`bn_utils.models.NORM_LAYERS`, :data:`bn_utils.style.NORM_STYLES`). Import a module by
name, e.g. ``from bn_utils.experiments import batch_size``.
"""
