"""RecEraser: balanced partitions + two-sided attention aggregation (SPEC sections 4-6)."""
from recbole_unlearn.unlearn.base import METHODS
from recbole_unlearn.unlearn.sisa import SISA


@METHODS.register("receraser")
class RecEraser(SISA):
    """RecEraser (Chen et al., WWW 2022), adapted to sequences: balanced user/item/interaction
    partitions (InBP by default) and attention aggregation of sequence and item
    representations. Defaults in ``properties/method/receraser.yaml``."""

    name = "receraser"
