"""How long each table of an ibq lake takes to open from Python readers.

Usage: python3 scripts/open_tables.py LAKE

For every Delta table under LAKE it prints the median of three of:
- deltalake: DeltaTable(path) and its list of live files (what every reader does first);
- polars:    pl.scan_delta(path).collect_schema() (opens the table, reads no rows);
- duckdb:    a query of one row over the table, DuckDB reading the live files deltalake
             lists (DuckDB's own `delta` extension needs a download, not done here).
Figures in seconds. `ibq bench year` measures the same open for ibq itself (`open_s`).
"""

import os
import statistics
import sys
import time


def median_time(f, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(lake):
    import duckdb
    import polars as pl
    from deltalake import DeltaTable

    print(f"{'table':<28} {'deltalake':>10} {'polars':>10} {'duckdb':>10}  live files")
    for name in sorted(os.listdir(lake)):
        path = os.path.join(lake, name)
        if not os.path.isdir(os.path.join(path, "_delta_log")):
            continue
        t_delta = median_time(lambda: DeltaTable(path).file_uris())
        t_polars = median_time(lambda: pl.scan_delta(path).collect_schema())

        def duck():
            files = DeltaTable(path).file_uris()
            if files:
                duckdb.sql(
                    "SELECT * FROM read_parquet($files, hive_partitioning = true) LIMIT 1",
                    params={"files": files},
                ).fetchall()

        t_duck = median_time(duck)
        n = len(DeltaTable(path).file_uris())
        print(f"{name:<28} {t_delta:>10.3f} {t_polars:>10.3f} {t_duck:>10.3f}  {n}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
