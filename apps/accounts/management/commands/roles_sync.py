"""Create the role groups and set their capabilities (also done automatically after ``migrate``)."""
from django.core.management.base import BaseCommand

from apps.accounts.services import roles_ensure


class Command(BaseCommand):
    help = "Create or update the operator, modeler, manager and admin groups and their permissions."

    def handle(self, *args, **options) -> None:
        for role, count in roles_ensure().items():
            self.stdout.write(f"{role}: {count} capabilities")
