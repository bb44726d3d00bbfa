"""HubSpot: the adapter on the official SDK, its webhooks, and a local emulator."""

from adapters.hubspot.adapter import HubSpotAdapter, create_adapter

__all__ = ["HubSpotAdapter", "create_adapter"]
