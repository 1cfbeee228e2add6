"""The texts the person at the machine reads (tray menu, tooltip, notifications), in one catalogue.

English and French. The language comes from the config's `language` ("en", "fr"), else from the
OS locale (LC_ALL, LC_MESSAGES, LANG, LANGUAGE on Linux and macOS; the user's UI language on
Windows), else English. Log lines stay in English: they are for IT.

A new language is a new entry in CATALOGUE with the same keys (a test checks they match) and its
number format in PERCENT.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "status.ok": "OK",
        "status.warning": "Warning",
        "status.critical": "Critical",
        "status.unknown": "Unknown",
        "line.health": "Health: {status}, score {score}/100",
        "line.health_unknown": "Health: measuring…",
        "line.usage": "CPU {cpu} · RAM {ram} · Disk {disk}",
        "line.last_report": "Last report: {when}",
        "line.last_report_none": "Last report: none yet",
        "line.server_connected": "Server: connected",
        "line.server_unreachable": "Server: unreachable",
        "line.server_unknown": "Server: not contacted yet",
        "line.paused": "Paused: nothing is sent",
        "line.queued.one": "1 report waiting",
        "line.queued.many": "{count} reports waiting",
        "not_available": "n/a",
        "reason.cpu_percent": "Processor {value} busy",
        "reason.ram_percent": "Memory {value} used",
        "reason.disk_percent": "Disk {disk}: {value} full",
        "reason.score": "Overall score {score}/100",
        "reason.unavailable": "{metric} could not be read",
        "metric.cpu_percent": "Processor",
        "metric.ram_percent": "Memory",
        "metric.disk_percent": "Disk",
        "menu.summary": "Show health summary",
        "menu.open_dashboard": "Open dashboard",
        "menu.send_now": "Send now",
        "menu.pause": "Pause",
        "menu.resume": "Resume",
        "menu.open_logs": "Open log folder",
        "menu.quit": "Quit",
        "menu.messages": "Messages ({count})",
        "menu.message_show": "Show",
        "menu.message_acknowledge": "Acknowledge",
        "menu.message_acknowledged": "Acknowledged",
        "tooltip.ok": "DashFleet: this computer is OK",
        "tooltip.warning": "DashFleet: this computer needs attention",
        "tooltip.critical": "DashFleet: this computer has a serious problem",
        "tooltip.paused": "DashFleet: paused",
        "tooltip.unreachable": "DashFleet: not connected to the server",
        "summary.title": "DashFleet: {status}",
        "summary.title_unknown": "DashFleet",
        "warning.title.warning": "This computer needs attention",
        "warning.title.critical": "This computer has a serious problem",
        "advice.disk_percent": "Free up space: empty the recycle bin, delete or move large files you no longer need. "
        "If the disk stays full, call IT.",
        "advice.ram_percent": "Close the programs and browser tabs you are not using. "
        "If the computer stays slow, restart it.",
        "advice.cpu_percent": "A program keeps the processor busy. Close the programs you are not using; "
        "if it lasts, restart the computer or call IT.",
        "advice.score": "Close what you are not using. If it lasts, call IT.",
    },
    "fr": {
        "status.ok": "OK",
        "status.warning": "Attention",
        "status.critical": "Critique",
        "status.unknown": "Inconnue",
        "line.health": "Santé : {status}, score {score}/100",
        "line.health_unknown": "Santé : mesure en cours…",
        "line.usage": "Processeur {cpu} · Mémoire {ram} · Disque {disk}",
        "line.last_report": "Dernier envoi : {when}",
        "line.last_report_none": "Dernier envoi : aucun pour l’instant",
        "line.server_connected": "Serveur : connecté",
        "line.server_unreachable": "Serveur : injoignable",
        "line.server_unknown": "Serveur : pas encore contacté",
        "line.paused": "En pause : rien n’est envoyé",
        "line.queued.one": "1 rapport en attente",
        "line.queued.many": "{count} rapports en attente",
        "not_available": "n.d.",
        "reason.cpu_percent": "Processeur occupé à {value}",
        "reason.ram_percent": "Mémoire utilisée à {value}",
        "reason.disk_percent": "Disque {disk} : plein à {value}",
        "reason.score": "Score global {score}/100",
        "reason.unavailable": "{metric} : lecture impossible",
        "metric.cpu_percent": "Processeur",
        "metric.ram_percent": "Mémoire",
        "metric.disk_percent": "Disque",
        "menu.summary": "Afficher l’état de santé",
        "menu.open_dashboard": "Ouvrir le tableau de bord",
        "menu.send_now": "Envoyer maintenant",
        "menu.pause": "Mettre en pause",
        "menu.resume": "Reprendre",
        "menu.open_logs": "Ouvrir le dossier des journaux",
        "menu.quit": "Quitter",
        "menu.messages": "Messages ({count})",
        "menu.message_show": "Afficher",
        "menu.message_acknowledge": "Confirmer la lecture",
        "menu.message_acknowledged": "Lecture confirmée",
        "tooltip.ok": "DashFleet : cet ordinateur va bien",
        "tooltip.warning": "DashFleet : cet ordinateur demande votre attention",
        "tooltip.critical": "DashFleet : cet ordinateur a un problème sérieux",
        "tooltip.paused": "DashFleet : en pause",
        "tooltip.unreachable": "DashFleet : pas de connexion au serveur",
        "summary.title": "DashFleet : {status}",
        "summary.title_unknown": "DashFleet",
        "warning.title.warning": "Cet ordinateur demande votre attention",
        "warning.title.critical": "Cet ordinateur a un problème sérieux",
        "advice.disk_percent": "Libérez de la place : videz la corbeille, supprimez ou déplacez les gros fichiers "
        "dont vous n’avez plus besoin. Si le disque reste plein, appelez le service informatique.",
        "advice.ram_percent": "Fermez les programmes et les onglets du navigateur que vous n’utilisez pas. "
        "Si l’ordinateur reste lent, redémarrez-le.",
        "advice.cpu_percent": "Un programme occupe le processeur. Fermez les programmes que vous n’utilisez pas ; "
        "si cela dure, redémarrez l’ordinateur ou appelez le service informatique.",
        "advice.score": "Fermez ce que vous n’utilisez pas. Si cela dure, appelez le service informatique.",
    },
}
# How each language writes a percentage (French puts a non-breaking space before the sign).
PERCENT = {"en": "{value:.0f}%", "fr": "{value:.0f}\u00a0%"}


def _from_locale_name(name: str | None) -> str | None:
    """'fr_CA.UTF-8', 'fr-FR', 'French_France.1252' -> 'fr'; None when not one of LANGUAGES."""
    if not name:
        return None
    head = name.replace("-", "_").split("_")[0].split(".")[0].lower()
    if head in LANGUAGES:
        return head
    return {"english": "en", "french": "fr"}.get(head)


def os_language(environ: Mapping[str, str] | None = None) -> str:
    """The person's language from the OS, or English when it is not one we have."""
    environ = os.environ if environ is None else environ
    if sys.platform == "win32" and environ is os.environ:
        import ctypes  # the UI language, which the locale variables do not carry on Windows
        import locale

        lang_id = ctypes.windll.kernel32.GetUserDefaultUILanguage()  # type: ignore[attr-defined]
        return _from_locale_name(locale.windows_locale.get(lang_id)) or DEFAULT_LANGUAGE
    # POSIX order: LC_ALL wins over LC_MESSAGES over LANG; LANGUAGE is GNU's list of preferences.
    for key in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(key)
        if value:
            return _from_locale_name(value) or DEFAULT_LANGUAGE
    for choice in environ.get("LANGUAGE", "").split(":"):
        found = _from_locale_name(choice)
        if found:
            return found
    return DEFAULT_LANGUAGE


class Texts:
    """The catalogue in one language: texts("menu.quit"), texts.percent(95.0)."""

    def __init__(self, language: str | None = None) -> None:
        self.language = language if language in LANGUAGES else os_language()
        self._texts = CATALOGUE[self.language]

    def __call__(self, key: str, **values: object) -> str:
        text = self._texts.get(key) or CATALOGUE[DEFAULT_LANGUAGE][key]
        return text.format(**values) if values else text

    def percent(self, value: float) -> str:
        return PERCENT[self.language].format(value=value)
