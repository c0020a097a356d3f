"""``brushlink watch``: arguments, wiring, signals, exit codes.

Exit codes (``--once``): 0 every input went to done/; 1 at least one went to failed/;
2 the server stayed unreachable (the inputs wait in the inbox) or the arguments were wrong.
Without ``--once`` it runs until Ctrl-C or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, Any

LOCK_FILE = ".brushlink-watch.lock"


def register(subparsers: Any) -> None:
    """``brushlink watch``: added to the command line through the ``brushlink.commands`` entry
    point, so the server's command line never imports this bridge."""
    parser = subparsers.add_parser(
        "watch",
        help="turn folders into recipes: drop files in, results come out",
        description="Watch INBOX: each subfolder holding a recipe.toml is a recipe; files dropped "
        "into it are processed and the results written to OUTBOX/<recipe>/.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inbox", type=Path, metavar="INBOX", help="folder of recipe folders")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="OUTBOX",
        help="where results go (default: a folder named outbox next to INBOX)",
    )
    parser.add_argument("--server", metavar="URL", help="server URL (default: this install's)")
    parser.add_argument("--token", help="server token (default: read from the install's home)")
    parser.add_argument("--home", type=Path, help="brushlink home holding the token")
    parser.add_argument(
        "--concurrency", type=int, default=2, metavar="N", help="jobs in flight (default 2)"
    )
    parser.add_argument(
        "--once", action="store_true", help="process what is there, wait for it, then exit"
    )
    parser.add_argument(
        "--init", action="store_true", help="write an example recipe of each kind into INBOX"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long a file must stay unchanged before it counts (default 2)",
    )
    parser.add_argument(
        "--rescan",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="full rescan interval, a safety net for missed events (default 10)",
    )
    parser.add_argument(
        "--server-wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="with --once: give up after the server was unreachable this long (default 120)",
    )


def _lock(inbox: Path) -> IO[bytes] | None:
    """One watcher per inbox: two would race for the same files. The lock dies with the process."""
    fh = open(inbox / LOCK_FILE, "a+b")  # noqa: SIM115 - held until the process exits
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; run one watcher per inbox by hand
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def _log(line: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {line}", flush=True)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `brushlink --help` does not load Pillow and watchdog.
    from .examples import write_examples
    from .process import Processor, Reservations
    from .runner import Runner
    from .watcher import HotFolder

    inbox: Path = args.inbox.expanduser().resolve()
    if args.init:
        inbox.mkdir(parents=True, exist_ok=True)
        for path in write_examples(inbox):
            _log(f"wrote    {path}")
        _log(f"recipes are in {inbox}; start watching with: brushlink watch {inbox}")
        return 0
    if not inbox.is_dir():
        print(f"error: {inbox} is not a folder (create it with --init)", file=sys.stderr)
        return 2
    outbox: Path = (args.out or inbox.parent / "outbox").expanduser().resolve()
    if outbox == inbox or inbox in outbox.parents:
        print("error: the outbox must not be inside the inbox", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return 2

    lock = _lock(inbox)
    if lock is None:
        print(f"error: another `brushlink watch` is already watching {inbox}", file=sys.stderr)
        return 2

    runner = Runner(
        args.server,
        args.token,
        home=args.home,
        log=_log,
        give_up_after=args.server_wait if args.once else None,
    )
    processor = Processor(outbox, runner, Reservations())
    folder = HotFolder(
        inbox,
        processor,
        concurrency=args.concurrency,
        settle_s=args.settle,
        rescan_s=args.rescan,
        log=_log,
        on_stopping=runner.stop_waiting,
        on_stop=runner.stop,
    )

    def stop(signum: int, _frame: object) -> None:
        if folder.stop_event.is_set():
            os._exit(130)  # asked twice: quit now; the journal makes that safe
        _log(f"stopping ({signal.Signals(signum).name}); once more to quit at once")
        folder.stop()  # jobs in flight get a grace period, then the runner stops

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
    _log(f"watching {inbox} -> {outbox} via {runner.url}" + (" (once)" if args.once else ""))
    try:
        summary = folder.run(once=args.once)
    finally:
        runner.stop()
    _log(summary.line())
    if summary.server_gone:
        return 2
    return 1 if args.once and (summary.failed or summary.errors) else 0
