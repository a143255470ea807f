"""The CLI's local commands and its error exits (no server needed)."""
from __future__ import annotations

from api.cli import main


def test_strategy_validate_reports_each_fault_with_its_path(tmp_path, capsys):
    doc = tmp_path / "s.yaml"
    doc.write_text("name: x\ninitial: call\nhandlers:\n  call:\n    type: call\n"
                   "    results: {busy: {action: retry, after: -5m, max: 3}, bogus_code: done}\n")
    assert main(["strategy", "validate", str(doc)]) == 2
    err = capsys.readouterr().err
    assert f"{doc}: handlers.call.results.busy.after:" in err
    assert "handlers.call.results.bogus_code" in err


def test_strategy_validate_accepts_the_demo_strategy(capsys):
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "pom_actors" / "examples" / "voice-notify.yaml"
    assert main(["strategy", "validate", str(demo)]) == 0
    assert "is valid" in capsys.readouterr().out


def test_missing_file_and_unreachable_gateway_exit_non_zero(tmp_path, capsys):
    assert main(["strategy", "validate", str(tmp_path / "none.yaml")]) == 2
    assert main(["--url", "http://127.0.0.1:9", "jobs", "list"]) == 1
    assert "cannot reach the gateway" in capsys.readouterr().err


def test_zone_commands_check_names_and_states_before_any_request(capsys):
    import pytest

    unreachable = ["--url", "http://127.0.0.1:9"]
    for argv, message in ((["zones", "create", "Bad Name"], "a zone name is 1-63 characters"),
                          (["zones", "set-state", "east", "sleeping"], "invalid choice: 'sleeping'"),
                          (["jobs", "create", "c", "--zone", "a:b"], "a zone name is 1-63 characters")):
        with pytest.raises(SystemExit) as exit_:
            main([*unreachable, *argv])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert main([*unreachable, "zones", "set-state", "east", "down"]) == 1      # valid: sent
    assert "cannot reach the gateway" in capsys.readouterr().err
