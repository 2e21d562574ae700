"""SRU: similarity shards + attention aggregation + extra deletion (SPEC sections 3-6)."""
from recbole_unlearn.unlearn.base import METHODS
from recbole_unlearn.unlearn.sisa import SISA


@METHODS.register("sru")
class SRU(SISA):
    """SRU (Xin et al., WSDM 2024): similarity (balanced k-means) shards, attention aggregation
    over shard centroids, and extra deletion (CED/NED/RED); forgetting retrains the owning
    shards, then the aggregator. Defaults in ``properties/method/sru.yaml``."""

    name = "sru"
