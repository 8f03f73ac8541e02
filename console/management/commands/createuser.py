"""manage.py createuser NAME --role viewer|operator|admin (password: prompt, or
WAYMARK_NEW_USER_PASSWORD for scripts)."""

from __future__ import annotations

import getpass
import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

ROLES = ("viewer", "operator", "admin")


class Command(BaseCommand):
    help = "Create a console user with a role (viewer, operator or admin)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--role", choices=ROLES, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        name, role = options["name"], options["role"]
        if users.objects.filter(username=name).exists():
            raise CommandError(
                f"user {name!r} exists; change it in /admin/ or with `manage.py changepassword`"
            )
        password = os.environ.get("WAYMARK_NEW_USER_PASSWORD") or getpass.getpass(
            f"Password for {name}: "
        )
        user = users(
            username=users.normalize_username(name), is_staff=role == "admin", is_superuser=False
        )
        try:  # with the user, so a password resembling the name is refused too
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("password refused: " + " ".join(exc.messages)) from None
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=role))
        self.stdout.write(f"created {name} ({role})")
