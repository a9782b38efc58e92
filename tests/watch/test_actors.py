"""What the watcher hands its notifier: the country of an address, from the offline lookup."""

from __future__ import annotations


def test_notifications_name_the_country_of_an_address() -> None:
    from fraudwatch.notify.messages import who_text
    from fraudwatch.watch.actors import country_of

    assert country_of("8.8.8.8") == "US"
    assert country_of("192.0.2.1") is None  # documentation range: no country
    assert "US" in who_text("ip", "8.8.8.8", {}, country_of)
