"""Wiring a config into runtimes: adapters get what their mappings need."""

from __future__ import annotations

from connector.config import load_config
from connector.runtime import build_runtime


def test_hubspot_reads_the_properties_that_mapping_overrides_name(tmp_path):
    config = tmp_path / "crmsync.toml"
    config.write_text(
        '[providers.hubspot]\ntype = "hubspot"\naccess_token = "pat-na1-x"\nproperties = ["plan"]\n\n'
        '[mapping.hubspot.fields]\n"custom.score" = "properties.lead_score"\nindustry = "properties.sector"\n'
    )
    rt = build_runtime(load_config(config), "hubspot")
    asked = rt.adapter._properties  # the list every read asks HubSpot for
    assert {"plan", "lead_score", "sector", "email"} <= set(asked)
    assert rt.mapping.carries("custom.score")


def test_mailchimp_merge_fields_become_custom_fields(tmp_path):
    config = tmp_path / "crmsync.toml"
    config.write_text(
        '[providers.mc]\ntype = "mailchimp"\napi_key = "0123456789abcdef0123456789abcdef-us1"\nlist_id = "abc"\n'
        '[providers.mc.merge_fields]\nscore = "SCORE"\n'
    )
    rt = build_runtime(load_config(config), "mc")
    raw = {"email_address": "a@example.com", "status": "subscribed", "merge_fields": {"SCORE": "42"}}
    assert rt.mapping.to_canonical(raw)["custom.score"] == "42"
    assert rt.mapping.to_provider({"custom.score": "7"})["merge_fields"]["SCORE"] == "7"
