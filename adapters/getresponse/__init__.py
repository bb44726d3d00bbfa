"""GetResponse campaigns (lists): adapter, webhooks and a local emulator (providers/getresponse.md)."""
