"""Zoho CRM: adapter, OAuth token manager, notifications and emulator."""
