"""What the profile checker costs per resource, in process CPU time (median of many runs).

    python -m bench.checker_speed [--runs 50]

Prints figures only; tests never assert timings (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from fhir_profiles.artifacts import us_core_profile_for
from fhir_profiles.checker import check, check_all

EXAMPLES = Path(__file__).resolve().parent.parent / "tests" / "profiles" / "data"


def median_ms(run: Any, runs: int) -> float:
    run()  # warm the caches
    timings = []
    for _ in range(runs):
        start = time.process_time()
        run()
        timings.append(time.process_time() - start)
    return statistics.median(timings) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"{'example':<45}{'one profile ms':>16}{'check_all ms':>14}")
    for path in sorted(EXAMPLES.glob("*.json")):
        resource: dict[str, Any] = json.loads(path.read_text())
        profile = us_core_profile_for(resource["resourceType"], "7.0.0")
        one = (
            median_ms(lambda r=resource, p=profile: check(r, p), args.runs)
            if profile
            else float("nan")
        )
        every = median_ms(lambda r=resource: check_all(r), args.runs)
        print(f"{path.name:<45}{one:>16.2f}{every:>14.2f}")


if __name__ == "__main__":
    main()
