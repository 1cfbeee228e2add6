"""SQLModel tables. Times are server Unix seconds (UTC); JSON documents are stored as text."""

from admin.models.tables import ApiKey, ExpiredMachine, Machine, Organization, Sample, User

__all__ = ["ApiKey", "ExpiredMachine", "Machine", "Organization", "Sample", "User"]
