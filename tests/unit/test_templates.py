import pytest

from pom_actors.core.templates import placeholders, render


def test_placeholders_and_escapes():
    assert placeholders("Hi {first_name} {last_name}, {{not_me}} {first_name}") == {"first_name", "last_name"}
    assert placeholders("no fields") == set()


def test_render_substitutes_and_keeps_escaped_braces():
    out = render("Hi {first_name}, owe {amount} {{EUR}}", {"first_name": "Ann", "amount": 12.5})
    assert out == "Hi Ann, owe 12.5 {EUR}"
    assert render("[{middle}]", {"middle": None}) == "[]"


def test_render_missing_attribute_names_it():
    with pytest.raises(KeyError) as info:
        render("Hi {first_name} {nickname}", {"first_name": "Ann"})
    assert info.value.args == ("nickname",)


@pytest.mark.parametrize("template", ["{a.__class__}", "{0}", "{}", "{a!r}", "{a:>10}", "{a[0]}", "oops {", "}"])
def test_only_bare_names_and_balanced_braces(template):
    with pytest.raises(ValueError):
        placeholders(template)
    with pytest.raises(ValueError):
        render(template, {"a": "x"})
