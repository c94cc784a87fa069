"""``python -m monitor.simulator``: run the simulator standalone (manual testing, demos)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from . import World, builtin_scenario, load_scenario, start_simulator


async def _serve(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario) if args.scenario else builtin_scenario(args.builtin)
    runner, url = await start_simulator(
        World(scenario), host=args.host, port=args.port, latency=args.latency
    )
    print(f"Graph API simulator listening on {url} (control API under {url}/_sim/)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monitor.simulator", description=__doc__)
    parser.add_argument("--scenario", type=Path, help="scenario YAML file")
    parser.add_argument("--builtin", default="demo", help="built-in scenario name (default demo)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per Graph call")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
