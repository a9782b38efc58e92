"""Messages: the facts an on-call engineer needs, and attacker-controlled text escaped for each channel's markup."""

from __future__ import annotations

import html
import json
import zoneinfo

from fraudwatch.config.alerts import ChannelConfig
from fraudwatch.notify.channels import open_channel
from fraudwatch.notify.messages import alert_doc, digest_doc, facts, who_text
from fraudwatch.notify.render import Doc, Table, clean, data, render, render_body

from .conftest import HOSTILE, make_alert

UTC = zoneinfo.ZoneInfo("UTC")
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _doc(**kw: object) -> Doc:
    alert = make_alert(42, key="198.51.100.7|" + HOSTILE, **kw)  # type: ignore[arg-type]
    f = facts(alert, {42: "banned 198.51.100.7 until 2026-11-20 15:00 UTC"}, {}, lambda ip: "NL", 120)
    return alert_doc(f, "alert", SHANGHAI, 120)


def test_alert_message_says_what_who_done_how_much_since_and_the_command() -> None:
    text = render_body(_doc(), "text")
    assert "WARNING scanner-user-agent — a SIP scanner's User-Agent" in text
    assert "Who: IP 198.51.100.7 (NL) / <script>" in text
    assert "Done: banned 198.51.100.7 until 2026-11-20 15:00 UTC" in text
    assert "More: fraudwatch alerts show 42" in text
    assert "How much: 10 events" in text
    assert "user_agent: friendly-scanner" in text
    assert "Since: 2026-11-20 03:00:00 UTC (11:00:00 Asia/Shanghai)" in text
    # the attacker's newline does not make a line of its own
    assert "\nFAKE" not in text and "FAKE: line" in text


def test_html_escapes_attacker_text() -> None:
    body = render_body(_doc(), "html")
    assert "<script>" not in body
    assert html.escape("<script>alert(1)</script>") in body
    assert "&amp;amp;" in body  # a literal '&amp;' from the attacker stays literal


def test_markdown_escapes_every_markup_character() -> None:
    body = render_body(_doc(), "markdown")
    assert r"\<script\>" in body and r"\*bold\*" in body and r"\_x\_" in body and r"\`rm\`" in body
    assert r"\[link\](http://evil)" in body
    assert "**Who:** " in body and "scanner-user-agent" in body  # our own markup is kept, text stays readable


def test_slack_gets_literal_angle_brackets_and_ampersands() -> None:
    slack = open_channel(ChannelConfig("s", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#noc"), 5)
    assert slack.fmt == "markdown"
    _, body, _body_format = slack.message(_doc())
    assert slack.plugin is not None
    converted = slack.plugin._commonmark_to_slack(body)  # what apprise sends to Slack (mrkdwn)
    assert "<script>" not in converted and "&lt;script&gt;" in converted
    assert "&amp;amp;" in converted  # the attacker's literal '&amp;' is shown as such
    assert "<http://evil|" not in converted  # no link made from attacker text
    assert "*Who:* " in converted


def test_whatsapp_and_telegram() -> None:
    wa = open_channel(ChannelConfig("w", "whatsapp://abc123@12345/15551234567"), 5)
    assert wa.fmt == "whatsapp" and not wa.title_ok
    _, body, _ = wa.message(_doc())
    assert "*bold*" not in body and "\u200b*bold\u200b*" in body
    assert body.startswith("*[WARNING] scanner-user-agent")  # no separate title: it leads the body
    assert len(body) <= 1024
    tg = open_channel(ChannelConfig("t", "tgram://123456789:abcdefg_hijklmnop/12315544/"), 5)
    assert tg.fmt == "html"
    _, body, _ = tg.message(_doc())
    assert "<script>" not in body


def test_json_webhook_is_a_json_document_with_fields() -> None:
    hook = open_channel(ChannelConfig("h", "json://127.0.0.1:9/x"), 5)
    title, body, body_format = hook.message(_doc())
    doc = json.loads(body)
    assert body_format == "text" and title.startswith("[WARNING]")
    assert doc["rule"] == "scanner-user-agent" and doc["severity"] == "warning" and doc["id"] == 42
    assert doc["key"].startswith("198.51.100.7|<script>")
    assert doc["show"] == "fraudwatch alerts show 42"
    assert doc["done"].startswith("banned")
    assert doc["count"] == 10


def test_fields_and_bodies_are_capped() -> None:
    assert len(clean("x" * 10_000, 120)) == 120
    assert clean("a\x00b\x1b[31mc\u202ed", 50) == "a\ufffdb\ufffd[31mc\ufffdd"
    alert = make_alert(1, key="u" * 5000, key_type="account")
    f = facts(alert, {}, {}, None, 100)
    assert len(f["key"]) == 100 and len(f["who"]) <= 100
    rows = [dict(f, id=i, count=1000 - i) for i in range(50)]
    doc = digest_doc(rows, 1000, {"warning": 1000}, "digest", "scan", (f["first_seen"], f["last_seen"]), UTC, 100)
    body = render(doc, "whatsapp", 1024)
    assert len(body) <= 1024
    assert "more: fraudwatch alerts list" in body  # it says how many rows are not shown, and where to see them


def test_digest_table() -> None:
    alerts = [make_alert(i, count=i) for i in range(1, 31)]
    rows = sorted((facts(a, {}, {}, None, 120) for a in alerts), key=lambda r: -r["count"])[:10]
    doc = digest_doc(rows, 30, {"warning": 29, "critical": 1}, "digest", "scanner-user-agent",
                     (rows[0]["first_seen"], rows[0]["last_seen"]), UTC, 120)
    assert doc.title == "[CRITICAL] scanner-user-agent: 30 alert(s)"
    table = next(b for b in doc.blocks if isinstance(b, Table))
    assert len(table.rows) == 10 and table.more.startswith("… and 20 more")
    html_body = render_body(doc, "html")
    assert html_body.count("<tr>") == 11
    assert "1 critical, 29 warning" in render_body(doc, "text")


def test_who_text() -> None:
    assert who_text("account", "10023", {"10023": "ACME Ltd"}, None) == "account 10023 — ACME Ltd"
    assert who_text("ip", "192.0.2.1|1001", {}, lambda ip: None) == "IP 192.0.2.1 / 1001"
    assert who_text("global", "*", {}, None) == "switch-wide"

    def broken(ip: str) -> str:
        raise RuntimeError("lookup down")

    assert who_text("ip", "192.0.2.1", {}, broken) == "IP 192.0.2.1"


def test_data_segments_are_cleaned() -> None:
    assert data("a\nb", 10).text == "a\ufffdb"


def test_values_are_read_with_the_rule_type() -> None:
    from fraudwatch.notify.messages import value_label
    from fraudwatch.notify.notifier import load_rule_set
    from fraudwatch.notify.oneshot import replay_done

    rules = load_rule_set()
    assert value_label(rules["high-risk-spend-account"]).startswith("fee total {v} in ")
    assert value_label(rules["credential-stuffing-ip"]).startswith("peak {v} distinct username in ")
    assert value_label(rules["auth-failures-ip"]).startswith("peak {v} in ")
    assert value_label(rules["netfilter-drops-ip"]) == "{v}× its usual rate over 1m"
    assert value_label(object()) == "peak value {v}"
    spend = make_alert(3, rule="high-risk-spend-account", key_type="account", key="10020", count=9, value=45.05,
                       action="lock_account")
    f = facts(spend, replay_done([spend]), {"10020": "Crown Clinic LLP"}, None, 120,
              value_label(rules["high-risk-spend-account"]))
    text = render_body(alert_doc(f, "alert", UTC, 120), "text")
    assert "How much: 9 events, fee total 45.05 in 1h at the peak" in text
    assert "Who: account 10020 — Crown Clinic LLP" in text
    # a lock is never carried out (no VOS3000 integration yet): a replay does not say the watcher would lock it
    assert "Done: proposed: lock account 10020 — not carried out: fraudwatch does not lock accounts yet" in text
    assert replay_done([spend])[3] == "replay: nothing done (lock the account proposed; fraudwatch does not lock " \
        "accounts yet)"
