"""Shared by the integration tests: the paths of the tree and the binaries (honouring $SG_TOP and
$SG_BUILD), a tiny random model made once per module, HTTP over a Unix socket, and (for the
client tests: test_clients, test_scan, test_python_client, test_nginx) a real shieldd on a
temporary Unix socket and a free TCP port."""
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.environ.get("SG_TOP") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SG_BUILD") or os.path.join(TOP, "build")
SHIELDD = os.path.join(BUILD, "shieldd")
SHIELDCTL = os.path.join(BUILD, "shieldctl")
MKMODEL = os.path.join(BUILD, "tools", "mkmodel")
POLICIES = os.path.join(TOP, "policies")
TOKENIZER = os.path.join(TOP, ".cache", "npm", "node_modules", "@lenml", "tokenizer-gemini",
                         "models", "tokenizer.json")
# Sanitizer builds (build/asan, build/san-address-undefined: see the Makefile) are slower:
# scale the waits.
_BUILD_NAME = os.path.basename(os.path.normpath(BUILD))
SLOW = 4 if "asan" in _BUILD_NAME or _BUILD_NAME.startswith("san-") else 1

sys.path.insert(0, os.path.join(TOP, "clients", "python"))


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over the Unix socket at `path`."""

    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def make_model(tmp):
    path = os.path.join(tmp, "model")
    subprocess.run([MKMODEL, "--preset", "tiny", "--dtype", "bf16", "--seed", "7",
                    "--tokenizer", TOKENIZER, "--out", path, "--quiet"], check=True, timeout=300)
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http_unix(path, deadline):
    while time.time() < deadline:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.settimeout(1)
            s.connect(path)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(100).startswith(b"HTTP/1.1 200"):
                return True
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.05)
    return False


class Daemon:
    """shieldd on <dir>/s.sock and 127.0.0.1:<free port>; stop() ends it."""

    def __init__(self, model, tmp, *extra):
        self.dir = tempfile.mkdtemp(prefix="d-", dir=tmp)
        self.sock = os.path.join(self.dir, "s.sock")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(self.dir, "stderr.log"), "w+b")
        self.proc = subprocess.Popen([SHIELDD, "-d", "-m", model, "-p", POLICIES,
                                      "--listen", "unix:" + self.sock,
                                      "--listen", "tcp:127.0.0.1:%d" % self.port] + list(extra),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_http_unix(self.sock, time.time() + 120 * SLOW):
            self.stop()
            raise AssertionError("shieldd did not come up: " + self.stderr())

    def stderr(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start(prefix):
    """setUpModule of a client test: (tmp, model, daemon) in a new temporary folder."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        model = make_model(tmp)
        return tmp, model, Daemon(model, tmp)
    except BaseException:
        rmtree(tmp)
        raise


def stop(tmp, daemon):
    """tearDownModule of a client test: end the daemon (if any), remove the folder."""
    if daemon:
        daemon.stop()
    rmtree(tmp)


def ctl(*args, env=None, input=None, timeout=300):
    e = dict(os.environ)
    e.pop("SHIELDD_SOCKET", None)
    e.pop("SHIELDD_URL", None)
    if env:
        e.update(env)
    return subprocess.run([SHIELDCTL] + list(args), capture_output=True, env=e, input=input,
                          timeout=timeout * SLOW)


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def start_nginx(site, folder, ready):
    """Debian's nginx in the foreground on the server block(s) `site` (text for its http {}
    context), with its files under `folder`; `ready()` is polled (OSError: not yet) until it
    returns true. Returns the process (stop_nginx)."""
    if not NGINX:
        raise AssertionError("nginx is not installed (tools/setup.sh installs nginx-light)")
    os.makedirs(folder)
    with open(os.path.join(folder, "site.conf"), "w") as f:
        f.write(site)
    temps = "".join("    %s_temp_path %s/%s;\n" % (k, folder, k)
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(os.path.join(folder, "main.conf"), "w") as f:
        f.write("daemon off;\n%spid %s/nginx.pid;\nerror_log %s/error.log;\n"
                "events { worker_connections 64; }\n"
                "http {\n    access_log %s/access.log;\n%s    include %s/site.conf;\n}\n"
                % ("user root;\n" if os.geteuid() == 0 else "", folder, folder, folder, temps,
                   folder))
    args = [NGINX, "-p", folder, "-c", os.path.join(folder, "main.conf")]
    t = subprocess.run(args + ["-t"], capture_output=True)
    if t.returncode != 0:
        raise AssertionError("nginx -t: " + t.stderr.decode())
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 30 * SLOW
    while time.time() < deadline:
        try:
            if ready():
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    stop_nginx(proc)
    raise AssertionError("nginx did not come up")


def stop_nginx(proc):
    if proc:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
