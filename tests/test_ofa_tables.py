"""Once-for-All's Samsung Galaxy Note10 tables: import (every key kind), what is dropped and why, the shipped tables."""

import json
from pathlib import Path

import pytest
import yaml

from hwnas.latency.importer import import_yaml_table
from hwnas.latency.table import LatencyTable
from hwnas.space import create_space

from .conftest import REPO

NOTE10 = REPO.parent / "shared" / "data" / "ofa_note10"  # the published files (see their README there)
RESOLUTIONS = list(range(160, 225, 4))
needs_data = pytest.mark.skipif(not NOTE10.is_dir(), reason="the OFA Note10 tables are not in ../shared/data")


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@needs_data
def test_all_17_files_import_every_entry_mapped(hwnas_cli, tmp_path):
    files = sorted(NOTE10.glob("*_lookup_table.yaml"))
    assert [int(f.name.split("_")[0]) for f in files] == RESOLUTIONS
    r = hwnas_cli("tables", "import", *map(str, files), "--device", "note10", "--backend", "tflite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("imported 96 entries (0 keys not in space 'ofa-mbv3')") == 17
    assert "dropped" not in r.stdout and "lacks" not in r.stderr
    for res in RESOLUTIONS:
        assert f"resolution {res} read off the stem key" in r.stdout
        t = LatencyTable.load(tmp_path / "latency_tables" / f"note10-ofa-mbv3-{res}-tflite.json", space="ofa-mbv3")
        space = create_space("ofa-mbv3", **t.space_args)
        assert space.resolution == res and len(t.entries) == 96
        src = _yaml(NOTE10 / f"{res}_lookup_table.yaml")
        assert sorted(e["source_key"] for e in t.entries.values()) == sorted(src)  # each source key used exactly once
        # every block of the space is in the table: the largest and the smallest arch predict
        for ops in (["k7e6"] * 20, ["k3e3", "k3e3", "id", "id"] * 5):
            suffix = ["", "_se", "_hs", "_se_hs", "_se_hs"]
            arch = space.arch([o if o == "id" else o + suffix[i // 4] for i, o in enumerate(ops)])
            assert t.predict(arch)[0] > 0


@needs_data
def test_import_never_replaces_an_existing_table_silently(hwnas_cli, tmp_path):
    """Importing onto an existing table (e.g. the shipped Note10 ones, whose provenance names the
    source and license) is refused, naming what would work; --force replaces it."""
    src = str(NOTE10 / "160_lookup_table.yaml")
    args = ("tables", "import", src, "--device", "note10", "--backend", "tflite")
    r = hwnas_cli(*args, "--license", "Apache-2.0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table = tmp_path / "latency_tables" / "note10-ofa-mbv3-160-tflite.json"
    before = table.read_bytes()
    r = hwnas_cli(*args, cwd=tmp_path)
    assert r.returncode != 0 and table.read_bytes() == before
    (line,) = [x for x in r.stderr.splitlines() if x.strip()]
    assert line.startswith("error: ") and "note10-ofa-mbv3-160-tflite.json' already exists" in line
    assert "--force" in line and "--device" in line
    r = hwnas_cli(*args, "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "license" not in LatencyTable.load(table, space="ofa-mbv3").protocol  # replaced


@needs_data
def test_each_key_kind_maps_to_its_block(tmp_path):
    """Stem, MBConv with/without SE, h-swish and residual, and the four head entries, with std as the spread."""
    src = _yaml(NOTE10 / "224_lookup_table.yaml")
    table, plan = import_yaml_table(NOTE10 / "224_lookup_table.yaml", device="note10", out=tmp_path / "t.json")
    assert plan.space.name == "ofa-mbv3" and plan.space.args == {} and plan.flavour == "ofa"
    by_source = {e["source_key"]: (k, e) for k, e in table.entries.items()}
    expect = {
        "Conv-input:224x224x3-output:112x112x24": "conv-in:224x224x3-out:112x112x24-k3-s2-hswish",
        # the fixed first block: expand 1 (24 middle channels), residual, ReLU, no SE
        "expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0":
            "mbconv-in:112x112x24-out:112x112x24-k3-e1-s1-se0-relu",
        # plain: no SE, ReLU, strided (no residual); expand 72 middle channels = ratio 3
        "expanded_conv-input:112x112x24-output:56x56x32-expand:72-kernel:7-stride:2-idskip:0-se:0-hs:0":
            "mbconv-in:112x112x24-out:56x56x32-k7-e3-s2-se0-relu",
        # SE with ReLU, residual
        "expanded_conv-input:28x28x48-output:28x28x48-expand:192-kernel:5-stride:1-idskip:1-se:1-hs:0":
            "mbconv-in:28x28x48-out:28x28x48-k5-e4-s1-se1-relu",
        # h-swish without SE, strided
        "expanded_conv-input:28x28x48-output:14x14x96-expand:288-kernel:3-stride:2-idskip:0-se:0-hs:1":
            "mbconv-in:28x28x48-out:14x14x96-k3-e6-s2-se0-hswish",
        # SE and h-swish, stride 1 without residual (the width changes)
        "expanded_conv-input:14x14x96-output:14x14x136-expand:576-kernel:7-stride:1-idskip:0-se:1-hs:1":
            "mbconv-in:14x14x96-out:14x14x136-k7-e6-s1-se1-hswish",
        # SE and h-swish with residual
        "expanded_conv-input:7x7x192-output:7x7x192-expand:768-kernel:3-stride:1-idskip:1-se:1-hs:1":
            "mbconv-in:7x7x192-out:7x7x192-k3-e4-s1-se1-hswish",
        "Conv_1-input:7x7x192-output:7x7x1152": "conv-in:7x7x192-out:7x7x1152-k1-s1-hswish",
        "AvgPool2D-input:7x7x1152-output:1x1x1152": "pool-in:7x7x1152",
        "Conv_2-input:1x1x1152-output:1x1x1536": "conv-in:1x1x1152-out:1x1x1536-k1-s1-hswish-nobn",
        "Logits-input:1x1x1536-output:1000": "pool_fc-in:1x1x1536-out:1000",
    }
    for source, ours in expect.items():
        key, e = by_source[source]
        assert key == ours
        assert e["median_ms"] == src[source]["mean"] and e["std_ms"] == src[source]["std"] and e["n"] == src[source]["count"]
        assert e["p90_ms"] == pytest.approx(src[source]["mean"] + 1.2816 * src[source]["std"])


@needs_data
def test_dropped_keys_are_listed_with_their_reason(hwnas_cli, tmp_path):
    src = _yaml(NOTE10 / "192_lookup_table.yaml")
    extra = {
        "expanded_conv-input:96x96x24-output:48x48x32-expand:144-kernel:9-stride:2-idskip:0-se:0-hs:0": "kernel:9 (the space has kernel:",
        "expanded_conv-input:48x48x32-output:48x48x32-expand:96-kernel:3-stride:1-idskip:1-se:1-hs:0": "se:1 (the space has se:0)",
        "expanded_conv-input:50x50x32-output:25x25x48-expand:96-kernel:3-stride:2-idskip:0-se:1-hs:0": "no expanded_conv block takes input 50x50x32",
        "Conv_3-input:1x1x1536-output:1x1x10": "the space has no Conv_3 block",
        "something else": "not a block key",
    }
    for k in extra:
        src[k] = {"count": 3, "mean": 1.0, "std": 0.1}
    f = tmp_path / "192_lookup_table.yaml"
    f.write_text(yaml.safe_dump(src))
    r = hwnas_cli("tables", "import", str(f), "--device", "x", "--out", str(tmp_path / "o.json"))
    assert r.returncode == 0, r.stderr
    assert "imported 96 entries (5 keys not in space 'ofa-mbv3')" in r.stdout
    assert "space 'ofa-mbv3' with resolution=192 (input 192)" in r.stdout
    lines = {ln.split(": ", 1)[0].replace("  dropped ", ""): ln for ln in r.stdout.splitlines() if ln.startswith("  dropped ")}
    assert set(lines) == set(extra)
    for k, reason in extra.items():
        assert reason in lines[k], lines[k]


@needs_data
def test_refusal_names_the_space_that_works(hwnas_cli, tmp_path):
    r = hwnas_cli("tables", "import", str(NOTE10 / "160_lookup_table.yaml"), "--device", "x", "--space", "proxyless",
                  "--out", str(tmp_path / "o.json"))
    assert r.returncode == 2 and r.stderr.startswith("error: ")
    assert "space 'ofa-mbv3' maps 96 of its 96 keys: use --space ofa-mbv3" in r.stderr
    assert not (tmp_path / "o.json").exists()
    other = tmp_path / "other.yaml"
    other.write_text("Conv-input:1x1x1-output:1x1x1:\n  count: 1\n  mean: 1.0\n  std: 0\n")
    r = hwnas_cli("tables", "import", str(other), "--device", "x", "--out", str(tmp_path / "o.json"))
    assert r.returncode == 2 and "not a ProxylessNAS or OFA MobileNetV3 table" in r.stderr


def test_shipped_note10_tables_are_a_device():
    """17 tables, one per resolution, with their fingerprint, provenance and the license notice beside them."""
    tables = sorted((REPO / "latency_tables").glob("note10-ofa-mbv3-*-tflite.json"))
    assert len(tables) == 17
    res = set()
    for p in tables:
        t = LatencyTable.load(p, space="ofa-mbv3")
        assert t.device["model"] == "Samsung Galaxy Note10" and t.device["runtime"] == "tflite" and t.device["name"] == "note10"
        assert "698a5c10b434172056a565b340c46ce11df18629" in t.protocol["source_url"] and t.protocol["license"].startswith("Apache-2.0")
        res.add(create_space("ofa-mbv3", **t.space_args).resolution)
        assert len(t.entries) == 96
    assert res == set(RESOLUTIONS)
    notice = (REPO / "latency_tables" / "NOTICE-ofa-note10.md").read_text()
    assert "Apache License" in notice and "698a5c10b434172056a565b340c46ce11df18629" in notice


def test_devices_lists_note10(hwnas_cli):
    r = hwnas_cli("devices", "--json")
    assert r.returncode == 0, r.stderr
    names = {p["name"]: p for p in json.loads(r.stdout)["profiles"]}
    assert "note10" in names and "Galaxy Note10" in names["note10"]["description"]


def test_arch_info_with_a_note10_table(hwnas_cli):
    r = hwnas_cli("arch", "info", "ofa-mbv3:" + "0" * 20, "--table", "latency_tables/note10-ofa-mbv3-160-tflite.json", "--json")
    assert r.returncode == 0, r.stderr
    lat = json.loads(r.stdout)["latency"]
    t = LatencyTable.load(REPO / "latency_tables" / "note10-ofa-mbv3-160-tflite.json")
    arch = create_space("ofa-mbv3", resolution=160).from_compact("0" * 20)
    assert lat["resolution"] == 160 and lat["predicted_ms"] == pytest.approx(t.predict(arch)[0])
    assert 5 < lat["predicted_ms"] < 100
