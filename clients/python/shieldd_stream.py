"""shieldd_stream: check a streaming chat reply with shieldd while it streams, and stop it when a
policy trips.

The pattern (docs/STREAMING.md): the client keeps the reply so far and, every `every` tokens,
sends the whole conversation again (the user's message and the reply so far) to
POST /v1/classify; the last check comes at the end of the reply. The requests are stateless, so
any instance behind a load balancer can answer; keeping a conversation on one instance lets the
daemon's prefix cache reuse everything it computed for the previous check, and each check then
costs only the new tokens and the policy suffixes (the reply's `usage.cached_tokens` says how
much was reused).

    import shieldd_client, shieldd_stream

    c = shieldd_client.Client("unix:/run/shieldd/shieldd.sock")
    guard = shieldd_stream.StreamGuard(c, user_text, every=32)
    for piece in guard.feed(shieldd_stream.openai_deltas(sse_lines)):
        send_to_user(piece)                    # only text that passed a check (or is pending)
    if guard.tripped:
        tell_user("the reply was stopped: " + ", ".join(guard.tripped))

`openai_deltas` reads an OpenAI chat-completions stream (`stream: true`): server-sent events
`data: {"choices":[{"delta":{"content":"..."}}]}` up to `data: [DONE]`; each chunk is counted
as one token, which is what OpenAI-compatible servers send. Stopping the iteration closes the
upstream stream (the generator's close()), so no more of the reply is generated or read.

Run as a script, it replays a recorded stream from a file (or stdin) and prints what it let
through and each check:

    python3 shieldd_stream.py --socket /run/shieldd/shieldd.sock --user "hi" stream.txt
"""
import argparse
import json
import sys

import shieldd_client

__all__ = ["StreamGuard", "openai_deltas"]


def openai_deltas(lines):
    """The content deltas of an OpenAI chat-completions event stream (an iterable of str or
    bytes lines). Stops at `data: [DONE]`; ignores comments, empty deltas and other events.
    Raises ValueError for a data line that is not JSON."""
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        line = line.rstrip("\r\n")
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise ValueError("stream: a data line is not JSON: %r" % data[:80]) from e
        for choice in doc.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                yield piece


class StreamGuard:
    """Checks a streaming reply every `every` chunks (and at its end) against `policies` (None:
    every enabled policy). After feed() finishes, `tripped` lists the policies that flagged
    the reply (empty: it passed), `checks` holds one ClassifyResult per check, and `reply` the
    text received (up to the check that tripped)."""

    def __init__(self, client, user_text, every=32, policies=None, timeout=None):
        if every < 1:
            raise ValueError("every must be >= 1")
        self.client = client
        self.user_text = user_text
        self.every = every
        self.policies = policies
        self.timeout = timeout
        self.reply = ""
        self.checks = []
        self.tripped = []

    def _check(self):
        r = self.client.classify(self.user_text, response=self.reply, policies=self.policies,
                                 timeout=self.timeout)
        self.checks.append(r)
        self.tripped = [s.policy for s in r.results if s.violation]
        return not self.tripped

    def feed(self, pieces):
        """Yield the pieces of `pieces` (an iterator of str) as they pass: each batch of
        `every` pieces is yielded after the check that covers it. On a violation the
        iteration stops at once and `pieces` is closed if it can be."""
        pending = []
        try:
            for piece in pieces:
                self.reply += piece
                pending.append(piece)
                if len(pending) == self.every:
                    if not self._check():
                        return
                    yield from pending
                    pending = []
            if pending or not self.checks:
                if not self._check():
                    return
                yield from pending
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Replay an OpenAI chat-completions stream "
                                 "through shieldd checks.")
    ap.add_argument("stream", nargs="?", default="-", help="recorded SSE lines (default: stdin)")
    ap.add_argument("--socket", help="shieldd Unix socket")
    ap.add_argument("--url", help="shieldd URL (http://host:port)")
    ap.add_argument("--user", required=True, help="the user's message the reply answers")
    ap.add_argument("--every", type=int, default=32, help="chunks between checks (32)")
    ap.add_argument("--policy", action="append", help="a policy (repeatable; default: all)")
    a = ap.parse_args(argv)
    endpoint = ("unix:" + a.socket) if a.socket else a.url
    client = shieldd_client.Client(endpoint)
    f = sys.stdin if a.stream == "-" else open(a.stream, encoding="utf-8")
    guard = StreamGuard(client, a.user, every=a.every, policies=a.policy)
    try:
        for piece in guard.feed(openai_deltas(f)):
            sys.stdout.write(piece)
        sys.stdout.write("\n")
    except (shieldd_client.ShielddError, ValueError) as e:
        print("shieldd_stream: %s" % e, file=sys.stderr)
        return 2
    finally:
        if f is not sys.stdin:
            f.close()
    for i, r in enumerate(guard.checks):
        print("check %d: flagged=%s prompt_tokens=%d computed_tokens=%d cached_tokens=%d"
              % (i + 1, r.flagged, r.prompt_tokens, r.computed_tokens, r.cached_tokens),
              file=sys.stderr)
    if guard.tripped:
        print("stopped: %s" % ", ".join(guard.tripped), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
