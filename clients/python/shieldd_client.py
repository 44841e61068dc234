"""shieldd_client: a dependency-free Python client for shieldd's HTTP API.

    from shieldd_client import Client

    c = Client("unix:/run/shieldd/shieldd.sock")        # or "http://127.0.0.1:8088"
    r = c.classify("some user text", policies=["hate"])
    print(r.flagged, [(s.policy, s.probability) for s in r.results])

The endpoint defaults to $SHIELDD_SOCKET, then $SHIELDD_URL, then the standard socket
/run/shieldd/shieldd.sock. Every call has a timeout (seconds). Failures raise:

    ShielddError            the base class
      ConnectError          the daemon cannot be reached
      TimeoutError_         no answer in time (also a subclass of the builtin TimeoutError)
      ProtocolError         the reply is not the HTTP/JSON the API promises
      APIError              the daemon answered 4xx/5xx; .status, .type, .message as it wrote
                            them; .retry_after for 503
"""
import dataclasses
import http.client
import json
import os
import socket
import typing
import urllib.parse

__all__ = ["Client", "ShielddError", "ConnectError", "TimeoutError_", "ProtocolError",
           "APIError", "PolicyScore", "ClassifyResult", "Moderation", "Policy", "Health",
           "default_endpoint"]

DEFAULT_SOCKET = "/run/shieldd/shieldd.sock"


class ShielddError(Exception):
    """Any failure of a shieldd client call."""


class ConnectError(ShielddError):
    """The daemon could not be reached."""


class TimeoutError_(ShielddError, TimeoutError):
    """The daemon did not answer in time."""


class ProtocolError(ShielddError):
    """The reply is not what the API promises."""


class APIError(ShielddError):
    """The daemon answered with an error status and its {"error": {...}} body."""

    def __init__(self, status, type_, message, retry_after=None):
        super().__init__("HTTP %d (%s): %s" % (status, type_, message))
        self.status = status
        self.type = type_
        self.message = message
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class PolicyScore:
    policy: str
    probability: float
    violation: bool
    threshold: float


@dataclasses.dataclass(frozen=True)
class ClassifyResult:
    model: typing.Optional[str]
    results: typing.List[PolicyScore]
    flagged: bool
    prompt_tokens: int
    truncated: bool = False
    # What the request cost: tokens run through the model, and tokens of the shared prefix
    # reused from earlier requests. They depend on what the daemon had cached, not on the
    # result, so equality ignores them.
    computed_tokens: int = dataclasses.field(default=0, compare=False)
    cached_tokens: int = dataclasses.field(default=0, compare=False)

    def score(self, policy):
        """The PolicyScore of `policy` (KeyError if it was not evaluated)."""
        for s in self.results:
            if s.policy == policy:
                return s
        raise KeyError(policy)


@dataclasses.dataclass(frozen=True)
class Moderation:
    """One result of POST /v1/moderations (the OpenAI shape)."""
    flagged: bool
    categories: typing.Dict[str, bool]
    category_scores: typing.Dict[str, float]


@dataclasses.dataclass(frozen=True)
class Policy:
    name: str
    title: typing.Optional[str]
    description: typing.Optional[str]
    threshold: float
    enabled: bool


@dataclasses.dataclass(frozen=True)
class Health:
    alive: bool
    ready: bool
    model: typing.Optional[str]
    policies: typing.Optional[int]
    message: typing.Optional[str] = None


def default_endpoint():
    """$SHIELDD_SOCKET (as unix:PATH), else $SHIELDD_URL, else the standard socket."""
    s = os.environ.get("SHIELDD_SOCKET")
    if s:
        return "unix:" + s
    u = os.environ.get("SHIELDD_URL")
    if u:
        return u
    return "unix:" + DEFAULT_SOCKET


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except BaseException:
            s.close()
            raise
        self.sock = s


class Client:
    """A shieldd client on one endpoint: "unix:PATH", a path starting with "/", or
    "http://HOST:PORT". `timeout` (seconds) bounds the connect and each read. `api_key` is sent
    as "Authorization: Bearer KEY" (default: $SHIELDD_API_KEY; none when unset or empty).
    Thread-safe: every call opens its own connection."""

    def __init__(self, endpoint=None, timeout=60.0, api_key=None):
        endpoint = endpoint or default_endpoint()
        self.endpoint = endpoint
        self.timeout = timeout
        if api_key is None:
            api_key = os.environ.get("SHIELDD_API_KEY") or None
        if api_key is not None and (not api_key or any(c in api_key for c in " \r\n\t")):
            raise ValueError("api_key: empty or holds white space")
        self._api_key = api_key
        if endpoint.startswith("unix:") or endpoint.startswith("/"):
            self._unix = endpoint[5:] if endpoint.startswith("unix:") else endpoint
            if not self._unix:
                raise ValueError("empty unix socket path in %r" % endpoint)
        elif endpoint.startswith("http://"):
            u = urllib.parse.urlsplit(endpoint)
            if not u.hostname or u.path not in ("", "/") or u.query:
                raise ValueError("endpoint %r: want http://HOST:PORT" % endpoint)
            self._unix = None
            self._host = u.hostname
            self._port = u.port or 80
        else:
            raise ValueError("endpoint %r is neither unix:PATH nor http://HOST:PORT" % endpoint)

    def __repr__(self):
        return "Client(%r)" % self.endpoint  # never the key

    # -- transport ---------------------------------------------------------------------------

    def _request(self, method, path, body=None, timeout=None):
        t = self.timeout if timeout is None else timeout
        if self._unix is not None:
            conn = _UnixConnection(self._unix, t)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=t)
        headers = {}
        if self._api_key is not None:
            headers["Authorization"] = "Bearer " + self._api_key
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            try:
                conn.request(method, path, body=data, headers=headers)
            except socket.timeout as e:
                raise TimeoutError_("%s: connect timed out after %gs" % (self.endpoint, t)) from e
            except OSError as e:
                raise ConnectError("%s: cannot connect: %s" % (self.endpoint, e)) from e
            try:
                resp = conn.getresponse()
                raw = resp.read()
            except socket.timeout as e:
                raise TimeoutError_("%s: no response within %gs" % (self.endpoint, t)) from e
            except (http.client.HTTPException, OSError) as e:
                raise ProtocolError("%s: bad or missing response: %r" % (self.endpoint, e)) from e
        finally:
            conn.close()
        try:
            doc = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            doc = None
        if resp.status >= 400:
            err = doc.get("error") if isinstance(doc, dict) else None
            ra = resp.getheader("Retry-After")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                raise APIError(resp.status, err.get("type") or "error", err["message"],
                               int(ra) if ra and ra.isdigit() else None)
            raise APIError(resp.status, "error", raw.decode("utf-8", "replace")[:500],
                           int(ra) if ra and ra.isdigit() else None)
        if doc is None:
            raise ProtocolError("%s: %s %s: the reply is not JSON" % (self.endpoint, method, path))
        return doc

    # -- API ---------------------------------------------------------------------------------

    def classify(self, text, response=None, policies=None, timeout=None):
        """P(violation) per policy for `text` (and the model's `response` to it, if given).
        `policies`: names (default: every enabled policy). Returns a ClassifyResult."""
        if not isinstance(text, str):
            raise TypeError("text must be a str")
        body = {"text": text}
        if response is not None:
            body["response"] = response
        if policies is not None:
            body["policies"] = list(policies)
        return self._parse_classify(self._request("POST", "/v1/classify", body, timeout))

    def classify_batch(self, texts, policies=None, timeout=None):
        """Classify several texts in one request; a list of ClassifyResult in order."""
        body = {"inputs": [{"text": t} for t in texts]}
        if policies is not None:
            body["policies"] = list(policies)
        doc = self._request("POST", "/v1/classify", body, timeout)
        outs = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(outs, list):
            raise ProtocolError("%s: batch reply without a results list" % self.endpoint)
        model = doc.get("model")
        return [self._parse_classify(o, model) for o in outs]

    def _parse_classify(self, doc, model=None):
        try:
            scores = [PolicyScore(r["policy"], float(r["probability"]), bool(r["violation"]),
                                  float(r["threshold"])) for r in doc["results"]]
            usage = doc.get("usage") or {}
            return ClassifyResult(doc.get("model", model), scores, bool(doc["flagged"]),
                                  int(usage.get("prompt_tokens", 0)),
                                  bool(doc.get("truncated", False)),
                                  int(usage.get("computed_tokens", 0)),
                                  int(usage.get("cached_tokens", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError("%s: unexpected classify reply: %r" % (self.endpoint, e)) from e

    def moderate(self, input, model=None, timeout=None):
        """The OpenAI-shaped moderation of a string or a list of strings; a list of
        Moderation, one per input."""
        body = {"input": input}
        if model is not None:
            body["model"] = model
        doc = self._request("POST", "/v1/moderations", body, timeout)
        try:
            return [Moderation(bool(r["flagged"]), dict(r["categories"]),
                               {k: float(v) for k, v in r["category_scores"].items()})
                    for r in doc["results"]]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ProtocolError("%s: unexpected moderation reply: %r" % (self.endpoint, e)) from e

    def policies(self, timeout=None):
        """The loaded policies, a list of Policy."""
        doc = self._request("GET", "/v1/policies", None, timeout)
        try:
            return [Policy(p["name"], p.get("title"), p.get("description"),
                           float(p["threshold"]), bool(p["enabled"])) for p in doc["policies"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError("%s: unexpected policies reply: %r" % (self.endpoint, e)) from e

    def health(self, timeout=None):
        """Liveness and readiness. Never raises APIError for a not-ready daemon: that is
        Health(ready=False, message=...). Raises ConnectError/TimeoutError_ when unreachable."""
        self._request("GET", "/healthz", None, timeout)
        try:
            doc = self._request("GET", "/readyz", None, timeout)
        except APIError as e:
            return Health(True, False, None, None, e.message)
        return Health(True, True, doc.get("model"), doc.get("policies"))
