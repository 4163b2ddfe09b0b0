"""A loopr.yaml that is wrong: a 400 listing every problem at its path, and nothing written."""

from __future__ import annotations

from configfile.document import parse, read
from configfile.planning import revision, state
from configfile.scope import scope_for
from monitors.models import Monitor
from notifications.models import Channel
from tests.configfile.conftest import APPLY, PLAN, errors_of, plan, with_settings

GOOD_CHANNEL = """
channels:
  - slug: ops
    name: Ops
    kind: email
    target: ops@example.com
"""


def test_yaml_that_does_not_parse_is_named_with_its_line_and_column(api, user):
    errors = errors_of(plan(api, "monitors:\n  - slug: a\n    name: [unclosed\n"))
    assert list(errors) == ["(file)"]
    assert "line 4, column 1" in errors["(file)"]


def test_a_key_given_twice_is_refused(api, user):
    errors = errors_of(plan(api, "monitors:\n  - slug: a\n    slug: b\n"))
    assert "line 3, column 5" in errors["(file)"] and "'slug' is given twice" in errors["(file)"]


def test_unknown_keys_are_named_with_a_did_you_mean(api, user):
    errors = errors_of(plan(api, """
monitor: []
monitors:
  - slug: shop
    name: Shop
    url: https://shop.example/
    intervall: 60
"""))
    assert errors["monitor"] == "Unknown key 'monitor'. Did you mean 'monitors'?"
    assert errors["monitors[0].intervall"] == "Unknown key 'intervall'. Did you mean 'interval'?"


def test_duplicate_and_missing_slugs_are_named(api, user):
    errors = errors_of(plan(api, GOOD_CHANNEL + """
  - slug: ops
    name: Ops again
    kind: email
    target: ops2@example.com
  - name: No slug
    kind: email
    target: ops3@example.com
"""))
    assert errors["channels[1].slug"] == "Duplicate slug 'ops': also channels[0]."
    assert errors["channels[2].slug"].startswith("Required")


def test_every_invalid_value_is_named_at_its_path_in_one_answer(api, user):
    errors = errors_of(plan(api, GOOD_CHANNEL + """
monitors:
  - slug: fine
    name: Fine
    url: https://fine.example/
  - slug: bad
    name: Bad
    url: ftp://bad.example/
    channels: [ops, pager]
    escalation_policy: nobody
    assertions:
      - {source: status, op: equals, value: 200}
"""))
    assert "Unsupported scheme 'ftp'" in errors["monitors[1].url"]
    assert errors["monitors[1].channels"] == "No channel with the slug 'pager' (in this file or already there)."
    assert "escalation policy with the slug 'nobody'" in errors["monitors[1].escalation_policy"]
    assert errors["monitors[1].assertions[0].op"].startswith("unknown op 'equals'")
    # The plan wrote the valid objects before it found the bad one, and rolled all back.
    assert not Monitor.objects.exists() and not Channel.objects.exists()


def test_an_escalation_step_naming_an_unknown_channel_is_named(api, user):
    errors = errors_of(plan(api, GOOD_CHANNEL + """
escalation_policies:
  - slug: wake
    name: Wake
    steps: [{after_minutes: 0, channels: [ops]}, {after_minutes: 5, channels: [pager]}]
"""))
    assert errors == {"escalation_policies[0].steps[1].channels":
                      "No channel with the slug(s) 'pager' (in this file or already there)."}


def test_a_literal_secret_and_an_unset_variable_are_refused(api, user):
    text = """
channels:
  - slug: og1
    name: Opsgenie 1
    kind: opsgenie
    target: eu
    secret: the-actual-key
  - slug: og2
    name: Opsgenie 2
    kind: opsgenie
    target: eu
    secret: ${UNSET_KEY}
"""
    errors = errors_of(plan(api, text))
    assert errors["channels[0].secret"].startswith("A secret goes in the file only as a ${VARIABLE} reference")
    assert errors["channels[1].secret"] == "The variable UNSET_KEY is not set."


def test_an_apply_that_fails_half_way_writes_nothing(api, user):
    # Valid enough to get a revision for (computed as a plan would), invalid in its last object.
    text = GOOD_CHANNEL + """
monitors:
  - slug: fine
    name: Fine
    url: https://fine.example/
    channels: [ops]
  - slug: bad
    name: Bad
    url: https://bad.example/
    interval: 5
    timeout: 50
"""
    scope = scope_for(user)
    document = read(parse(text.encode()))
    answer = api.post(APPLY, with_settings(text, revision=revision(state(scope), document)),
                      content_type="application/yaml")
    assert "monitors[1].timeout" in errors_of(answer)
    assert not Channel.objects.exists() and not Monitor.objects.exists()


def test_a_team_is_refused_until_teams_exist(api, user):
    errors = errors_of(plan(api, GOOD_CHANNEL + "team: 7\n"))
    assert list(errors) == ["team"]


def test_a_body_that_is_not_a_mapping_is_refused(api, user):
    errors = errors_of(api.post(PLAN, "- just\n- a list\n", content_type="application/yaml"))
    assert list(errors) == ["(file)"]
    errors = errors_of(api.post(PLAN, b"{not json", content_type="application/json"))
    assert "line 1, column 2" in errors["(file)"]
    errors = errors_of(plan(api, "monitors: {slug: a}\n"))
    assert errors == {"monitors": "A list of objects."}
