"""The Kubernetes manifests in deploy/k8s. No cluster runs here and `kubectl apply
--dry-run=client` needs an API server for its discovery, so: (1) every document is checked
against the Kubernetes API schemas of the npm package kubernetes-models 5.1.0 (from the
Kubernetes OpenAPI spec, resource.k8s.io/v1 included, i.e. Kubernetes 1.34), with unknown fields
rejected (k8s_validate.mjs), and the checker is shown to catch mistakes; (2) the references
between them hold (selectors, port names, claims, the HPA's metric is one shieldd exports and
the adapter serves); (3) the containers' commands run as written against the real binaries, with
only the paths mapped: the Deployment's shieldd answers its probes and drains on SIGTERM within
the grace period, and the Indexed Job's 8 indices (JOB_COMPLETION_INDEX, the annotation-fed env)
followed by the merge Job give the bytes of one scan."""
import glob
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

from clients_common import (POLICIES, SHIELDCTL, SHIELDD, SLOW, TOP, ctl, free_port,
                            make_model, rmtree)

K8S = os.path.join(TOP, "deploy", "k8s")
NODE_MODULES = os.path.join(TOP, ".cache", "npm", "node_modules")
VALIDATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s_validate.mjs")

_tmp = None
_model = None
_docs = None


def validate(files):
    r = subprocess.run(["node", VALIDATE, NODE_MODULES] + files, capture_output=True,
                       timeout=120)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        raise AssertionError("k8s_validate.mjs: %s %s" % (r.stdout[-500:], r.stderr[-2000:]))
    return r.returncode, out


def setUpModule():
    global _tmp, _model, _docs
    _tmp = tempfile.mkdtemp(prefix="k8s-test-")
    _model = make_model(_tmp)
    rc, out = validate(sorted(glob.glob(os.path.join(K8S, "*.yaml"))))
    _docs = out


def tearDownModule():
    rmtree(_tmp)


def doc(kind, name):
    for d in _docs["docs"]:
        if d["kind"] == kind and d["doc"]["metadata"]["name"] == name:
            return d["doc"]
    raise AssertionError("no %s %s in deploy/k8s" % (kind, name))


def container(d):
    return d["spec"]["template"]["spec"]["containers"][0]


class Schema(unittest.TestCase):
    def test_every_manifest_is_valid(self):
        self.assertEqual(_docs["errors"], [])
        kinds = sorted((d["kind"], d["doc"]["metadata"]["name"]) for d in _docs["docs"])
        self.assertEqual(kinds, [
            ("ConfigMap", "prometheus-adapter"), ("Deployment", "shieldd"),
            ("HorizontalPodAutoscaler", "shieldd"), ("Job", "shieldd-scan"),
            ("Job", "shieldd-scan-merge"), ("PersistentVolumeClaim", "shieldd-model"),
            ("PersistentVolumeClaim", "shieldd-scan-data"), ("Service", "shieldd")])

    def test_checker_catches_mistakes(self):
        bad = os.path.join(_tmp, "bad.yaml")
        with open(os.path.join(K8S, "deployment.yaml")) as f:
            text = f.read()
        text = text.replace("readinessProbe:", "readinesProbe:", 1)
        text = text.replace("containerPort: 8088", 'containerPort: "8088"', 1)
        text = text.replace("replicas: 2", "replicas: 2\n  replica: 3", 1)
        with open(bad, "w") as f:
            f.write(text + "---\napiVersion: apps/v1\nkind: Deploymnt\nmetadata: {name: x}\n")
        rc, out = validate([bad])
        self.assertEqual(rc, 1)
        errs = "\n".join(out["errors"])
        self.assertIn("containers[0].readinesProbe: no such field in ApiCoreV1Container", errs)
        self.assertIn("containerPort must be integer", errs)
        self.assertIn("spec.replica: no such field in ApiAppsV1DeploymentSpec", errs)
        self.assertIn("no kind Deploymnt in apps/v1", errs)
        with open(os.path.join(K8S, "scan-job.yaml")) as f:
            text = f.read().replace("completionMode: Indexed", "completionMode: indexed")
        with open(bad, "w") as f:
            f.write(text)
        rc, out = validate([bad])
        self.assertIn("completionMode must be equal to one of the allowed values",
                      "\n".join(out["errors"]))


class References(unittest.TestCase):
    def test_service_deployment_hpa_adapter(self):
        dep, svc = doc("Deployment", "shieldd"), doc("Service", "shieldd")
        hpa, cm = doc("HorizontalPodAutoscaler", "shieldd"), doc("ConfigMap", "prometheus-adapter")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(dep["spec"]["selector"]["matchLabels"], labels)
        self.assertTrue(set(svc["spec"]["selector"].items()) <= set(labels.items()))
        c = container(dep)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertIn(svc["spec"]["ports"][0]["targetPort"], ports)
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            self.assertEqual(c[probe]["httpGet"]["path"], path)
            self.assertIn(c[probe]["httpGet"]["port"], ports)
        self.assertEqual(hpa["spec"]["scaleTargetRef"],
                         {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shieldd"})
        metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
        rules = cm["data"]["config.yaml"]
        self.assertIn('as: "%s"' % metric, rules)
        self.assertIn("seriesQuery: '%s{" % metric, rules)
        self.assertEqual(dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"],
                         str(ports["http"]))
        # Sized as one engine: requests = limits (Guaranteed), CPUs = --threads.
        res = c["resources"]
        self.assertEqual(res["requests"]["cpu"], res["limits"]["cpu"])
        self.assertEqual(res["requests"]["memory"], res["limits"]["memory"])
        self.assertIn("--threads=%s" % res["requests"]["cpu"], c["args"])
        # Drain fits the grace period: preStop sleep + drain_timeout < grace.
        sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
        drain = int(next(a for a in c["args"] if a.startswith("--drain_timeout="))
                    .split("=")[1].rstrip("s"))
        self.assertLess(sleep + drain, dep["spec"]["template"]["spec"]
                        ["terminationGracePeriodSeconds"])

    def test_volumes(self):
        claims = {d["doc"]["metadata"]["name"]: d["doc"] for d in _docs["docs"]
                  if d["kind"] == "PersistentVolumeClaim"}
        for kind, name in (("Deployment", "shieldd"), ("Job", "shieldd-scan"),
                           ("Job", "shieldd-scan-merge")):
            d = doc(kind, name)
            vols = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
            for m in container(d)["volumeMounts"]:
                v = vols[m["name"]]
                if "persistentVolumeClaim" in v:
                    self.assertIn(v["persistentVolumeClaim"]["claimName"], claims)
                if m["mountPath"] == "/models":   # the model: read-only, everywhere
                    self.assertTrue(m["readOnly"])
                    self.assertTrue(v["persistentVolumeClaim"]["readOnly"])
        dep = doc("Deployment", "shieldd")
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        cache = [m for m in container(dep)["volumeMounts"] if "emptyDir" in vols[m["name"]]]
        self.assertEqual(len(cache), 1)
        self.assertIn("--pack_cache=%s/pack" % cache[0]["mountPath"], container(dep)["args"])
        self.assertEqual(claims["shieldd-scan-data"]["spec"]["accessModes"], ["ReadWriteMany"])
        self.assertEqual(claims["shieldd-model"]["spec"]["accessModes"], ["ReadOnlyMany"])


def mapped(args, paths):
    """The args with each container path prefix replaced by its folder here."""
    out = []
    for a in args:
        for k, v in paths.items():
            a = a.replace(k, v)
        out.append(a)
    return out


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


class RunAsWritten(unittest.TestCase):
    def test_deployment_container(self):
        dep = doc("Deployment", "shieldd")
        c = container(dep)
        self.assertEqual(os.path.basename(c["command"][0]), "shieldd")
        port = free_port()
        cache = os.path.join(_tmp, "cache")
        os.mkdir(cache)
        args = mapped(c["args"], {"/models/shieldgemma-2b": _model,
                                  "/usr/local/share/shieldd/policies": POLICIES,
                                  "/cache": cache, "tcp:0.0.0.0:8088": "tcp:127.0.0.1:%d" % port})
        log = open(os.path.join(_tmp, "deploy.log"), "w+b")
        p = subprocess.Popen([SHIELDD] + args, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = "http://127.0.0.1:%d" % port
            probe = c["startupProbe"]
            deadline = time.time() + probe["periodSeconds"] * probe["failureThreshold"] * SLOW
            while get(base + probe["httpGet"]["path"])[0] != 200:
                self.assertIsNone(p.poll(), "shieldd exited")
                self.assertLess(time.time(), deadline, "startupProbe would fail")
                time.sleep(0.1)
            self.assertEqual(get(base + c["readinessProbe"]["httpGet"]["path"])[0], 200)
            self.assertEqual(get(base + c["livenessProbe"]["httpGet"]["path"])[0], 200)
            status, metrics = get(base + "/metrics")
            self.assertEqual(status, 200)
            metric = doc("HorizontalPodAutoscaler", "shieldd")["spec"]["metrics"][0]["pods"][
                "metric"]["name"]
            self.assertRegex(metrics.decode(), r"(?m)^%s \d" % metric)
            self.assertTrue(glob.glob(os.path.join(cache, "pack", "*")),
                            "no packed weights in the emptyDir")
            p.send_signal(signal.SIGTERM)
            grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            self.assertEqual(p.wait(grace), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()

    def test_indexed_job_then_merge(self):
        job, merge = doc("Job", "shieldd-scan"), doc("Job", "shieldd-scan-merge")
        self.assertEqual(job["spec"]["completionMode"], "Indexed")
        n = job["spec"]["completions"]
        data = os.path.join(_tmp, "data")
        os.makedirs(os.path.join(data, "in"))
        os.makedirs(os.path.join(data, "out"))
        for part in ("a", "b"):
            with open(os.path.join(data, "in", "%s.jsonl" % part), "w") as f:
                for i in range(37):
                    f.write(json.dumps({"id": "%s%d" % (part, i), "text": "%s text %d" % (part, i)})
                            + "\n")
        paths = {"/models/shieldgemma-2b": _model, "/usr/local/share/shieldd/policies": POLICIES,
                 "/data": data}
        c = container(job)
        for index in range(n):
            env = dict(os.environ, JOB_COMPLETION_INDEX=str(index))
            for e in c["env"]:
                if "value" in e:
                    env[e["name"]] = e["value"]
                else:   # the completion-index annotation, through the downward API
                    self.assertEqual(e["valueFrom"]["fieldRef"]["fieldPath"],
                                     "metadata.annotations['batch.kubernetes.io/"
                                     "job-completion-index']")
                    env[e["name"]] = str(index)
            # The kubelet expands $(VAR) from the container's env in args.
            args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in c["args"]]
            r = subprocess.run([SHIELDCTL] + mapped(args, paths), env=env, capture_output=True,
                               timeout=120 * SLOW)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            with open(os.path.join(data, "out", "part-%d.jsonl.meta.json" % index)) as f:
                meta = json.load(f)
            self.assertEqual(meta["shard"]["index"], index)
            self.assertEqual(meta["shard"]["count"], n)
        m = container(merge)
        r = subprocess.run([SHIELDCTL] + mapped(m["args"], paths), capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        whole = os.path.join(_tmp, "whole.jsonl")
        prec = [a for a in c["args"] if a.startswith("--precision=")]
        r = ctl("scan", "--in", os.path.join(data, "in", "*.jsonl"), "--out", whole, "--model",
                _model, "--policies", POLICIES, *prec)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(whole, "rb") as f, open(os.path.join(data, "out", "result.jsonl"), "rb") as g:
            self.assertEqual(g.read(), f.read())


if __name__ == "__main__":
    unittest.main()
