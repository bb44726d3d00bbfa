"""ActiveCampaign: adapter, webhooks and a local emulator (providers/activecampaign.md)."""

from adapters.activecampaign.adapter import ActiveCampaignAdapter, create_adapter

__all__ = ["ActiveCampaignAdapter", "create_adapter"]
