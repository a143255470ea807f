"""`pom lists import`, `pom imports` and `pom dnc` against a fake gateway (httpx.MockTransport
behind the real PomClient): what is sent, the progress followed to the end, the exit codes and
the one-line reasons."""
from __future__ import annotations

import json

import httpx
import pytest

from api import cli_lists
from api.cli import main, parser
from api.client import PomClient


class Gateway:
    """Answers by (method, path) with queued responses; records every request."""

    def __init__(self):
        self.requests: list[httpx.Request] = []
        self.answers: dict[tuple[str, str], list[tuple[int, object]]] = {}

    def on(self, method: str, path: str, *answers: tuple[int, object]) -> None:
        self.answers.setdefault((method, path), []).extend(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        queue = self.answers[(request.method, request.url.path)]
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(status, json=body)


def run(gateway: Gateway, *argv: str) -> int:
    client = PomClient("http://pom.test", token="pom_x")
    client.http = httpx.Client(base_url="http://pom.test", transport=httpx.MockTransport(gateway))
    return cli_lists.run(client, parser().parse_args(list(argv)))


def status(state: str, progress: float, **counts) -> dict:
    return {"id": 7, "state": state, "progress": progress, "message": counts.pop("message", None),
            **{k: counts.get(k, 0) for k in ("rows_read", "rows_loaded", "rows_rejected", "duplicates",
                                              "dnc_flagged")}}


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("id,phone,Plan\n1,+12125550101,gold\n2,+1212,silver\n")
    return path


def test_an_import_is_uploaded_with_its_options_and_followed_to_the_end(csv_file, capsys):
    gw = Gateway()
    gw.on("POST", "/api/v1/lists/3/imports", (202, {"id": 7, "state": "queued"}))
    gw.on("GET", "/api/v1/imports/7", (200, status("queued", 0.0)), (200, status("running", 0.5, rows_read=1)),
          (200, status("done", 1.0, rows_read=2, rows_loaded=1, rows_rejected=1)))
    assert run(gw, "lists", "import", str(csv_file), "--list", "3", "--map", "Plan=attributes.plan",
               "--region", "us", "--delimiter", ",", "--policy", "skip", "--poll", "0.01") == 0
    upload = gw.requests[0]
    body = upload.content.decode()
    assert 'name="file"; filename="contacts.csv"' in body and "1,+12125550101,gold" in body
    assert '{"Plan": "attributes.plan"}' in body and 'name="region"\r\n\r\nus' in body
    assert 'name="policy"\r\n\r\nskip' in body and "dedupe_key" not in body
    assert [r.url.path for r in gw.requests[1:]] == ["/api/v1/imports/7"] * 3
    out = capsys.readouterr().out.strip()
    assert out == ("import 7 done: 2 read, 1 loaded, 1 rejected, 0 duplicates, 0 DNC flagged "
                   "(pom imports rejects 7)")


@pytest.mark.parametrize("final,why", [
    (status("failed", 1.0, rows_read=2, rows_rejected=2, message="no valid row in the file"),
     "no valid row in the file"),
    (status("stopped", 0.2), "stopped by a command")])
def test_an_import_that_fails_or_is_stopped_exits_1_with_one_line(csv_file, capsys, final, why):
    gw = Gateway()
    gw.on("POST", "/api/v1/lists/3/imports", (202, {"id": 7, "state": "queued"}))
    gw.on("GET", "/api/v1/imports/7", (200, final))
    assert run(gw, "lists", "import", str(csv_file), "--list", "3") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pom: import 7 {final['state']}:") and err[0].endswith(why)


def test_a_refused_upload_exits_1_with_the_gateways_reason(csv_file, capsys):
    gw = Gateway()
    gw.on("POST", "/api/v1/dnc-lists/4/imports",
          (422, {"error": "invalid_file", "detail": "no column holds addresses", "errors": []}))
    assert run(gw, "dnc", "import", str(csv_file), "--list", "4", "--mode", "replace") == 1
    assert capsys.readouterr().err.strip() == "pom: HTTP 422: no column holds addresses"
    assert 'name="mode"\r\n\r\nreplace' in gw.requests[0].content.decode()


@pytest.mark.parametrize("argv,message", [
    (["--map", "Plan"], "--map 'Plan': expected COLUMN=FIELD"),
    (["--region", "USA"], "--region 'USA': a two-letter region"),
    (["--delimiter", ";;"], "--delimiter ';;': one character, or 'tab'")])
def test_bad_options_exit_2_before_any_request(csv_file, capsys, argv, message):
    gw = Gateway()
    assert run(gw, "lists", "import", str(csv_file), "--list", "3", *argv) == 2
    assert message in capsys.readouterr().err and gw.requests == []


def test_split_sends_the_splitter_and_a_bad_one_exits_2_naming_the_rule(csv_file, tmp_path, capsys):
    rules = {"rules": [{"when": "attr.Plan = 'gold'", "list_id": 4}], "default": 5}
    good, bad = tmp_path / "split.json", tmp_path / "bad.json"
    good.write_text(json.dumps(rules))
    bad.write_text(json.dumps({"rules": [{"when": "attr.Plan =", "list_id": 4}]}))
    gw = Gateway()
    gw.on("POST", "/api/v1/lists/3/imports", (202, {"id": 7, "state": "queued"}))
    assert run(gw, "lists", "import", str(csv_file), "--list", "3", "--split", str(good), "--no-wait") == 0
    assert f'name="splitter"\r\n\r\n{json.dumps(rules)}' in gw.requests[0].content.decode()
    gw = Gateway()
    assert run(gw, "lists", "import", str(csv_file), "--list", "3", "--split", str(bad)) == 2
    assert "rules[0].when" in capsys.readouterr().err and gw.requests == []
    assert run(gw, "lists", "import", str(csv_file), "--list", "3", "--split", str(tmp_path / "no.json")) == 2


def test_a_missing_file_exits_2_and_the_tab_delimiter_is_spelled_out(tmp_path, capsys, csv_file):
    assert main(["lists", "import", str(tmp_path / "none.csv"), "--list", "1"]) == 2
    assert "none.csv: no such file" in capsys.readouterr().err
    args = parser().parse_args(["lists", "import", str(csv_file), "--list", "1", "--delimiter", "tab"])
    assert cli_lists.import_options(args) == {"delimiter": "\t"}


def test_dnc_add_sends_a_file_of_addresses_in_bounded_batches(tmp_path, capsys):
    numbers = tmp_path / "dnc.txt"
    numbers.write_text("\n".join(f"+1212555{i:04d}" for i in range(9_000)) * 1 + "\n\n" +
                       "\n".join(f"+1718555{i:04d}" for i in range(9_000)))
    gw = Gateway()
    gw.on("POST", "/api/v1/dnc-lists/2/entries", (200, {"added": 10_000, "already": 0}),
          (200, {"added": 7_999, "already": 1}))
    assert run(gw, "dnc", "add", "2", "+44 20 7946 0000", "--file", str(numbers), "--region", "GB",
               "--contact", "5", "--json") == 0
    sent = [json.loads(r.content) for r in gw.requests]
    assert [len(b["addresses"]) for b in sent] == [10_000, 8_001]
    assert sent[0]["addresses"][0] == "+44 20 7946 0000" and sent[0]["region"] == "GB"
    assert [b["contact_ids"] for b in sent] == [[5], []]
    assert json.loads(capsys.readouterr().out) == {"list_id": 2, "added": 17_999, "already": 1}


def test_a_refused_batch_says_which_and_what_was_applied(capsys):
    gw = Gateway()
    gw.on("POST", "/api/v1/dnc-lists/2/entries",
          (422, {"error": "invalid", "detail": "1 fault", "errors": [{"path": "addresses.1", "message":
                                                                       "Value error, not a number"}]}))
    assert run(gw, "dnc", "add", "2", "+12125550100", "nope") == 1
    err = capsys.readouterr().err.strip()
    assert err == ("pom: HTTP 422: batch 1 of 1 refused (addresses 1…2; 0 applied before): "
                   "HTTP 422: addresses.1: Value error, not a number")
    assert run(gw, "dnc", "add", "2") == 2
    assert "no address given" in capsys.readouterr().err


def test_rejects_as_csv_to_a_file_and_dnc_reads(tmp_path, capsys):
    gw = Gateway()
    gw.on("GET", "/api/v1/imports/7/rejects",
          (200, {"rejects": [{"line": 2, "field": "phone1", "reason": "bad", "raw": ["=x"]}], "next": 2}),
          (200, {"rejects": [{"line": 5, "field": "email", "reason": "+bad", "raw": ["y", "z"]}], "next": None}))
    gw.on("POST", "/api/v1/dnc-lists/lookup", (200, {"campaign_id": 3, "results": []}))
    gw.on("PUT", "/api/v1/campaigns/3/dnc-lists/2", (200, {"attached": True, "changed": True}))
    out = tmp_path / "rejects.csv"
    assert run(gw, "imports", "rejects", "7", "--csv", "-o", str(out)) == 0     # every page, one header
    assert out.read_bytes() == b"line,field,reason,row\r\n2,phone1,bad,'=x\r\n5,email,'+bad,y,z\r\n"
    assert [r.url.params.get("after") for r in gw.requests] == [None, "2"]
    assert all(r.url.params["format"] == "json" for r in gw.requests)
    assert run(gw, "dnc", "lookup", "+12125550100", "--campaign", "3") == 0
    assert json.loads(gw.requests[2].content) == {"addresses": ["+12125550100"], "campaign_id": 3, "region": None}
    assert run(gw, "dnc", "attach", "2", "3") == 0


def test_rejects_are_a_table_the_json_with_json_or_the_csv_as_it_came(capsys):
    gw = Gateway()
    gw.on("GET", "/api/v1/imports/7/rejects", (200, {"rejects": [{"line": 3, "field": "phone1", "reason": "bad",
                                                                  "raw": ["B", "12"]}]}))
    assert run(gw, "imports", "rejects", "7") == 0
    out = capsys.readouterr().out
    assert "phone1" in out and "B, 12" in out
    assert run(gw, "imports", "rejects", "7", "--json") == 0
    assert json.loads(capsys.readouterr().out)["rejects"][0]["line"] == 3


def test_a_sql_import_sends_its_source_and_is_followed(tmp_path, capsys):
    source = tmp_path / "crm.json"
    source.write_text(json.dumps({"host": "db.example.com", "dbname": "crm", "query": "SELECT 1"}))
    gw = Gateway()
    gw.on("POST", "/api/v1/lists/3/imports", (202, {"id": 7, "state": "queued"}))
    gw.on("GET", "/api/v1/imports/7", (200, status("failed", 0.0, message="the query could not run: x")))
    assert run(gw, "lists", "import-sql", str(source), "--list", "3", "--map", "tier=attributes.tier",
               "--region", "gb", "--poll", "0.01") == 1
    assert json.loads(gw.requests[0].content) == {
        "source": {"postgres": {"host": "db.example.com", "dbname": "crm", "query": "SELECT 1"}},
        "mapping": {"tier": "attributes.tier"}, "region": "gb"}
    assert "the query could not run: x" in capsys.readouterr().err


def test_import_schedules_are_made_from_json_files(tmp_path, capsys):
    spec = tmp_path / "nightly.json"
    spec.write_text(json.dumps({"name": "nightly", "list_id": 3, "schedule": {"cron": "0 3 * * *"}}))
    gw = Gateway()
    gw.on("POST", "/api/v1/import-schedules", (201, {"id": 4, "name": "nightly"}))
    gw.on("PATCH", "/api/v1/import-schedules/4", (200, {"id": 4, "name": "nightly"}))
    gw.on("DELETE", "/api/v1/import-schedules/4", (204, None))
    assert run(gw, "imports", "schedules", "create", str(spec)) == 0
    assert json.loads(gw.requests[0].content)["schedule"] == {"cron": "0 3 * * *"}
    assert run(gw, "imports", "schedules", "update", "4", str(spec)) == 0
    assert gw.requests[1].method == "PATCH"
    assert run(gw, "imports", "schedules", "delete", "4") == 0
    spec.write_text("[1, 2]")
    assert run(gw, "imports", "schedules", "create", str(spec)) == 2
    assert "a JSON object is expected" in capsys.readouterr().err and len(gw.requests) == 3


def test_lists_are_changed_paged_and_deleted_and_a_contact_deleted(capsys):
    gw = Gateway()
    gw.on("PATCH", "/api/v1/lists/3", (200, {"id": 3, "name": "autumn", "contacts": 2}))
    gw.on("GET", "/api/v1/lists/3/contacts", (200, [{"id": 11, "external_id": "a"}]))
    gw.on("DELETE", "/api/v1/lists/3", (409, {"status": 409, "error": "conflict",
                                              "detail": "contact list 3 is used by campaign(s) spring"}))
    gw.on("DELETE", "/api/v1/contacts/11", (204, None))
    assert run(gw, "lists", "update", "3", "--name", "autumn", "--json") == 0
    assert json.loads(capsys.readouterr().out)["name"] == "autumn"
    assert json.loads(gw.requests[-1].content) == {"name": "autumn"}
    assert run(gw, "lists", "contacts", "3", "--after", "10", "--limit", "5") == 0
    assert "11" in capsys.readouterr().out                                  # a table
    assert dict(gw.requests[-1].url.params) == {"after": "10", "limit": "5"}
    assert run(gw, "lists", "delete", "3") == 1
    assert capsys.readouterr().err.strip() == "pom: HTTP 409: contact list 3 is used by campaign(s) spring"
    assert run(gw, "contacts", "delete", "11") == 0
    assert capsys.readouterr().err.strip() == "contact 11 deleted"


@pytest.mark.parametrize("argv, message", [
    (("lists", "update", "3"), "nothing to change"),
    (("lists", "contacts", "3", "--limit", "0"), "--limit from 1 to 1000"),
])
def test_list_commands_out_of_bounds_exit_2_before_any_request(capsys, argv, message):
    gw = Gateway()
    assert run(gw, *argv) == 2
    assert message in capsys.readouterr().err and gw.requests == []


def test_ids_out_of_range_are_refused_by_the_parser(capsys):
    for argv in (["lists", "show", str(2**31)], ["contacts", "show", "0"], ["lists", "delete", "x"]):
        with pytest.raises(SystemExit) as exited:
            parser().parse_args(argv)
        assert exited.value.code == 2
