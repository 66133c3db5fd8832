"""Delivery channels: the log (always), SMTP email and a Slack-compatible webhook.

Configured from the environment at delivery time: ``AKITA_SMTP_HOST`` / ``AKITA_SMTP_PORT`` /
``AKITA_ALERT_FROM`` / ``AKITA_OPERATOR_EMAILS`` for email, ``AKITA_ALERT_WEBHOOK_URL`` for
the webhook.
"""

from __future__ import annotations

import logging
import os
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import requests

log = logging.getLogger("akita.alerts")


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def default_recipient(self) -> str: ...

    def send(self, recipient: str, subject: str, body: str) -> None: ...


@dataclass(frozen=True)
class LogChannel:
    name: str = "log"
    default_recipient: str = "akita.alerts"

    def send(self, recipient: str, subject: str, body: str) -> None:
        log.warning("%s — %s", subject, body)


@dataclass(frozen=True)
class EmailChannel:
    host: str
    port: int = 25
    sender: str = "akita-alerts@localhost"
    name: str = "email"
    default_recipient: str = ""

    def send(self, recipient: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, recipient, subject
        message.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.send_message(message)


@dataclass(frozen=True)
class WebhookChannel:
    url: str
    name: str = "webhook"
    default_recipient: str = "webhook"

    def send(self, recipient: str, subject: str, body: str) -> None:
        response = requests.post(self.url, json={"text": f"*{subject}*\n{body}"}, timeout=10)
        response.raise_for_status()


def configured_channels() -> list[Channel]:
    channels: list[Channel] = [LogChannel()]
    host = os.environ.get("AKITA_SMTP_HOST")
    if host:
        channels.append(EmailChannel(host=host, port=int(os.environ.get("AKITA_SMTP_PORT", "25")),
                                     sender=os.environ.get("AKITA_ALERT_FROM",
                                                           "akita-alerts@localhost")))
    url = os.environ.get("AKITA_ALERT_WEBHOOK_URL")
    if url:
        channels.append(WebhookChannel(url=url))
    return channels
