import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from pom_actors.core.strategy import (STANDARD_ATTRIBUTES, Strategy, StrategyError, parse_strategy,
                                      strategy_json_schema)

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = Path(__file__).resolve().parents[2] / "pom_actors" / "examples" / "voice-notify.yaml"


def base(**handlers) -> dict:
    return {"name": "t", "initial": next(iter(handlers)), "handlers": handlers}


def call(**results) -> dict:
    return {"type": "call", "results": results}


def sms(**results) -> dict:
    return {"type": "sms", "message": "Hi {first_name}", "results": results}


def faults(doc, attributes=None) -> dict[str, str]:
    with pytest.raises(StrategyError) as info:
        parse_strategy(doc, attributes)
    return {e["path"]: e["message"] for e in info.value.errors}


# --- accepted documents ---------------------------------------------------------------

def test_example_validates_and_matches_the_schema():
    text = EXAMPLE.read_text()
    s = parse_strategy(text, STANDARD_ATTRIBUTES)
    assert s.initial == "call" and set(s.handlers) == {"call", "sms"}
    c = s.handlers["call"]
    assert c.channel == "call" and c.addresses == ["phone1", "phone2"] and c.ring_timeout == 25
    assert c.results["busy"].otherwise.otherwise.action == "goto"
    assert c.results["busy"].otherwise.otherwise.handler == "sms"
    assert c.window.end == dt.time(20, 0)
    schema = json.loads((DOCS / "strategy.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(text), schema)


def test_published_schema_file_is_current():
    assert json.loads((DOCS / "strategy.schema.json").read_text()) == strategy_json_schema()
    jsonschema.Draft202012Validator.check_schema(strategy_json_schema())


def test_json_text_bytes_and_mapping_inputs_agree():
    doc = base(call=call(busy={"action": "retry", "after": 60, "max": 2}))
    from_json = parse_strategy(json.dumps(doc))
    assert parse_strategy(json.dumps(doc).encode()) == from_json
    assert parse_strategy(doc) == from_json
    assert parse_strategy(yaml.safe_dump(doc)) == from_json


def test_shorthand_forms():
    s = parse_strategy("""
name: short
initial: call
custom_codes: [callback_requested, {name: sale, final: true, human_contact: true}]
handlers:
  call:
    type: call
    window: {start: 9:00, end: 21:00}
    results:
      answer_human: done
      busy: retry 10m x3
      no_answer: goto text
      invalid_number: next_address
      window_restricted: wait_window
      callback_requested: {action: wait_until, at: 18:30}
      sale: done
  text:
    type: sms
    message: hello
""")
    r = s.handlers["call"].results
    assert r["answer_human"].action == "done"
    assert (r["busy"].action, r["busy"].after, r["busy"].max) == ("retry", 600, 3)
    assert (r["no_answer"].action, r["no_answer"].handler) == ("goto", "text")
    assert r["invalid_number"].action == "next_address" and r["window_restricted"].action == "wait_window"
    assert r["callback_requested"].at == dt.time(18, 30)
    # unquoted 9:00 / 21:00 are times, not YAML 1.1 base-60 integers
    assert (s.handlers["call"].window.start, s.handlers["call"].window.end) == (dt.time(9), dt.time(21))
    assert s.handlers["text"].addresses == ["phone1", "phone2"]
    book = s.codebook()
    assert book["sale"].final and not book["sale"].system and "callback_requested" in book


@pytest.mark.parametrize("text, seconds", [("45s", 45), ("30m", 1800), ("2h", 7200), ("1d", 86400),
                                           ("1h30m", 5400), ("600", 600), (90, 90), ("1.5h", 5400)])
def test_durations(text, seconds):
    s = parse_strategy(base(call=call(busy={"action": "retry", "after": text, "max": 1})))
    assert s.handlers["call"].results["busy"].after == seconds


def test_attributes_are_not_checked_when_unknown():
    s = parse_strategy(base(text={"type": "sms", "message": "{anything}", "addresses": ["mobile"]}))
    assert s.handlers["text"].addresses == ["mobile"]
    assert parse_strategy(base(text={"type": "sms", "message": "{nick}", "addresses": ["mobile"]}),
                          ["nick", "mobile"])


def test_a_loop_with_an_exit_is_accepted():
    parse_strategy(base(call=call(busy={"action": "retry", "after": "1h", "max": 3, "otherwise": "goto text"},
                                  default="done"),
                        text=sms(default={"action": "retry", "after": "1h", "max": 2}, sms_failed="goto call")))


# --- refused documents: every kind of fault, with its path ------------------------------

def test_unknown_handler_reference():
    got = faults(base(call=call(busy="goto nowhere", no_answer={"action": "retry", "after": 5, "max": 1,
                                                                 "otherwise": {"action": "goto", "handler": "x"}})))
    assert "unknown handler 'nowhere'" in got["handlers.call.results.busy.handler"]
    assert "unknown handler 'x'" in got["handlers.call.results.no_answer.otherwise.handler"]


def test_unknown_initial_handler():
    doc = base(call=call())
    doc["initial"] = "start"
    assert "unknown handler 'start'" in faults(doc)["initial"]


def test_goto_loop_without_exit():
    got = faults(base(a=call(default="goto b"), b=sms(default="goto a")))
    (path, message), = got.items()
    assert path == "handlers.a.results.default"
    assert "a -> b -> a" in message and "busy" in message


def test_self_goto_is_a_loop():
    got = faults(base(call=call(busy="goto call")))
    assert "call -> call" in got["handlers.call.results.busy"]


def test_loop_through_exhausted_retries_is_still_a_loop():
    got = faults(base(a=call(busy={"action": "retry", "after": 60, "max": 3, "otherwise": "goto b"}),
                      b=sms(busy={"action": "next_address", "otherwise": "goto a"})))
    assert "a -> b -> a never ends for code(s) busy" in got["handlers.a.results.busy.otherwise"]


@pytest.mark.parametrize("action, path, words", [
    ({"action": "retry", "after": -1, "max": 3}, "after", "between 0"),
    ({"action": "retry", "after": "31d", "max": 3}, "after", "30 days"),
    ({"action": "retry", "after": 60, "max": -1}, "max", "between 1 and 100"),
    ({"action": "retry", "after": 60, "max": 101}, "max", "between 1 and 100"),
    ({"action": "retry", "after": "soon", "max": 1}, "after", "not a duration"),
    ({"action": "retry", "max": 1}, "after", "required for action retry"),
    ({"action": "retry", "after": 60}, "max", "required for action retry"),
    ({"action": "goto"}, "handler", "required for action goto"),
    ({"action": "wait_until"}, "at", "required for action wait_until"),
    ({"action": "done", "after": 60}, "after", "not used by action done"),
    ({"action": "jump"}, "action", "Input should be"),
    ({"action": "done", "colour": "red"}, "colour", "Extra inputs"),
])
def test_bad_result_actions(action, path, words):
    got = faults(base(call=call(busy=action)))
    assert words in got[f"handlers.call.results.busy.{path}"]


def test_bad_shorthand():
    assert "not an action" in faults(base(call=call(busy="retry later")))["handlers.call.results.busy"]


def test_unknown_code():
    got = faults(base(call=call(bussy="done")))
    assert got == {"handlers.call.results.bussy": "unknown completion code 'bussy'"}


def test_custom_code_clash_and_custom_code_use():
    doc = base(call=call(sale="done"))
    doc["custom_codes"] = ["sale", "busy"]
    assert faults(doc) == {"custom_codes.1.name": "custom code 'busy' clashes with a system code"}


def test_template_naming_a_missing_attribute():
    doc = base(text={"type": "sms", "message": "Hi {first_name} {nick}"},
               mail={"type": "email", "message": "x", "subject": "For {title}"})
    got = faults(doc, ["account"])
    assert "nick" in got["handlers.text.message"] and "first_name" not in got["handlers.text.message"]
    assert "title" in got["handlers.mail.subject"]


def test_malformed_template_is_a_fault_even_without_attributes():
    assert "bad template" in faults(base(text={"type": "sms", "message": "Hi {first_name"}))["handlers.text.message"]


def test_address_faults():
    got = faults(base(c={"type": "call", "addresses": ["phone1", "phone1", "email", "mobile"]}), ["title"])
    assert "listed twice" in got["handlers.c.addresses.1"]
    assert "cannot use the email address" in got["handlers.c.addresses.2"]
    assert "unknown contact attribute 'mobile'" in got["handlers.c.addresses.3"]


def test_handler_shape_faults():
    got = faults(base(c={"type": "call", "ring_timeout": 10, "url": "http://x"},
                      s={"type": "sms"},
                      h={"type": "custom", "addresses": ["external_id"], "url": "ftp://x"},
                      f={"type": "fax"}))
    assert "between 15 and 120" in got["handlers.c.ring_timeout"]
    assert "only custom handlers have a url" in got["handlers.c.url"]
    assert "message is required" in got["handlers.s.message"]
    assert "http://" in got["handlers.h.url"]
    assert "Input should be" in got["handlers.f.type"]


def test_wait_window_needs_a_window():
    got = faults(base(c=call(window_restricted="wait_window")))
    assert "needs the handler to have a window" in got["handlers.c.results.window_restricted.action"]


def test_every_fault_is_reported_at_once():
    doc = {"name": "", "initial": "nowhere", "colour": 1, "handlers": {
        "a": {"type": "call", "ring_timeout": 5, "message": "{nick}",
              "results": {"busy": {"action": "retry", "after": -5, "max": 200}, "bogus": "done"}},
        "b": {"type": "sms", "addresses": ["phone1", "email"], "results": {"default": "goto zz"}}}}
    got = faults(doc, [])
    assert {"name", "colour", "initial", "handlers.a.ring_timeout", "handlers.a.message",
            "handlers.a.results.busy.after", "handlers.a.results.busy.max", "handlers.a.results.bogus",
            "handlers.b.message", "handlers.b.addresses.1", "handlers.b.results.default.handler"} <= set(got)
    with pytest.raises(StrategyError) as info:
        parse_strategy(doc, [])
    assert "handlers.a.results.busy.after:" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text, words", [("name: [", "not valid YAML"), ("{\"name\": ", "not valid JSON"),
                                         ("- a\n- b\n", "must be a mapping")])
def test_unreadable_documents(text, words):
    assert words in faults(text)[""]


def test_missing_top_level_fields():
    got = faults({"handlers": {}})
    assert {"name", "initial", "handlers"} <= set(got)


def test_strategy_model_forbids_extra_fields():
    assert isinstance(parse_strategy(base(call=call())), Strategy)
    assert "Extra inputs" in faults(base(call={"type": "call", "caller": "x"}))["handlers.call.caller"]


def test_a_stored_model_dump_parses_back_to_the_same_strategy():
    s = parse_strategy(EXAMPLE.read_text())
    assert parse_strategy(json.loads(json.dumps(s.model_dump(mode="json")))) == s
    assert parse_strategy(s.model_dump()) == s


def test_webhook_handler_templates_in_url_and_headers():
    hook = {"type": "custom", "addresses": ["external_id"], "url": "https://crm.example/{external_id}/{acct}",
            "headers": {"X-Name": "{first_name} {surname}"}, "message": "{\"id\": \"{external_id}\"}"}
    got = faults(base(hook=hook), ["acct"])
    assert set(got) == {"handlers.hook.headers.X-Name", "handlers.hook.message"}
    assert "surname" in got["handlers.hook.headers.X-Name"]
    hook["headers"] = {"X-Name": "{first_name}"}
    hook["message"] = '{{"id": "{external_id}"}}'
    s = parse_strategy(base(hook=hook), ["acct"])
    assert s.handlers["hook"].method == "POST" and s.handlers["hook"].channel == "custom"


# --- bounded size, work linear in it ------------------------------------------------------

def ring(n: int, close: bool, code: str = "default") -> dict:
    """n call handlers h0000 → h0001 → … by `goto` on `code`; the last one goes back to h0000
    when `close`, else it is done."""
    names = [f"h{i:04d}" for i in range(n)]
    last = f"goto {names[0]}" if close else "done"
    return {"name": "big", "initial": names[0], "handlers": {
        name: call(**{code: f"goto {names[i + 1]}" if i + 1 < n else last}) for i, name in enumerate(names)}}


@pytest.fixture
def steps(monkeypatch):
    """Counts the loop check's steps (one handler's successor for one code); past `budget` the
    check fails at once, so a check that grows with the square of the handlers fails fast."""
    from pom_actors.core import strategy

    seen = {"steps": 0, "budget": 0}
    real = strategy._Checker._long_run

    def counted(self, name, code):
        seen["steps"] += 1
        assert seen["steps"] <= seen["budget"], f"more than {seen['budget']} steps"
        return real(self, name, code)
    monkeypatch.setattr(strategy._Checker, "_long_run", counted)
    return seen


def test_a_chain_of_the_most_handlers_is_walked_once(steps):
    from pom_actors.core.strategy import MAX_HANDLERS

    steps["budget"] = MAX_HANDLERS                        # every code answers by `default`: one walk
    s = parse_strategy(ring(MAX_HANDLERS, close=False))
    assert len(s.handlers) == MAX_HANDLERS and steps["steps"] == MAX_HANDLERS


def test_a_cycle_through_the_most_handlers_is_one_fault_found_in_one_walk(steps):
    from pom_actors.core.strategy import MAX_HANDLERS

    steps["budget"] = MAX_HANDLERS
    (path, message), = faults(ring(MAX_HANDLERS, close=True)).items()
    assert path == "handlers.h0000.results.default"
    assert message.startswith("goto loop with no exit: h0000 -> h0001 -> ")
    assert f" h{MAX_HANDLERS - 1:04d} -> h0000 never ends" in message


def test_codes_named_in_results_take_one_walk_each(steps):
    from pom_actors.core.strategy import MAX_HANDLERS

    doc = ring(MAX_HANDLERS, close=True, code="busy")    # a cycle for busy alone
    last = f"h{MAX_HANDLERS - 1:04d}"                     # and one for no_answer, h0000 <-> last
    for name, results in ((n, h["results"]) for n, h in doc["handlers"].items()):
        results.update(no_answer="goto h0000" if name == last else f"goto {last}", default="done")
    steps["budget"] = 3 * MAX_HANDLERS                    # busy, no_answer and the rest (default)
    got = faults(doc)
    assert set(got) == {"handlers.h0000.results.busy", "handlers.h0000.results.no_answer"}
    assert got["handlers.h0000.results.no_answer"] == (f"goto loop with no exit: h0000 -> {last} -> h0000 "
                                                       "never ends for code(s) no_answer")
    assert 2 * MAX_HANDLERS <= steps["steps"] <= 3 * MAX_HANDLERS


def test_more_handlers_or_custom_codes_than_the_bound_are_refused_before_any_other_check(steps):
    from pom_actors.core.strategy import MAX_CUSTOM_CODES, MAX_HANDLERS

    doc = ring(MAX_HANDLERS + 1, close=True)
    doc["custom_codes"] = [f"c{i}" for i in range(MAX_CUSTOM_CODES + 1)]
    assert faults(doc) == {"handlers": f"at most {MAX_HANDLERS} handlers, not {MAX_HANDLERS + 1}",
                           "custom_codes": f"at most {MAX_CUSTOM_CODES} custom codes, not {MAX_CUSTOM_CODES + 1}"}
    assert steps["steps"] == 0
    steps["budget"] = 2 * MAX_CUSTOM_CODES                # one walk of the one handler per code
    doc = base(c=call(**{f"c{i}": "done" for i in range(MAX_CUSTOM_CODES)}))
    doc["custom_codes"] = [f"c{i}" for i in range(MAX_CUSTOM_CODES)]
    assert len(parse_strategy(doc).custom_codes) == MAX_CUSTOM_CODES


def test_texts_are_bounded_and_a_long_duration_is_refused_without_parsing_it():
    doc = base(c=call(busy={"action": "retry", "after": "1" * 100_000 + "x", "max": 1}))
    doc["name"], doc["description"] = "n" * 201, "d" * 10_001
    got = faults(doc)
    assert got["handlers.c.results.busy.after"] == "a duration is at most 64 characters"
    assert "at most 200 characters" in got["name"] and "at most 10000 characters" in got["description"]


def test_an_unknown_handler_fault_lists_at_most_20_known_ones():
    doc = ring(30, close=False)
    doc["handlers"]["h0000"]["results"]["busy"] = "goto nowhere"
    message = faults(doc)["handlers.h0000.results.busy.handler"]
    assert message == ("unknown handler 'nowhere'; known: "
                       + ", ".join(f"h{i:04d}" for i in range(20)) + " (+10 more)")
