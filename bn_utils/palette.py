"""The course's colours as plain hex strings: no matplotlib, so the norm registry (a core module) can
name a norm's colour without loading a plotting library. What each colour *means* is decided in two
places only: :mod:`bn_utils.norms` (one colour per norm) and :mod:`bn_utils.style` (the other roles:
reference lines, batch and running statistics, series that are not norms).
"""

from __future__ import annotations

__all__ = ["PALETTE", "EXTRA"]

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}

# Beyond Okabe & Ito's eight: colours of Paul Tol's schemes (also safe for colour-vision deficiencies;
# "muted" unless marked), a darker yellow that shows on white, and the greys of guides and outlines.
EXTRA = {
    "wine": "#882255",
    "dark_yellow": "#B8A000",
    "indigo": "#332288",
    "rose": "#CC6677",
    "dark_green": "#117733",
    "brown": "#8C564B",
    "olive": "#999933",
    "tol_purple": "#AA4499",
    "sand": "#DDCC77",
    "navy": "#222255",  # Tol's "dark" scheme
    "magenta": "#EE3377",  # Tol's "vibrant" scheme
    "dark_khaki": "#666633",  # Tol's "dark" scheme (his dark yellow)
    "salmon": "#EE8866",  # Tol's "light" scheme (his orange)
    "pear": "#BBCC33",  # Tol's "light" scheme
    "grey": "#777777",
    "dark_grey": "#333333",
    "light_grey": "#BBBBBB",
}
