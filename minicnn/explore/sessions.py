"""Per-tab state of the explorer: each browser tab is a session with its own inputs.

A page makes up a random session id when it loads and sends it with every request
(header ``X-Minicnn-Session``); the server keeps, per session, the last few inputs the tab
looked at. A webcam in one tab then replaces only that tab's inputs, never another's.

    store = Sessions()
    key = store.add("tab-1", inp)         # inp.key is the input's id
    store.get("tab-1", key)               # the Input, or InputGone if no longer kept

Bounds: ``per_session`` inputs per tab (the oldest dropped first), ``max_sessions`` tabs
(the one idle longest dropped first) and ``expiry`` seconds of idleness, so memory stays
bounded however many tabs come and go. A request for an input that is no longer kept
raises ``InputGone`` (HTTP 410): the page sends its image again and repeats the request.
"""
import re
import threading
import time
from collections import OrderedDict

__all__ = ["Sessions", "InputGone", "check_session", "PER_SESSION", "MAX_SESSIONS", "EXPIRY"]

PER_SESSION = 8          # inputs kept per tab
MAX_SESSIONS = 32        # tabs kept at once
EXPIRY = 30 * 60         # seconds a tab may stay idle before its inputs are dropped
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InputGone(LookupError):
    """The input a page refers to is no longer kept (evicted, expired, server restarted)."""


def check_session(sid):
    """A session id as the page sends it: 1 to 64 letters, digits, '-' or '_'."""
    if not isinstance(sid, str) or not _ID.fullmatch(sid):
        raise ValueError(f"session id {sid!r} is not valid: 1 to 64 letters, digits, '-' or '_'")
    return sid


class Sessions:
    """session id -> OrderedDict(input key -> Input), both in least-recently-used order."""

    def __init__(self, per_session=PER_SESSION, max_sessions=MAX_SESSIONS, expiry=EXPIRY,
                 clock=time.monotonic):
        self.per_session, self.max_sessions, self.expiry = per_session, max_sessions, expiry
        self.clock = clock
        self._tabs = OrderedDict()           # sid -> [last use, OrderedDict of inputs]
        self._lock = threading.Lock()

    def _expire(self):
        now = self.clock()
        for old in [s for s, (t, _) in self._tabs.items() if now - t > self.expiry]:
            del self._tabs[old]
        return now

    def _tab(self, sid):
        """The session's inputs, marked as just used; expired and surplus sessions dropped."""
        now = self._expire()
        entry = self._tabs.pop(sid, None) or [now, OrderedDict()]
        entry[0] = now
        self._tabs[sid] = entry
        while len(self._tabs) > self.max_sessions:
            self._tabs.popitem(last=False)
        return entry[1]

    def add(self, sid, inp):
        """Keep ``inp`` for session ``sid`` (dropping its oldest beyond ``per_session``)."""
        with self._lock:
            inputs = self._tab(check_session(sid))
            inputs[inp.key] = inp
            while len(inputs) > self.per_session:
                inputs.popitem(last=False)
        return inp.key

    def get(self, sid, key):
        with self._lock:
            inputs = self._tab(check_session(sid))
            if key not in inputs:
                raise InputGone(f"input {key!r} is no longer kept for this tab (each tab keeps "
                                f"its last {self.per_session} inputs for {self.expiry // 60} "
                                f"minutes); pick the image again")
            inputs.move_to_end(key)
            return inputs[key]

    def counts(self):
        """{session id: number of inputs kept} (for tests and the console)."""
        with self._lock:
            self._expire()
            return {s: len(inputs) for s, (_, inputs) in self._tabs.items()}
