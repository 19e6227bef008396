"""The Kubernetes manifests of deploy/kubernetes/ as an operator would apply them.

Every object of every manifest is checked against the Kubernetes API schema by
tests/tools/k8s_validate.js (npm kubernetes-models: types, required fields, enums; and
strictly, every field against the API's field lists, so a misspelt field is refused), and a
copy with a misspelt field and one with a wrong type must be refused. Then samordna's own
rules: every service lists every broker (in its manifest and in deploy/config/), the probes
hit /readyz and /healthz on the metrics port bound on every address, every container has
resource requests and the restricted security context with the image's numeric user, every
workload has a PodDisruptionBudget, every service a volume for its store, the keys are mounted
where the configuration looks for them, and kustomization.yaml lists every manifest.

Needs node and the npm packages of tests/package.json, which tools/deps.sh installs before
any test runs (npm ci): no network here. Skipped (never passed) only without node.
"""
import glob
import json
import os
import re
import shutil
import subprocess

import samtest

KUBE = os.path.join(samtest.SRC, "deploy", "kubernetes")
CONFIG = os.path.join(samtest.SRC, "deploy", "config")
TESTS = os.path.join(samtest.SRC, "tests")
SERVICES = ["registry", "status", "grants", "notify"]
# The operator's HTTP port of each process (docs/operations.md).
METRICS_PORT = {"broker": 9100, "registry": 9101, "status": 9102, "grants": 9103,
                "notify": 9104}


def manifests():
    return sorted(glob.glob(os.path.join(KUBE, "*.yaml")))


def validate(files):
    """(objects, errors) of k8s_validate.js over the files."""
    if not shutil.which("node"):
        raise samtest.Skip("node is not installed (Debian package nodejs)")
    if not os.path.isdir(os.path.join(TESTS, "node_modules", "kubernetes-models")):
        raise AssertionError("tests/node_modules lacks kubernetes-models: run tools/deps.sh "
                             "(npm ci --prefix tests)")
    r = subprocess.run(["node", os.path.join(TESTS, "tools", "k8s_validate.js"), *files],
                       capture_output=True, text=True, timeout=120 * samtest.SLOW)
    assert r.returncode in (0, 1), f"k8s_validate.js exited {r.returncode}: {r.stderr}"
    out = json.loads(r.stdout)
    return out["objects"], out["errors"]


_OBJECTS = None


def objects():
    """Every object of every manifest, validated once."""
    global _OBJECTS
    if _OBJECTS is None:
        objs, errors = validate(manifests())
        assert errors == [], "\n".join(errors)
        _OBJECTS = [o["object"] for o in objs]
    return _OBJECTS


def of_kind(kind):
    return {o["metadata"]["name"]: o for o in objects() if o["kind"] == kind}


def pod(sts):
    return sts["spec"]["template"]["spec"]


def container(sts):
    cs = pod(sts)["containers"]
    assert len(cs) == 1, f"{sts['metadata']['name']}: one container a pod, not {len(cs)}"
    return cs[0]


def env(c):
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def cfg_brokers(name):
    """The broker endpoints of deploy/config/<name>.cfg (its "broker" block)."""
    with open(os.path.join(CONFIG, name + ".cfg")) as f:
        text = f.read()
    block = re.search(r"^broker\n((?:    .*\n)+)", text, re.M)
    return re.findall(r'^    \d+ = "([^"]+)"', block.group(1), re.M) if block else []


def cfg_value(name, key):
    with open(os.path.join(CONFIG, name + ".cfg")) as f:
        m = re.search(rf'^{key} = "([^"]*)"', f.read(), re.M)
    return m.group(1) if m else None


def image_user():
    with open(os.path.join(samtest.SRC, "deploy", "container", "Containerfile")) as f:
        users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", f.read(), re.M)
    assert len(users) == 1, f"the Containerfile needs one numeric USER uid:gid line: {users}"
    return tuple(int(x) for x in users[0])


def workloads():
    """{process name: StatefulSet}: the broker and each service."""
    sets = of_kind("StatefulSet")
    assert set(sets) == {"broker", *SERVICES}, f"StatefulSets: {sorted(sets)}"
    return sets


def test_every_object_meets_the_api_schema():
    kinds = sorted(o["kind"] for o in objects())
    assert kinds.count("StatefulSet") == 5 and kinds.count("PodDisruptionBudget") == 5, kinds


def test_a_misspelt_field_and_a_wrong_type_are_refused():
    d = samtest.scratch("kubernetes-broken")
    with open(os.path.join(KUBE, "broker.yaml")) as f:
        text = f.read()
    for name, old, new, want in [
            ("misspelt", "readinessProbe:", "readinesProbe:", "unknown field spec.template."
             "spec.containers[0].readinesProbe"),
            ("nested", "runAsNonRoot: true\n            runAsUser",
             "runAsNonRoot: true\n            runAsUsr", "securityContext.runAsUsr"),
            ("wrong-type", "replicas: 2", 'replicas: "two"', "/spec/replicas must be integer")]:
        assert old in text, f"broker.yaml lost {old!r}"
        path = os.path.join(d, name + ".yaml")
        with open(path, "w") as f:
            f.write(text.replace(old, new, 1))
        _, errors = validate([path])
        assert any(want in e for e in errors), f"{name}: {want!r} not among {errors}"


def test_kustomization_lists_every_manifest():
    kust = [o for o in objects() if o["kind"] == "Kustomization"]
    assert len(kust) == 1, "kustomization.yaml is missing"
    listed = set(kust[0]["resources"])
    files = {os.path.basename(p) for p in manifests()} - {"kustomization.yaml"}
    assert listed == files, f"kustomization.yaml lists {sorted(listed)}, the folder {sorted(files)}"


def test_every_service_lists_every_broker():
    sets = workloads()
    broker = sets["broker"]
    svc = of_kind("Service")[broker["spec"]["serviceName"]]
    assert svc["spec"].get("clusterIP") == "None", "the brokers' Service must be headless"
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "mdp")
    want = [f"tcp://broker-{i}.{svc['metadata']['name']}:{port}"
            for i in range(broker["spec"]["replicas"])]
    assert len(want) >= 2, "one broker is no redundancy"
    for name in SERVICES:
        have = (env(container(sets[name])).get("SAMORDNA_BROKER") or "").split(",")
        assert have == want, f"{name}.yaml lists brokers {have}, not {want}"
        assert cfg_brokers(name) == want, f"{name}.cfg lists brokers {cfg_brokers(name)}"


def test_probes_hit_the_health_paths_on_the_metrics_port():
    for name, sts in workloads().items():
        c = container(sts)
        bind = env(c).get("SAMORDNA_METRICS")
        assert bind == f"0.0.0.0:{METRICS_PORT[name]}", \
            f"{name}: SAMORDNA_METRICS={bind}: the kubelet probes from outside the container"
        ports = {p.get("name"): p["containerPort"] for p in c["ports"]}
        for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
            get = c.get(probe, {}).get("httpGet")
            assert get and get["path"] == path, f"{name}: {probe} must GET {path}: {get}"
            port = ports.get(get["port"], get["port"])
            assert port == METRICS_PORT[name], f"{name}: {probe} on port {port}"


def test_security_context_and_resources():
    uid, gid = image_user()
    for name, sts in workloads().items():
        spec = pod(sts)
        psc = spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True and psc.get("runAsUser") == uid \
            and psc.get("runAsGroup") == gid and psc.get("fsGroup") == gid, f"{name}: {psc}"
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert spec.get("terminationGracePeriodSeconds", 0) > 0, name
        assert spec.get("automountServiceAccountToken") is False, name
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot") is True and sc.get("runAsUser", uid) == uid, name
            assert sc.get("readOnlyRootFilesystem") is True, f"{name}: root file system"
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
            assert sc.get("capabilities", {}).get("add") is None, name
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
            requests = c.get("resources", {}).get("requests", {})
            assert "cpu" in requests and "memory" in requests, f"{name}: requests {requests}"
            assert "memory" in c["resources"].get("limits", {}), f"{name}: no memory limit"


def test_every_workload_has_a_disruption_budget():
    budgets = list(of_kind("PodDisruptionBudget").values())
    for name, sts in workloads().items():
        labels = sts["spec"]["template"]["metadata"]["labels"]
        mine = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items()
                <= labels.items()]
        assert len(mine) == 1, f"{name}: {len(mine)} PodDisruptionBudgets select it"
        spec, replicas = mine[0]["spec"], sts["spec"]["replicas"]
        if name == "broker":
            assert spec.get("minAvailable") == 1 and replicas >= 2, f"broker: {spec}"
        else:
            # one replica: a budget of minAvailable 1 would only block every drain; ours
            # says honestly that the pod may go (docs/operations.md, "Disruptions")
            assert replicas == 1 and spec.get("maxUnavailable") == 1, f"{name}: {spec}"


def test_every_service_has_a_volume_for_its_store():
    for name in SERVICES:
        sts = workloads()[name]
        claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
        assert claims == ["data"], f"{name}: volumeClaimTemplates {claims}"
        mounts = {m["name"]: m["mountPath"] for m in container(sts)["volumeMounts"]}
        want = env(container(sts)).get("SAMORDNA_DATA_DIR") or cfg_value(name, "data-dir")
        assert mounts.get("data") == want, f"{name}: data on {mounts.get('data')}, not {want}"
        policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy", {})
        assert policy.get("whenDeleted") == "Retain", f"{name}: its store must outlive it"


def secret_files(spec, mount_path, c):
    """{file name in the mounted folder: Secret name} of the volume mounted at mount_path."""
    name = next(m["name"] for m in c["volumeMounts"] if m["mountPath"] == mount_path)
    vol = next(v for v in spec["volumes"] if v["name"] == name)
    if "secret" in vol:
        return {None: vol["secret"]["secretName"]}  # every key of the Secret
    return {i["path"]: s["secret"]["name"] for s in vol["projected"]["sources"]
            for i in s["secret"]["items"]}


def test_keys_are_mounted_where_the_configuration_looks():
    sets = workloads()
    c = container(sets["broker"])
    spec = pod(sets["broker"])
    cert = env(c).get("SAMORDNA_CERT") or cfg_value("broker", "cert")
    trusted = env(c).get("SAMORDNA_CURVE_DIR") or cfg_value("broker", "curve-dir")
    assert secret_files(spec, os.path.dirname(cert), c) == {None: "samordna-broker-key"}
    assert secret_files(spec, trusted, c) == {None: "samordna-trusted"}
    for name in SERVICES:
        c, spec = container(sets[name]), pod(sets[name])
        cert, server = (cfg_value(name, k) for k in ("cert", "server-key"))
        assert os.path.dirname(cert) == os.path.dirname(server), name
        files = secret_files(spec, os.path.dirname(cert), c)
        assert files == {os.path.basename(cert): f"samordna-{name}-key",
                         os.path.basename(server): "samordna-broker-public"}, f"{name}: {files}"
    for name, sts in sets.items():
        for m in container(sts)["volumeMounts"]:
            if m["name"] in ("keys", "trusted", "config"):
                assert m.get("readOnly") is True, f"{name}: {m['name']} must be read-only"


def test_lock_file_names_no_host():
    with open(os.path.join(TESTS, "package-lock.json")) as f:
        lock = f.read()
    assert "http" not in lock, "tests/package-lock.json names a host: npm run --prefix tests lock"
    with open(os.path.join(TESTS, ".npmrc")) as f:
        npmrc = f.read()
    assert re.search(r"^omit-lockfile-registry-resolved=true$", npmrc, re.M), npmrc
    assert "registry" not in re.sub(r"^;.*$|omit-lockfile-registry-resolved", "", npmrc,
                                    flags=re.M), "tests/.npmrc must name no registry"


if __name__ == "__main__":
    samtest.main()
