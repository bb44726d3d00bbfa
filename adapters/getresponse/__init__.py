"""GetResponse campaigns (lists): adapter, webhooks and a local emulator (providers/getresponse.md)."""

from adapters.getresponse.adapter import GetResponseAdapter, create_adapter

__all__ = ["GetResponseAdapter", "create_adapter"]
