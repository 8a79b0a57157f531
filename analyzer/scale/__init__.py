"""Scale out: one capture sharded by flow over local processes (`read --jobs N FILE`), and
many captures (or shards) as tasks on a Dask cluster (`read --scheduler ADDRESS`).

`shard.py` owns what a shard is (which connections it follows), how a shard's results are
keyed by when they were decided, and how the shards' results and totals are merged; `local.py`
runs shards in worker processes and streams their results back; `cluster.py` runs files and
shards as Dask tasks. The cross-attempt views that need attempts of several servers (proxy legs,
storms, redirect chains) are computed by the caller over the merged results, as for one process.
"""
