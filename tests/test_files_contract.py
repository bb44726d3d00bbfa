"""The shared adapter contract, run for the csv and jsonl file providers."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from adapter_contract import AdapterContract

from adapters.files import CsvAdapter, JsonlAdapter


def seed_csv(path: Path) -> Callable[[int], list[str]]:
    def seed(n: int) -> list[str]:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "first_name", "tags"])
            writer.writerows([f"contact{i}@example.com", f"First{i}", "a;b"] for i in range(n))
        return [f"contact{i}@example.com" for i in range(n)]

    return seed


def seed_jsonl(path: Path) -> Callable[[int], list[str]]:
    def seed(n: int) -> list[str]:
        rows = ({"email": f"Contact{i}@Example.com", "first_name": f"First{i}", "tags": ["a"]} for i in range(n))
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return [f"contact{i}@example.com" for i in range(n)]

    return seed


class TestCsvContract(AdapterContract):
    __test__ = True
    http = False

    @pytest.fixture
    def adapter(self, tmp_path: Path) -> CsvAdapter:
        return CsvAdapter(name="crm", path=tmp_path / "contacts.csv", page_size=self.page_size)

    @pytest.fixture
    def seed(self, tmp_path: Path) -> Callable[[int], list[str]]:
        return seed_csv(tmp_path / "contacts.csv")


class TestJsonlContract(AdapterContract):
    __test__ = True
    http = False

    @pytest.fixture
    def adapter(self, tmp_path: Path) -> JsonlAdapter:
        return JsonlAdapter(name="mail", path=tmp_path / "contacts.jsonl", page_size=self.page_size)

    @pytest.fixture
    def seed(self, tmp_path: Path) -> Callable[[int], list[str]]:
        return seed_jsonl(tmp_path / "contacts.jsonl")
