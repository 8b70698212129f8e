import getpass

from django.core.management.base import BaseCommand, CommandError

from core.roles import ROLES, RoleError, user_create


class Command(BaseCommand):
    help = "Create or update a user with a role (annotator, researcher or admin)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password", help="Password; prompted for when omitted (avoid it on shared shells)."
        )

    def handle(self, *args, username, role, email, password, **options):
        if password is None:
            password = getpass.getpass(f"Password for {username}: ")
        if not password:
            raise CommandError("--password: empty password; give one or type it at the prompt.")
        try:
            user = user_create(username=username, role=role, password=password, email=email)
        except RoleError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"User {user.username} is now a{'n' if role[0] in 'aeiou' else ''} {role}."
            )
        )
