"""ActiveCampaign: adapter, webhooks and a local emulator (providers/activecampaign.md)."""
