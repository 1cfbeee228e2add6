"""SQLModel tables. Times are server Unix seconds (UTC); JSON documents are stored as text."""

from admin.models.alerts import AlertChannel, AlertDelivery, AlertEvent, AlertRule, AlertSilence, AlertState
from admin.models.audit import AuditEntry
from admin.models.history import HistoryBucket, HistoryRollup
from admin.models.install_links import InstallLink
from admin.models.messaging import Command, Delivery, Message
from admin.models.tables import ApiKey, ExpiredMachine, Machine, Organization, Sample, User
from admin.models.web_session import LoginFailure, WebSession

__all__ = [
    "AlertChannel",
    "AlertDelivery",
    "AlertEvent",
    "AlertRule",
    "AlertSilence",
    "AlertState",
    "ApiKey",
    "AuditEntry",
    "Command",
    "Delivery",
    "ExpiredMachine",
    "HistoryBucket",
    "HistoryRollup",
    "InstallLink",
    "LoginFailure",
    "Machine",
    "Message",
    "Organization",
    "Sample",
    "User",
    "WebSession",
]
