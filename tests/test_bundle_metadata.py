"""Every bundle's metadata.json tells the truth: its version is its newest changelog entry and the metrics it
lists are ones its evaluation computes."""

from __future__ import annotations

import json

import pytest

from mr2ct.bundle import load_config

from conftest import REPO

BUNDLES = sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/metadata.json"))


def _metadata(bundle: str) -> dict:
    return json.loads((REPO / "bundles" / bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))


def test_every_task_bundle_is_checked():
    assert set(BUNDLES) == {
        "gta_seg2video_cyclegan3d",
        "mmnist_color_cyclegan3d",
        "mrct_cyclegan3d",
        "vmnist_cyclegan3d",
    }


@pytest.mark.parametrize("bundle", BUNDLES)
def test_version_is_the_newest_changelog_entry(bundle):
    meta = _metadata(bundle)
    versions = list(meta["changelog"])
    assert meta["version"] == versions[0]

    def parse(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split("."))

    assert [parse(v) for v in versions] == sorted(map(parse, versions), reverse=True)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_listed_metrics_are_computed_by_the_evaluation(bundle):
    config = load_config(bundle, "evaluate")
    computed = {*config.get_parsed_content("key_metric"), *config.get_parsed_content("additional_metrics")}
    listed = set(_metadata(bundle)["eval_metrics"])
    assert listed <= computed, f"metadata.json lists metrics the evaluation does not compute: {listed - computed}"
    assert set(config.get_parsed_content("key_metric")) <= listed
