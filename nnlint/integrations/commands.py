"""``nnlint report`` and ``nnlint run``: the subcommands about training runs.

    nnlint report runs/exp/events.jsonl [--plot out.png] [--format text|json]
    nnlint run [--mode warn|fix|raise] [--log-dir DIR] script.py [args ...]
    nnlint run [options] -m module [args ...]

``report`` needs no torch (it reads the event log); ``run`` imports torch.
"""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"nnlint: error: {message}\n")


def main(command: str, argv: Sequence[str]) -> int:
    if command == "report":
        return report(argv)
    if command == "run":
        from nnlint.integrations.run import run_command

        return run_command(argv)
    raise ValueError(command)


def report(argv: Sequence[str]) -> int:
    """Summarise an event log; exit 0 without findings, 1 with findings, 2 when the file is
    not a readable event log (or the plot cannot be drawn)."""
    parser = _Parser(prog="nnlint report",
                     description="Summarise a monitored run from its event log (a finished or crashed run).")
    parser.add_argument("events", metavar="EVENTS", help="the run's events.jsonl (or the folder holding it)")
    parser.add_argument("--plot", metavar="OUT", help="also draw the gradient-flow picture into OUT (.png, .svg, .pdf)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(list(argv))

    import json
    from pathlib import Path

    from nnlint.report.events import EventLogError, read_events, summary_json, write_summary

    path = Path(args.events)
    if path.is_dir():
        path = path / "events.jsonl"
    try:
        run = read_events(path)
    except EventLogError as error:
        print(f"nnlint: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    if args.format == "json":
        sys.stdout.write(json.dumps(summary_json(run), indent=2, default=str) + "\n")
    else:
        write_summary(run, sys.stdout)
    if args.plot:
        from nnlint.report.plot import PlotUnavailable, plot_run

        try:
            written = plot_run(run, args.plot)
        except PlotUnavailable as error:
            print(f"nnlint: error: {error}", file=sys.stderr)
            return EXIT_ERROR
        except (OSError, ValueError) as error:
            print(f"nnlint: error: cannot write the plot {args.plot}: {error}", file=sys.stderr)
            return EXIT_ERROR
        if args.format == "text":
            print(f"plot written to {written}")
    return EXIT_FINDINGS if run.findings else EXIT_OK
