"""The error workflow: each error group is open, resolved or ignored, and a resolved group
whose error comes back in a later release reopens as a regression.

"Later" is by when the collector first saw each release (``service.version``) of the
service run, so releases named by any scheme (1.10 after 1.9, git hashes) are ordered as
they were deployed. Both stores run the SQL here (``?`` placeholders) and decide with
``reopens``.
"""
STATES = ("open", "resolved", "ignored")

#: A new state; ``regression`` kept only when a group is reopened by hand, and the release
#: of the latest event remembered when it is resolved (its events in that release, or an
#: earlier one, are the old code still running: they leave it resolved).
SET_STATE = """
    UPDATE error_groups SET state = ?, state_changed_ns = ?, regression = (regression AND ?),
        resolved_release = CASE WHEN ? THEN
            (SELECT release FROM error_events WHERE id = error_groups.latest_event_id) END
    WHERE id = ?
    RETURNING id, state, regression, state_changed_ns, resolved_release
"""
REOPEN = "UPDATE error_groups SET state = 'open', regression = true, state_changed_ns = ? WHERE id = ?"
RELEASE_FIRST_SEEN = "SELECT min(first_seen_ns) AS first_seen_ns FROM resources WHERE service = ? AND version = ?"


def state_parameters(group_id, state, now_ns):
    """``SET_STATE``'s parameters."""
    return (state, now_ns, state == "open", state == "resolved", int(group_id))


def reopens(state, state_changed_ns, resolved_release, error, first_seen):
    """Whether ``error`` (a ``model.ErrorEvent`` of a group in ``state``) makes it a regression.

    ``first_seen(release)`` is when the collector first saw a process of the error's
    service run ``release`` (``None``: not known, or no longer: retention forgot it).
    Without releases on either side nothing says the event is the old code: one that
    happened after the group was resolved reopens it.
    """
    if state != "resolved":
        return False
    release = error.release
    if release is None or release == resolved_release:
        return release is None and resolved_release is None and error.time_ns > (state_changed_ns or 0)
    if resolved_release is None:
        return True
    new, old = first_seen(release), first_seen(resolved_release)
    return new is None or old is None or new > old


def group_state(row):
    """A group's row with ``regression`` as a boolean (an integer in SQLite)."""
    if "regression" in row:
        row["regression"] = bool(row["regression"])
    return row
