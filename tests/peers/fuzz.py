"""`make fuzz [FUZZ_EXAMPLES=n]`: schemathesis sends n generated operations per root field (as
the admin, so every mutation is reachable) to a real server on a throwaway PostgreSQL
database; the run fails on any answer that is not JSON or carries an internal error."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from bench.common import holdfast

HERE = Path(__file__).parent
SCHEMATHESIS = Path(".venv-fuzz/bin/schemathesis")


async def fuzz(examples: int) -> int:
    async with holdfast("fuzz") as server:
        environment = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "fuzz_hooks",
            "PYTHONPATH": str(HERE),
        }
        command = [
            str(SCHEMATHESIS),
            "run",
            f"{server.url}/graphql",
            "--header",
            f"Authorization: Bearer {server.api_token}",
            "--max-examples",
            str(examples),
            "--checks",
            "no_internal_server_error",
            "--continue-on-failure",
            "--phases",
            "fuzzing",
        ]
        returncode = subprocess.run(command, env=environment).returncode
        errors = [line for line in Path(server.log).read_text().splitlines() if "ERROR" in line]
        print(f"fuzz: server log has {len(errors)} error lines ({server.log})")
        return returncode or bool(errors)


if __name__ == "__main__":
    sys.exit(asyncio.run(fuzz(int(sys.argv[1]) if len(sys.argv) > 1 else 100)))
