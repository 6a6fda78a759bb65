"""What the project's command lines share: the one-line error parser, argument types, the exit
statuses and `guarded`, which turns bad input into one message and exit status 2.

Exit status: 0 done, 1 stopped by --fail-fast or an unexpected error, 2 bad input (one message on
stderr, no traceback unless --debug), 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from scenarios.loader import SHIPPED, ScenarioError
from world.config import MAX_SEED, NAME
from world.llm_config import LlmSetupError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where the help is, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_int(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_SEED}, got {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="print the traceback behind an error message")


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler, `kill`) stops the program as Ctrl-C does: what is finished is kept."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def scenario_path(name_or_path: str | Path) -> Path:
    """A file path as given, or the shipped scenario of that name ('rush_hour' -> scenarios/rush_hour.yaml)."""
    path = Path(name_or_path)
    shipped = SHIPPED / f"{name_or_path}.yaml"
    if not path.exists() and NAME.fullmatch(str(name_or_path)) and shipped.is_file():
        return shipped
    return path


def guarded(fn: Callable[..., int], *args: object, debug: bool = False) -> int:
    """Run a command: bad input ends with one message on stderr and exit status 2, never a traceback
    (unless `debug`); an unexpected error says what it was and how to see more, exit status 1."""
    interrupt_on_sigterm()
    try:
        return fn(*args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; free space or fix the permissions and run again",
              file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if isinstance(exc, _bad_input_errors()):
            if debug:
                traceback.print_exc()
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc}\nThis is a bug in aigcsim: run again with --debug "
              f"for the traceback and report it", file=sys.stderr)
        return EXIT_FAILED


def _bad_input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input (a scenario, a model file, weights): one message, exit status 2. An error
    class of a module that was never imported cannot have been raised, so only loaded modules are asked."""
    errors: list[type[Exception]] = [ScenarioError, LlmSetupError]
    for module, name in (("policies.ddpg", "NonFiniteError"), ("world.imagegen.model", "WeightsError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)
