"""run.py user: add an account or reset a password from the command line.

For the first administrator of a node set up without a browser, and for recovering
a forgotten administrator password on the machine itself.
"""

from __future__ import annotations

import getpass
import sys

from reviewapp.accounts import operations
from reviewapp.errors import ValidationFailed


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValidationFailed({"password_again": ["the two passwords differ"]})
    return first


def user(app, args) -> int:
    store = app.extensions["store"]
    who = f"cli:{getpass.getuser()}"
    method = app.config["PASSWORD_HASH_METHOD"]
    try:
        if args.user_command == "add":
            values = {
                "username": args.username,
                "display_name": args.name or args.username,
                "role": args.role,
            }
            operations.create_user(store, {**values, "password": _password(args)}, who, method)
            print(f"account {args.username.lower()} created ({args.role})")
        else:
            operations.update_user(store, args.username, {"password": _password(args)}, who, method)
            print(f"password of {args.username} reset; their open sessions are closed")
    except ValidationFailed as exc:
        for field, messages in exc.errors.items():
            print(f"error: {field}: {' '.join(messages)}", file=sys.stderr)
        return 2
    return 0
