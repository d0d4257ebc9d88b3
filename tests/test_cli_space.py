import json

from hwnas.space.named import NAMED_ARCHS


def test_spaces_list_and_show(hwnas_cli):
    r = hwnas_cli("spaces", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["nas-bench-macro"]["archs"] == 6561
    assert rows["proxyless"]["layers"] == 21
    r = hwnas_cli("spaces", "show", "proxyless")
    assert r.returncode == 0 and "k7e6" in r.stdout and "112x112x16" in r.stdout


def test_arch_info_named_json(hwnas_cli):
    r = hwnas_cli("arch", "info", "proxyless-mobile", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["flops"] == 320427584 and d["params"] == 4080512
    assert [layer["op"] for layer in d["layers"]] == list(NAMED_ARCHS.create("proxyless-mobile").ops)


def one_line_error(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_bad_arch_inputs_give_one_line_errors(hwnas_cli, tmp_path):
    ops = list(NAMED_ARCHS.create("proxyless-mobile").ops)
    wrong_count = tmp_path / "short.json"
    wrong_count.write_text(json.dumps({"space": "proxyless", "ops": ops[:20]}))
    assert "has 20 layers" in one_line_error(hwnas_cli("arch", "info", str(wrong_count)))
    bad_op = tmp_path / "badop.json"
    bad_op.write_text(json.dumps({"space": "proxyless", "ops": ops[:3] + ["k4e3"] + ops[4:]}))
    assert "layer 3: op 'k4e3'" in one_line_error(hwnas_cli("arch", "info", str(bad_op)))
    malformed = tmp_path / "broken.json"
    malformed.write_text('{"space": "proxyless", "ops": [')
    assert "malformed JSON" in one_line_error(hwnas_cli("arch", "info", str(malformed)))
    assert "unknown arch" in one_line_error(hwnas_cli("arch", "info", "no-such-arch"))
    assert "unknown search space" in one_line_error(hwnas_cli("spaces", "show", "nope"))


def test_typer_exit_code_is_kept():
    import typer

    from hwnas.cli import app, run

    @app.command("exit-code-probe", hidden=True)
    def probe() -> None:
        raise typer.Exit(3)

    try:
        assert run(["exit-code-probe"]) == 3
        assert run(["spaces", "--json"]) == 0
    finally:
        app.registered_commands = [c for c in app.registered_commands if c.name != "exit-code-probe"]
