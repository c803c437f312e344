"""Webhooks: a durable outbox of call events, delivered signed and in order per call."""

from voxline.webhooks.dispatcher import WebhookDispatcher, webhook_body, webhook_http_client
from voxline.webhooks.outbox import Outbox, OutboxEvent

__all__ = ["Outbox", "OutboxEvent", "WebhookDispatcher", "webhook_body", "webhook_http_client"]
