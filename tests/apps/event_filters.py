"""filter_callable targets for the tests (``event_filters:screen``)."""


def screen(event):
    message = event.get("message", "")
    if "drop" in message:
        return None
    if "explode" in message:
        event["message"] = "changed before raising"
        raise RuntimeError("filter bug")
    event.setdefault("tags", {})["screened"] = "yes"
    return event
