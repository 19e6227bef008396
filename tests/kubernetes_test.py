"""The Kubernetes manifests of deploy/kubernetes/ as an operator would apply them, and the
overlay deploy/kubernetes-replicated/ (every stateful service as a primary and standbys
elected through etcd) as kustomize renders it.

Every object of every manifest is checked against the Kubernetes API schema by
tests/tools/k8s_validate.js (npm kubernetes-models: types, required fields, enums; and
strictly, every field against the API's field lists, so a misspelt field is refused), and a
copy with a misspelt field and one with a wrong type must be refused. Then samordna's own
rules, for the base and the rendered overlay alike: every service lists every broker (in its
manifest and in deploy/config/), the probes hit /readyz and /healthz on the metrics port
bound on every address, every container has resource requests and the restricted security
context with the image's numeric user, every workload has a PodDisruptionBudget, every
service a volume for its store, the keys are mounted where the configuration looks for them,
and each kustomization.yaml lists every manifest of its folder. The overlay's own rules:
replicas, required anti-affinity across nodes, the election's variables, an etcd of an odd
number (three) of members that every SAMORDNA_ETCD endpoint names, and an etcd command line
that Debian's etcd accepts and runs: three etcd processes given the manifest's flags (the
pods' names and ports mapped to loopback ones) form one cluster.

The overlay is rendered here (its resources, then its strategic-merge patches: maps merged,
null deletes, the lists Kubernetes merges by key merged by that key), so that no kustomize is
needed; where kubectl or kustomize is installed, test_overlay_renders_as_kustomize_does
checks that rendering against theirs. Needs node and the npm packages of tests/package.json,
which tools/deps.sh installs before any test runs (npm ci): no network here. Skipped (never
passed) only without node.
"""
import base64
import copy
import glob
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import samtest

KUBE = os.path.join(samtest.SRC, "deploy", "kubernetes")
REPLICATED = os.path.join(samtest.SRC, "deploy", "kubernetes-replicated")
CONFIG = os.path.join(samtest.SRC, "deploy", "config")
CONTAINER = os.path.join(samtest.SRC, "deploy", "container")
TESTS = os.path.join(samtest.SRC, "tests")
SERVICES = ["registry", "status", "grants", "notify"]
# The operator's HTTP port of each process (docs/operations.md).
METRICS_PORT = {"broker": 9100, "registry": 9101, "status": 9102, "grants": 9103,
                "notify": 9104}
# The image each workload runs, and the Containerfile that builds it.
CONTAINERFILE = {"etcd": "etcd.Containerfile"}
# The lists a strategic-merge patch merges item by item, by this key (the patchMergeKey of
# the Kubernetes API types); every other list a patch names replaces the original.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name",
              "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort"}


def manifests(folder=KUBE):
    return sorted(glob.glob(os.path.join(folder, "*.yaml")))


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


def parsed(files):
    """The objects of the files as parsed, not checked: a patch is no whole object."""
    return [o["object"] for o in validate(files)[0]]


def merge(original, patch):
    """original with a strategic-merge patch applied, as kustomize applies it (for what the
    overlay uses): maps merged key by key, a null deletes the key, a list of MERGE_KEYS
    merged item by item (the patch's new items first, as kustomize puts them), any other
    list replaced."""
    if not isinstance(original, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(original)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif k in MERGE_KEYS and isinstance(v, list) and isinstance(out.get(k), list):
            key = MERGE_KEYS[k]
            have = {item[key]: i for i, item in enumerate(out[k])}
            new = []
            for item in v:
                if item[key] in have:
                    out[k][have[item[key]]] = merge(out[k][have[item[key]]], item)
                else:
                    new.append(copy.deepcopy(item))
            out[k] = new + out[k]
        else:
            out[k] = merge(out.get(k), v)
    return out


def render(folder):
    """The objects kustomize makes of folder: its resources (files, or folders with a
    kustomization.yaml of their own), then its patches, each to the object of its kind and
    name. A patch that names no object is an error, as in kustomize."""
    kust = parsed([os.path.join(folder, "kustomization.yaml")])
    assert len(kust) == 1 and kust[0]["kind"] == "Kustomization", folder
    kust = kust[0]
    objs = []
    for res in kust.get("resources", []):
        path = os.path.normpath(os.path.join(folder, res))
        if os.path.isdir(path):
            objs += render(path)
        else:
            objs += parsed([path])
    for p in kust.get("patches", []):
        assert set(p) == {"path"}, f"{folder}: a patch this test renders names a path: {p}"
        for patch in parsed([os.path.join(folder, p["path"])]):
            hits = [i for i, o in enumerate(objs) if o["kind"] == patch["kind"]
                    and o["metadata"]["name"] == patch["metadata"]["name"]]
            assert len(hits) == 1, f"{p['path']}: {patch['kind']}/{patch['metadata']['name']} " \
                f"matches {len(hits)} objects"
            objs[hits[0]] = merge(objs[hits[0]], patch)
    if "namespace" in kust:
        for o in objs:
            if o["kind"] != "Namespace":
                o["metadata"]["namespace"] = kust["namespace"]
    return objs


_OBJECTS = {}


def objects(folder=KUBE):
    """Every object of the folder's manifests (the base), or of the overlay as rendered,
    validated once: the base's files as they are, the overlay's rendering as one file."""
    if folder not in _OBJECTS:
        if folder == KUBE:
            objs, errors = validate(manifests())
            assert errors == [], "\n".join(errors)
            _OBJECTS[folder] = [o["object"] for o in objs]
        else:
            rendered = render(folder)
            path = os.path.join(samtest.scratch("kubernetes-rendered"),
                                os.path.basename(folder) + ".yaml")
            with open(path, "w") as f:  # JSON is YAML: one document an object
                f.write("".join("---\n" + json.dumps(o) + "\n" for o in rendered))
            _, errors = validate([path])
            assert errors == [], f"{folder} as rendered:\n" + "\n".join(errors)
            _OBJECTS[folder] = rendered
    return _OBJECTS[folder]


def deployments():
    """(folder name, objects) of the base and of the replicated overlay."""
    return [(os.path.basename(f), objects(f)) for f in (KUBE, REPLICATED)]


def of_kind(kind, objs=None):
    return {o["metadata"]["name"]: o for o in (objects() if objs is None else objs)
            if o["kind"] == kind}


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


def image_user(containerfile="Containerfile"):
    with open(os.path.join(CONTAINER, containerfile)) as f:
        users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", f.read(), re.M)
    assert len(users) == 1, f"{containerfile} needs one numeric USER uid:gid line: {users}"
    return tuple(int(x) for x in users[0])


def all_sets(objs):
    """{name: StatefulSet}: the broker, each service, and in the overlay etcd."""
    sets = of_kind("StatefulSet", objs)
    want = {"broker", *SERVICES} | ({"etcd"} if "etcd" in sets else set())
    assert set(sets) == want, f"StatefulSets: {sorted(sets)}"
    return sets


def workloads(objs=None):
    """{process name: StatefulSet}: the broker and each service (samordna's own programs)."""
    return {n: s for n, s in all_sets(objects() if objs is None else objs).items()
            if n != "etcd"}


def replicated(sts):
    """Whether the StatefulSet's service runs under an election (the overlay's)."""
    return env(container(sts)).get("SAMORDNA_REPLICA") == "elect"


def test_every_object_meets_the_api_schema():
    kinds = sorted(o["kind"] for o in objects())
    assert kinds.count("StatefulSet") == 5 and kinds.count("PodDisruptionBudget") == 5, kinds
    kinds = sorted(o["kind"] for o in objects(REPLICATED))
    assert kinds.count("StatefulSet") == 6 and kinds.count("PodDisruptionBudget") == 6 \
        and kinds.count("NetworkPolicy") == 1, kinds


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


def test_a_misspelt_field_in_a_patch_is_refused_once_rendered():
    # a copy of the overlay whose registry patch misspells a field of the pod: the patch
    # alone is no whole object, so only the rendering can tell, and must
    d = os.path.join(samtest.scratch("kubernetes-broken-overlay"), "overlay")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(REPLICATED, d)
    with open(os.path.join(d, "kustomization.yaml")) as f:
        kust = f.read()
    assert "  - ../kubernetes\n" in kust, "the overlay's base moved"
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        f.write(kust.replace("  - ../kubernetes\n", f"  - {KUBE}\n"))
    path = os.path.join(d, "registry.yaml")
    with open(path) as f:
        text = f.read()
    assert "podAntiAffinity:" in text, "registry.yaml of the overlay lost its anti-affinity"
    with open(path, "w") as f:
        f.write(text.replace("podAntiAffinity:", "podAntiAfinity:", 1))
    try:
        objects(d)
    except AssertionError as e:
        assert "unknown field spec.template.spec.affinity.podAntiAfinity" in str(e), str(e)
    else:
        raise AssertionError("a misspelt field in a patch passed")
    finally:
        _OBJECTS.pop(d, None)


def test_overlay_renders_as_kustomize_does():
    tool = (["kubectl", "kustomize"] if shutil.which("kubectl")
            else ["kustomize", "build"] if shutil.which("kustomize") else None)
    if tool is None:
        raise samtest.Skip("neither kubectl nor kustomize is installed: the rendering of "
                           "this test is not compared with kustomize's")
    r = subprocess.run(tool + [REPLICATED], capture_output=True, text=True,
                       timeout=60 * samtest.SLOW)
    assert r.returncode == 0, f"{' '.join(tool)} exited {r.returncode}: {r.stderr}"
    path = os.path.join(samtest.scratch("kubernetes-kustomize"), "rendered.yaml")
    with open(path, "w") as f:
        f.write(r.stdout)
    theirs = {(o["kind"], o["metadata"]["name"]): o for o in parsed([path])}
    ours = {(o["kind"], o["metadata"]["name"]): o for o in objects(REPLICATED)
            if o["kind"] != "Kustomization"}
    assert sorted(theirs) == sorted(ours), f"kustomize: {sorted(theirs)}, ours: {sorted(ours)}"
    for k in ours:
        assert theirs[k] == ours[k], f"{k}: kustomize renders\n{json.dumps(theirs[k])}\n" \
            f"this test\n{json.dumps(ours[k])}"


def test_kustomization_lists_every_manifest():
    for folder, base in [(KUBE, []), (REPLICATED, ["../kubernetes"])]:
        kust = [o for o in parsed([os.path.join(folder, "kustomization.yaml")])
                if o["kind"] == "Kustomization"]
        assert len(kust) == 1, f"{folder}: kustomization.yaml is missing"
        listed = [r for r in kust[0]["resources"] if r not in base]
        assert [r for r in kust[0]["resources"] if r in base] == base, \
            f"{folder} must build on {base}: {kust[0]['resources']}"
        listed += [p["path"] for p in kust[0].get("patches", [])]
        files = {os.path.basename(p) for p in manifests(folder)} - {"kustomization.yaml"}
        assert sorted(listed) == sorted(files), \
            f"{folder}/kustomization.yaml lists {sorted(listed)}, the folder {sorted(files)}"


def test_every_service_lists_every_broker():
    for folder, objs in deployments():
        sets = workloads(objs)
        broker = sets["broker"]
        svc = of_kind("Service", objs)[broker["spec"]["serviceName"]]
        assert svc["spec"].get("clusterIP") == "None", "the brokers' Service must be headless"
        port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "mdp")
        want = [f"tcp://broker-{i}.{svc['metadata']['name']}:{port}"
                for i in range(broker["spec"]["replicas"])]
        assert len(want) >= 2, "one broker is no redundancy"
        for name in SERVICES:
            have = (env(container(sets[name])).get("SAMORDNA_BROKER") or "").split(",")
            assert have == want, f"{folder}: {name} lists brokers {have}, not {want}"
            assert cfg_brokers(name) == want, f"{name}.cfg lists brokers {cfg_brokers(name)}"


def test_probes_hit_the_health_paths_on_the_metrics_port():
    for folder, objs in deployments():
        for name, sts in workloads(objs).items():
            c = container(sts)
            bind = env(c).get("SAMORDNA_METRICS")
            assert bind == f"0.0.0.0:{METRICS_PORT[name]}", \
                f"{folder}: {name}: SAMORDNA_METRICS={bind}: the kubelet probes from outside"
            ports = {p.get("name"): p["containerPort"] for p in c["ports"]}
            for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
                get = c.get(probe, {}).get("httpGet")
                assert get and get["path"] == path, f"{name}: {probe} must GET {path}: {get}"
                port = ports.get(get["port"], get["port"])
                assert port == METRICS_PORT[name], f"{folder}: {name}: {probe} on port {port}"


def test_security_context_and_resources():
    for folder, objs in deployments():
        for name, sts in all_sets(objs).items():
            uid, gid = image_user(CONTAINERFILE.get(name, "Containerfile"))
            spec = pod(sts)
            psc = spec.get("securityContext", {})
            assert psc.get("runAsNonRoot") is True and psc.get("runAsUser") == uid \
                and psc.get("runAsGroup") == gid and psc.get("fsGroup") == gid, \
                f"{folder}: {name}: {psc}"
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
                # an image the operator builds, by its name: no registry host in any file
                assert "/" not in c["image"], f"{folder}: {name}: image {c['image']} names a host"


def test_every_workload_has_a_disruption_budget():
    for folder, objs in deployments():
        budgets = list(of_kind("PodDisruptionBudget", objs).values())
        for name, sts in all_sets(objs).items():
            labels = sts["spec"]["template"]["metadata"]["labels"]
            mine = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items()
                    <= labels.items()]
            assert len(mine) == 1, f"{folder}: {name}: {len(mine)} PodDisruptionBudgets"
            spec, replicas = mine[0]["spec"], sts["spec"]["replicas"]
            if name == "broker":
                assert spec.get("minAvailable") == 1 and replicas >= 2, f"broker: {spec}"
            elif name == "etcd":
                # one member at a time: the others keep the quorum
                assert spec.get("maxUnavailable") == 1 and "minAvailable" not in spec, spec
            elif replicated(sts):
                # one pod at a time, so that a primary and a standby that confirms its writes
                # stay through a drain (docs/operations.md, "Disruptions")
                assert replicas >= 2 and spec.get("minAvailable") == replicas - 1 \
                    and "maxUnavailable" not in spec, f"{folder}: {name}: {spec}, {replicas}"
            else:
                # one replica: a budget of minAvailable 1 would only block every drain; ours
                # says honestly that the pod may go (docs/operations.md, "Disruptions")
                assert replicas == 1 and spec.get("maxUnavailable") == 1, f"{name}: {spec}"


def test_every_service_has_a_volume_for_its_store():
    for folder, objs in deployments():
        for name in SERVICES:
            sts = workloads(objs)[name]
            claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
            assert claims == ["data"], f"{folder}: {name}: volumeClaimTemplates {claims}"
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
    for folder, objs in deployments():
        sets = workloads(objs)
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
                             os.path.basename(server): "samordna-broker-public"}, \
                f"{folder}: {name}: {files}"
        for name, sts in sets.items():
            for m in container(sts)["volumeMounts"]:
                if m["name"] in ("keys", "trusted", "config"):
                    assert m.get("readOnly") is True, f"{name}: {m['name']} must be read-only"


def required_anti_affinity(sts):
    """The required anti-affinity terms across nodes that select the StatefulSet's own pods."""
    labels = sts["spec"]["template"]["metadata"]["labels"]
    terms = (pod(sts).get("affinity", {}).get("podAntiAffinity", {})
             .get("requiredDuringSchedulingIgnoredDuringExecution", []))
    return [t for t in terms if t.get("topologyKey") == "kubernetes.io/hostname"
            and t.get("labelSelector", {}).get("matchLabels", {})
            and t["labelSelector"]["matchLabels"].items() <= labels.items()
            and not t["labelSelector"].get("matchExpressions")]


def flags(c):
    """{--flag: value} of a container's command line (--flag=value only)."""
    out = {}
    for a in c["command"][1:]:
        m = re.fullmatch(r"(--[a-z0-9-]+)=(.*)", a)
        assert m, f"{c['name']}: write {a!r} as --flag=value"
        assert m.group(1) not in out, f"{c['name']}: {m.group(1)} twice"
        out[m.group(1)] = m.group(2)
    return out


def etcd_members(objs):
    """{"etcd-0.samordna-etcd": (client port, peer port), …}: every member's DNS name as the
    headless Service of the etcd StatefulSet gives it, checked against that Service."""
    sts = of_kind("StatefulSet", objs)["etcd"]
    svc = of_kind("Service", objs)[sts["spec"]["serviceName"]]
    assert svc["spec"].get("clusterIP") == "None", "etcd's Service must be headless"
    assert svc["spec"].get("publishNotReadyAddresses") is True, \
        "etcd's members need each other's names before they are ready (a quorum)"
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"][
        "labels"].items(), "etcd's Service does not select its pods"
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    cports = {p["name"]: p["containerPort"] for p in container(sts)["ports"]}
    assert ports["client"] == cports["client"] and ports["peer"] == cports["peer"], ports
    name, sname = sts["metadata"]["name"], svc["metadata"]["name"]
    return {f"{name}-{i}.{sname}": (ports["client"], ports["peer"])
            for i in range(sts["spec"]["replicas"])}


def test_replicated_services_are_elected_across_nodes():
    objs = objects(REPLICATED)
    members = etcd_members(objs)
    sets = workloads(objs)
    lists = set()
    for name in SERVICES:
        sts = sets[name]
        e = {v["name"]: v for v in container(sts).get("env", [])}
        have = env(container(sts))
        assert have.get("SAMORDNA_REPLICA") == "elect", f"{name}: SAMORDNA_REPLICA"
        assert have.get("SAMORDNA_SYNC_STANDBY") in ("true", "1", "yes"), \
            f"{name}: SAMORDNA_SYNC_STANDBY={have.get('SAMORDNA_SYNC_STANDBY')}"
        # a restart of every pod elects one only with a majority live, which holds every
        # acknowledged write (synchronous: the primary and at least one standby had it)
        replicas = sts["spec"]["replicas"]
        assert int(have.get("SAMORDNA_ETCD_MIN_MEMBERS", "1")) == replicas // 2 + 1, \
            f"{name}: SAMORDNA_ETCD_MIN_MEMBERS={have.get('SAMORDNA_ETCD_MIN_MEMBERS')}"
        # the pod's own name: unique per instance and the same after a restart, which the
        # election needs (a restarted instance follows its former self's leader key)
        assert e.get("SAMORDNA_INSTANCE", {}).get("valueFrom") == \
            {"fieldRef": {"fieldPath": "metadata.name"}}, f"{name}: {e.get('SAMORDNA_INSTANCE')}"
        # synchronous writes need a standby that confirms them: with two pods, losing
        # either node would stop every write, so at least three
        assert sts["spec"]["replicas"] >= 3, f"{name}: {sts['spec']['replicas']} replicas"
        assert required_anti_affinity(sts), f"{name}: no required anti-affinity across nodes"
        # pods start in order: -0, which holds the store when a base deployment moves to the
        # overlay, is elected alone before an empty -1 exists (docs/operations.md)
        assert sts["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady", name
        endpoints = have.get("SAMORDNA_ETCD", "").split(",")
        named = set()
        for url in endpoints:
            m = re.fullmatch(r"http://([a-z0-9.-]+):(\d+)", url)
            assert m, f"{name}: SAMORDNA_ETCD endpoint {url!r} is not http://host:port"
            assert m.group(1) in members, f"{name}: {url} names no etcd pod of {sorted(members)}"
            assert int(m.group(2)) == members[m.group(1)][0], f"{name}: {url}: not the client port"
            named.add(m.group(1))
        assert named == set(members) and len(endpoints) == len(members), \
            f"{name}: SAMORDNA_ETCD {endpoints} must list each of {sorted(members)} once"
        lists.add(have["SAMORDNA_ETCD"])
    assert len(lists) == 1, f"the services list etcd differently: {lists}"


def test_etcd_is_an_odd_cluster_of_three_on_three_nodes():
    objs = objects(REPLICATED)
    sts = of_kind("StatefulSet", objs)["etcd"]
    n = sts["spec"]["replicas"]
    assert n == 3 and n % 2 == 1, f"etcd: {n} members: three survive one node, in an odd number"
    assert required_anti_affinity(sts), "etcd: no required anti-affinity across nodes"
    assert sts["spec"].get("podManagementPolicy") == "Parallel", \
        "etcd's members must start together: none is ready without a quorum"
    members = etcd_members(objs)
    c = container(sts)
    f = flags(c)
    pod_name = {e["name"]: e for e in c["env"]}.get("POD_NAME", {})
    assert pod_name.get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.name"}}, pod_name
    sname = sts["spec"]["serviceName"]
    client, peer = next(iter(members.values()))
    assert f["--name"] == "$(POD_NAME)", f
    assert f["--advertise-client-urls"] == f"http://$(POD_NAME).{sname}:{client}", f
    assert f["--initial-advertise-peer-urls"] == f"http://$(POD_NAME).{sname}:{peer}", f
    want = ",".join(f"{m.split('.')[0]}={'http://'}{m}:{peer}" for m in sorted(members))
    assert f["--initial-cluster"] == want, f"--initial-cluster {f['--initial-cluster']}, not {want}"
    assert f["--listen-client-urls"] == f"http://0.0.0.0:{client}", f
    assert f["--listen-peer-urls"] == f"http://0.0.0.0:{peer}", f
    # the data directory is a folder on the volume (etcd wants it 0700, the fsGroup's root
    # is not), and the store is compacted (else it fills etcd's quota and refuses writes)
    data = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == "data")
    assert os.path.dirname(f["--data-dir"]) == data, f"--data-dir {f['--data-dir']} on {data}"
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    assert f.get("--auto-compaction-retention"), "etcd must compact its history"
    # probes: /health on the metrics listener, the port Prometheus is told
    metrics = re.fullmatch(r"http://0\.0\.0\.0:(\d+)", f["--listen-metrics-urls"])
    assert metrics, f["--listen-metrics-urls"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/health", f"etcd: {probe} {get}"
        assert ports.get(get["port"], get["port"]) == int(metrics.group(1)), f"etcd: {probe}"
    ann = sts["spec"]["template"]["metadata"]["annotations"]
    assert ann.get("prometheus.io/port") == metrics.group(1), ann
    # the image: Debian's etcd-server, built by the operator from our Containerfile
    with open(os.path.join(CONTAINER, CONTAINERFILE["etcd"])) as fh:
        text = fh.read()
    assert re.search(r"apt-get install [^\n]*\betcd-server\b", text), "etcd.Containerfile"
    assert re.search(rf"-t {re.escape(c['image'])} ", text), \
        f"etcd.Containerfile does not build {c['image']}"


def test_etcd_accepts_the_command_line():
    # every flag of the manifest is one Debian's etcd knows: a misspelt flag stops the
    # member at its start, which no schema sees
    if not shutil.which("etcd"):
        raise AssertionError("etcd is not installed: tools/deps.sh installs etcd-server")
    r = subprocess.run(["etcd", "--help"], capture_output=True, text=True,
                       timeout=30 * samtest.SLOW)
    known = set(re.findall(r"^\s+(--[a-z0-9-]+)", r.stdout + r.stderr, re.M))
    assert len(known) > 50, f"etcd --help listed {len(known)} flags: {r.stdout[:200]}"
    c = container(of_kind("StatefulSet", objects(REPLICATED))["etcd"])
    assert c["command"][0] == "etcd", c["command"]
    unknown = sorted(set(flags(c)) - known)
    assert unknown == [], f"etcd knows no {unknown}"


def _http(url, body=None):
    """(status, JSON reply) of a GET, or of a POST of body (JSON), to url."""
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(url, data=data, timeout=2 * samtest.SLOW) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return None, None


def test_etcd_members_form_a_quorum_with_the_manifests_command_line():
    # the manifest's own command line, run: three Debian etcd processes on loopback, each
    # given exactly the manifest's flags, with only the pods' names and ports mapped to this
    # host's, and each data directory on a group-writable folder as the fsGroup leaves a
    # volume. They must form one cluster: /health on the metrics port says so on every
    # member, and a key put through one member's v3 JSON gateway is read on another's.
    if not shutil.which("etcd"):
        raise AssertionError("etcd is not installed: tools/deps.sh installs etcd-server")
    objs = objects(REPLICATED)
    sts = of_kind("StatefulSet", objs)["etcd"]
    c = container(sts)
    members = sorted(etcd_members(objs))
    client, peer = etcd_members(objs)[members[0]]
    metrics = int(re.fullmatch(r"http://0\.0\.0\.0:(\d+)", flags(c)["--listen-metrics-urls"])
                  .group(1))
    role = {client: "client", peer: "peer", metrics: "metrics"}
    ports = [{r: samtest.free_port() for r in role.values()} for _ in members]
    mount = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == "data")
    root = samtest.scratch("kubernetes-etcd")
    pod_names = [m.split(".")[0] for m in members]

    def local(value, i):
        value = value.replace("$(POD_NAME)", pod_names[i])

        def url(m):
            host, port = m.group(1), int(m.group(2))
            j = i if host == "0.0.0.0" else members.index(host)  # a name no member has: fails
            return f"http://127.0.0.1:{ports[j][role[port]]}"
        value = re.sub(r"http://([a-z0-9.-]+):(\d+)", url, value)
        if value == mount or value.startswith(mount + "/"):
            value = os.path.join(root, pod_names[i]) + value[len(mount):]
        return value

    def arg(a, i):
        flag, value = a.split("=", 1)
        mapped = f"{flag}={local(value, i)}"
        # never the host's own etcd folder: every path of the pod maps into the scratch one
        assert mount not in mapped, f"{a} would run on this host's {mount}"
        return mapped

    procs = []
    try:
        for i, name in enumerate(pod_names):
            volume = os.path.join(root, name)
            os.makedirs(volume)
            os.chmod(volume, 0o2770)  # what the fsGroup makes of a volume's root
            args = [arg(a, i) for a in c["command"][1:]]
            procs.append(samtest.Proc(f"etcd-{i}", [shutil.which("etcd"), *args], clock=False))
        for i, proc in enumerate(procs):
            health = f"http://127.0.0.1:{ports[i]['metrics']}/health"
            samtest.wait_for(lambda: not proc.alive() or _http(health) == (200, {"health": "true"}),
                             30, f"{pod_names[i]}'s /health in a quorum")
            assert proc.alive(), f"{pod_names[i]} exited:\n{proc.logtext()[-2000:]}"
        key = base64.b64encode(b"/samordna/kubernetes_test").decode()
        value = base64.b64encode(b"one cluster").decode()
        status, _ = _http(f"http://127.0.0.1:{ports[0]['client']}/v3/kv/put",
                          {"key": key, "value": value})
        assert status == 200, f"put through {pod_names[0]}: {status}"
        status, reply = _http(f"http://127.0.0.1:{ports[-1]['client']}/v3/kv/range", {"key": key})
        assert status == 200 and [kv["value"] for kv in reply.get("kvs", [])] == [value], \
            f"range through {pod_names[-1]}: {status} {reply}"
        for i in range(len(procs)):  # etcd made its data folder, private, on the volume
            data = local(flags(c)["--data-dir"], i)
            assert os.path.isdir(os.path.join(data, "member")), f"{data}: no member folder"
            assert os.stat(data).st_mode & 0o777 == 0o700, f"{data} is not 0700"
    finally:
        for proc in procs:
            proc.stop()


def test_only_samordna_reaches_etcd():
    objs = objects(REPLICATED)
    pol = of_kind("NetworkPolicy", objs)["etcd"]["spec"]
    sts = of_kind("StatefulSet", objs)["etcd"]
    assert pol["podSelector"]["matchLabels"].items() <= \
        sts["spec"]["template"]["metadata"]["labels"].items(), "the policy selects no member"
    rules = {tuple(p["port"] for p in r["ports"]): r.get("from") for r in pol["ingress"]}
    assert set(rules) == {("client",), ("peer",), ("metrics",)}, rules
    for name in SERVICES:  # every service's pods may reach the client port
        labels = workloads(objs)[name]["spec"]["template"]["metadata"]["labels"]
        assert any(f["podSelector"]["matchLabels"].items() <= labels.items()
                   for f in rules[("client",)]), f"{name} may not reach etcd"
    assert rules[("peer",)] == [{"podSelector": pol["podSelector"]}], rules[("peer",)]


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
