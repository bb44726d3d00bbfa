"""Mailchimp audiences: adapter, webhooks and a local emulator (providers/mailchimp.md)."""

from adapters.mailchimp.adapter import MailchimpAdapter, create_adapter

__all__ = ["MailchimpAdapter", "create_adapter"]
