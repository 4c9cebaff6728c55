"""`python -m bench [writes reads live]`: run the benchmarks (all by default) on PostgreSQL +
Redis and write bench-results/<name>.json. Every number comes with a floor measured in the
same run; the ratios are what to compare between runs."""

import asyncio
import shutil
import sys

from bench import live, reads, writes
from bench.common import write_results

SUITES = {"writes": writes.run, "reads": reads.run, "live": live.run}


async def main(names: list[str]) -> None:
    for name in names or list(SUITES):
        print(f"== {name}")
        write_results(name, await SUITES[name]())


if __name__ == "__main__":
    unknown = set(sys.argv[1:]) - set(SUITES)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; choose from {sorted(SUITES)}")
    if shutil.which("wrk") is None:
        raise SystemExit("make bench needs wrk (Debian/Ubuntu: sudo apt-get install wrk)")
    asyncio.run(main(sys.argv[1:]))
