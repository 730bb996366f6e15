"""The user administration command line behind `scripts/users.py` and `scripts/create_user.py`.

Both (`vggt-users`, `vggt-create-user`) work on the service's database
(`serve_app.storage.location`: `--config`, `$VGGT_CONFIG`, `--database-url`),
upgrade it first, print one clear line per outcome, and exit with status 2
and one line, `<command>: <what is wrong>`, on bad input (taken username,
unknown user, empty password, a database that is not there, a bad option).
Only creating a user may create the database. `vggt-users delete USER`
deletes the user with their stored results (rows, then files, under the
config's storage root or `--storage-root`), sessions and login throttle
entries (`serve_app.storage.lifecycle`). A password left off the
command line is asked for (twice, on a terminal) or read as one line of
stdin, before the database is opened.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from datetime import datetime

from serve_app.cli import EXIT_BAD_INPUT, InputError, OneLineParser, report
from serve_app.config import AuthSettings
from serve_app.storage.location import LocationError, add_location_options, open_database, storage_settings
from serve_app.storage.results_admin import open_storage_root
from serve_app.storage.users import UserStore, UserStoreError

TRUE_WORDS = {"true", "1", "yes", "y", "t"}
FALSE_WORDS = {"false", "0", "no", "n", "f"}
USERS_PROG, CREATE_USER_PROG = "vggt-users", "vggt-create-user"
EXIT_INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C


def parse_flag(text: str) -> bool:
    """true/1/yes/y/t (any case) are True, false/0/no/n/f are False; anything else is an error."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false (or 1/0, yes/no, y/n, t/f), got {text!r}")


def parse_time(text: str) -> datetime:
    """An ISO date or date-time (`2027-01-31`, `2027-01-31T18:00`); naive means UTC."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        message = f"expected a date like 2027-01-31 or 2027-01-31T18:00, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def create_user_main(argv: Sequence[str] | None = None) -> int:
    """`create_user.py USERNAME [--vip]` (the password asked for), or the earlier deployments'
    `create_user.py USERNAME PASSWORD [is_vip]`."""
    parser = OneLineParser(
        prog=CREATE_USER_PROG, description="Create a user (the VIP flag is optional, default false)."
    )
    parser.add_argument("username")
    parser.add_argument("password", nargs="?", help="asked for when left out (keeps it out of ps and the history)")
    parser.add_argument("is_vip", nargs="?", type=parse_flag, help="after PASSWORD: true/1/yes/y/t for VIP")
    parser.add_argument("--vip", action="store_true", help="make the user VIP")
    add_location_options(parser)
    args = _parse(parser, argv)
    if args is None:
        return EXIT_BAD_INPUT
    if args.vip and args.is_vip is False:
        report(parser.prog, "--vip and an is_vip of false disagree")
        return EXIT_BAD_INPUT
    status = _read_missing_password(parser.prog, args)
    if status is not None:
        return status
    is_vip = args.vip or bool(args.is_vip)
    action = lambda users: _add(users, args.username, args.password, is_vip, None)  # noqa: E731
    return _run(parser.prog, args, action, create=True)


def users_main(argv: Sequence[str] | None = None) -> int:
    """`users.py {add,passwd,vip,disable,enable,list}`."""
    parser = OneLineParser(prog=USERS_PROG, description="Manage users of the reconstruction service.")
    add_location_options(parser, storage_root=True)
    commands = parser.add_subparsers(dest="command", required=True)

    add = commands.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("password", nargs="?", help="asked for when left out")
    add.add_argument("--vip", action="store_true", help="make the user VIP")
    add.add_argument("--vip-until", type=parse_time, help="VIP expiry (UTC); implies --vip")

    passwd = commands.add_parser("passwd", help="set a user's password")
    passwd.add_argument("username")
    passwd.add_argument("password", nargs="?", help="asked for when left out")

    vip = commands.add_parser("vip", help="grant or remove VIP")
    vip.add_argument("username")
    vip.add_argument("state", choices=["on", "off"])
    vip.add_argument("--until", type=parse_time, help="VIP expiry (UTC); without it VIP does not expire")

    for name, text in (("disable", "refuse the user's logins"), ("enable", "allow the user's logins again")):
        commands.add_parser(name, help=text).add_argument("username")
    commands.add_parser("list", help="show every user")
    commands.add_parser("delete", help="delete a user with their results, sessions and throttle entries").add_argument(
        "username"
    )

    args = _parse(parser, argv)
    if args is None:
        return EXIT_BAD_INPUT
    status = _read_missing_password(parser.prog, args)
    if status is not None:
        return status
    action = lambda users: _USER_COMMANDS[args.command](users, args)  # noqa: E731
    if args.command == "delete":
        try:
            args.root = open_storage_root(args)  # before the database: a wrong root deletes nothing
        except LocationError as error:
            report(parser.prog, str(error))
            return EXIT_BAD_INPUT
    return _run(parser.prog, args, action, create=args.command == "add")


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | None:
    """The parsed options; None after reporting bad ones in one line."""
    try:
        return parser.parse_args(argv)
    except InputError as error:
        report(parser.prog, str(error))
        return None


def _read_missing_password(prog: str, args: argparse.Namespace) -> int | None:
    """Fill in `args.password` when the command takes one and it was left out; the exit status
    after reporting a failure, else None."""
    if "password" not in args or args.password is not None:
        return None
    try:
        args.password = read_password()
    except InputError as error:
        report(prog, str(error))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        report(prog, "interrupted")
        return EXIT_INTERRUPTED
    return None


def read_password() -> str:
    """The password typed twice at a hidden prompt on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        try:
            password = getpass.getpass("password: ")
            if getpass.getpass("password (again): ") != password:
                raise InputError("the two passwords differ")
        except EOFError:
            raise InputError("no password given") from None
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InputError("password must not be empty")
    return password


def _run(prog: str, args: argparse.Namespace, action, *, create: bool) -> int:
    try:
        db = open_database(storage_settings(args).database_url, create=create)
    except LocationError as error:
        report(prog, str(error))
        return EXIT_BAD_INPUT
    try:
        action(UserStore(db, AuthSettings()))
    except UserStoreError as error:
        report(prog, str(error))
        return EXIT_BAD_INPUT
    finally:
        db.dispose()
    return 0


def _add(users: UserStore, username: str, password: str, is_vip: bool, until: datetime | None) -> None:
    info = users.create(username, password, is_vip=is_vip or until is not None, vip_expire_time=until)
    vip_text = "VIP" if info.is_vip else "not VIP"
    print(f"created user {info.username!r} (id {info.id}, {vip_text})")


def _cmd_add(users: UserStore, args: argparse.Namespace) -> None:
    _add(users, args.username, args.password, args.vip, args.vip_until)


def _cmd_passwd(users: UserStore, args: argparse.Namespace) -> None:
    users.set_password(args.username, args.password)
    print(f"password of {args.username!r} changed")


def _cmd_vip(users: UserStore, args: argparse.Namespace) -> None:
    users.set_vip(args.username, args.state == "on", args.until)
    if args.state == "off":
        print(f"{args.username!r} is no longer VIP")
    else:
        until = f"until {args.until.isoformat(sep=' ')}" if args.until else "without expiry"
        print(f"{args.username!r} is VIP {until}")


def _cmd_status(users: UserStore, args: argparse.Namespace) -> None:
    users.set_status(args.username, active=args.command == "enable")
    print(f"{args.username!r} {args.command}d")


def _cmd_list(users: UserStore, _args: argparse.Namespace) -> None:
    print(f"{'id':>5}  {'username':<24} {'status':<9} vip")
    for row in users.list():
        status = "active" if row["active"] else "disabled"
        print(f"{row['id']:>5}  {row['username']:<24} {status:<9} {_vip_text(row)}")


def _cmd_delete(users: UserStore, args: argparse.Namespace) -> None:
    deleted = users.delete(args.username, args.root)
    print(f"deleted user {args.username!r} with {len(deleted.hashes)} results ({len(deleted.files)} files)")


def _vip_text(row: dict) -> str:
    if not row["is_vip"]:
        return "no"
    expiry = row["vip_expire_time"]
    if expiry is None:
        return "yes"
    state = "yes" if row["vip_active"] else "expired"
    return f"{state} (until {expiry:%Y-%m-%d %H:%M} UTC)"


_USER_COMMANDS = {
    "add": _cmd_add,
    "passwd": _cmd_passwd,
    "vip": _cmd_vip,
    "disable": _cmd_status,
    "enable": _cmd_status,
    "list": _cmd_list,
    "delete": _cmd_delete,
}
