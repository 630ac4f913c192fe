"""Serve the pipeline as a scheduled deployment from this process (no work pool needed).

`python -m flows.serve` registers the `nightly` deployment with the Prefect server named by
PREFECT_API_URL (start one with `make prefect`) and runs its scheduled flow runs until stopped.
`prefect deploy --all` with prefect.yaml declares the same deployment for a work pool instead.
"""

from __future__ import annotations

import argparse

from flows.pipeline import pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cron", default="0 3 * * *", help="schedule (default: every day at 03:00)")
    parser.add_argument("--params", default="params.yaml", help="params file the runs read")
    args = parser.parse_args()
    pipeline.serve(name="nightly", cron=args.cron, parameters={"params_path": args.params})


if __name__ == "__main__":
    main()
