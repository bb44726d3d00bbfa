"""Mailchimp audiences: adapter, webhooks and a local emulator."""
