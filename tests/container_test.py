"""The container image: what deploy/container/Containerfile promises, checked on this build.

The Containerfile itself needs a base image from a registry, which a test machine has no
network for. So the test builds the same contents with no registry at all: `buildah from
scratch`, then this build's `cmake --install` (every program it installs), the shared
libraries those programs link (ldd) and the example configurations, the numeric user
10001:10001, committed as an image. From that image it runs two brokers and the registry as
that user (`buildah run`, sharing the host's network), with CURVE and the key layout of
deploy/kubernetes/ (the broker's trusted folder as the kubelet mounts a Secret: ..data
symlinks), the registry given both brokers through SAMORDNA_BROKER, and checks that the
registry answers ping through each broker, that the brokers answer /healthz and /readyz, and
that every process stops cleanly on SIGTERM.

`podman run` would do as well where it can run; on a machine whose cgroups are mounted in
hybrid mode (v1 controllers beside a v2 tree) crun refuses every container, while buildah's
chroot isolation needs neither cgroups nor raised rlimits. Without buildah, or where `buildah
from scratch` fails, the image test is skipped with the reason, never passed. The checks of
the Containerfile against this build (every library's Debian package named, the ignore file)
need no buildah.
"""
import os
import re
import shutil
import signal
import subprocess
import urllib.request

import deploy_test
import samtest

SRC = samtest.SRC
BUILD = os.path.dirname(samtest.BIN)
CONTAINERFILE = os.path.join(SRC, "deploy", "container", "Containerfile")
PROGRAMS = {"samordna-broker", "samordna-registry", "samordna-status", "samordna-grants",
            "samordna-notify", "samordna-echo", "samordna-bench", "samctl"}
UID = GID = 10001


def containerfile_user():
    with open(CONTAINERFILE) as f:
        (user,) = re.findall(r"^USER\s+(\S+)\s*$", f.read(), re.M)
    return user


def staged_install():
    """This build installed into a scratch folder (DESTDIR) under /usr/local; the folder."""
    stage = samtest.scratch("container-stage")
    r = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr/local"],
                       env=dict(os.environ, DESTDIR=stage), capture_output=True, text=True,
                       timeout=300 * samtest.SLOW)
    assert r.returncode == 0, r.stdout + r.stderr
    return stage


def linked_libraries(programs):
    """Every shared object the programs load, as ldd names it (the loader included)."""
    libs = set()
    for p in programs:
        r = subprocess.run(["ldd", p], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"ldd {p}: {r.stderr}"
        for line in r.stdout.splitlines():
            m = re.search(r"(/\S+) \(0x", line)
            if m:
                libs.add(m.group(1))
    return libs


def package_of(path):
    """The Debian package that holds a file (merged /usr: either spelling of its path)."""
    for p in (path, "/usr" + path, path.removeprefix("/usr")):
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            return r.stdout.split(":")[0]
    raise AssertionError(f"no Debian package holds {path}")


def depends_closure(packages):
    """The packages and everything they depend on, as installed here (dpkg, no network)."""
    seen, todo = set(), list(packages)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", p],
                           capture_output=True, text=True, timeout=60)
        for alternatives in r.stdout.split(","):
            names = [a.split()[0].split(":")[0] for a in alternatives.split("|") if a.strip()]
            if names:
                todo.append(names[0])
    return seen


def test_every_program_and_library_is_in_the_containerfile():
    stage = staged_install()
    bindir = os.path.join(stage, "usr", "local", "bin")
    installed = set(os.listdir(bindir))
    assert PROGRAMS <= installed, f"cmake --install lacks {sorted(PROGRAMS - installed)}"
    with open(CONTAINERFILE) as f:
        text = f.read()
    assert "COPY --from=build /stage/usr/local/bin/ /usr/local/bin/" in text, \
        "the image must take every program cmake --install installs"
    runtime = text.split("FROM ", 2)[2]  # the last stage: what the image holds
    install = re.search(r"apt-get install(.*?)&&", runtime, re.S)
    assert install, "the run-time stage installs no Debian packages"
    named = {w for w in install.group(1).split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w)}
    have = depends_closure(named)
    libs = linked_libraries(os.path.join(bindir, p) for p in sorted(installed))
    # a sanitizer build's runtime is the build's own, not the image's (a Release build)
    need = {package_of(lib) for lib in libs} - {"libasan8", "libubsan1", "liblsan0"}
    assert need - have == set(), \
        f"the Containerfile's run-time stage lacks the packages of {sorted(need - have)}"
    assert re.search(r"^USER\s+\d+:\d+\s*$", text, re.M), "the USER must be numeric uid:gid"
    assert containerfile_user() == f"{UID}:{GID}", containerfile_user()


def test_containerignore_keeps_state_keys_and_builds_out():
    with open(os.path.join(SRC, ".containerignore")) as f:
        lines = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    for want in [".git", "var/", "build/", "*.cert_secret", "keys/", "**/node_modules/"]:
        assert want in lines, f".containerignore lacks {want}"


class Buildah:
    """buildah with its storage under the test's scratch folder (vfs: no overlay needed)."""

    def __init__(self, folder):
        if not shutil.which("buildah"):
            raise samtest.Skip("buildah is not installed (Debian package buildah)")
        self.folder = folder
        self.base = ["buildah", "--root", os.path.join(folder, "storage"), "--runroot",
                     os.path.join(folder, "run"), "--storage-driver", "vfs"]
        r = subprocess.run(self.base + ["from", "scratch"], capture_output=True, text=True,
                           timeout=120 * samtest.SLOW)
        if r.returncode != 0:
            raise samtest.Skip(f"buildah from scratch fails here: {r.stderr.strip()}")
        self.containers = [r.stdout.strip()]

    def __call__(self, *args):
        r = subprocess.run(self.base + list(args), capture_output=True, text=True,
                           timeout=300 * samtest.SLOW)
        assert r.returncode == 0, f"buildah {' '.join(args)}: {r.stderr}"
        return r.stdout.strip()

    def run(self, name, image, args, volumes=(), env=()):
        """args run in a new container of the image, as the image's user, in the background
        (one container a process: buildah runs in one container disturb each other)."""
        container = self("from", "--name", name, image)
        self.containers.append(container)
        log = open(os.path.join(self.folder, f"{name}.log"), "ab")
        cmd = self.base + ["run", "--isolation", "chroot"]
        for host, inside in volumes:
            cmd += ["-v", f"{host}:{inside}"]
        for e in env:
            cmd += ["--env", e]
        # a session of its own, so that a failed test can kill the whole group
        p = subprocess.Popen(cmd + [container, "--"] + list(args), stdout=log, stderr=log,
                             start_new_session=True)
        p.logpath = log.name
        return p

    def cleanup(self):
        for c in self.containers:
            subprocess.run(self.base + ["rm", c], capture_output=True, timeout=120)
        subprocess.run(self.base + ["rmi", "--all", "--force"], capture_output=True,
                       timeout=120)


def build_image(b, stage):
    """The image, from scratch: the installed programs, their libraries, the configurations."""
    ctr = b.containers[0]
    root = b("mount", ctr)
    shutil.copytree(os.path.join(stage, "usr", "local"), os.path.join(root, "usr", "local"),
                    symlinks=True)
    bindir = os.path.join(root, "usr", "local", "bin")
    for lib in linked_libraries(os.path.join(bindir, p) for p in sorted(os.listdir(bindir))):
        os.makedirs(os.path.dirname(root + lib), exist_ok=True)
        shutil.copy(lib, root + lib)  # the file the link names, followed
    shutil.copytree(os.path.join(SRC, "deploy", "config"), os.path.join(root, "etc", "samordna"))
    os.makedirs(os.path.join(root, "tmp"), mode=0o1777)
    data = os.path.join(root, "var", "lib", "samordna")
    os.makedirs(data, mode=0o700)
    os.chown(data, UID, GID)
    b("umount", ctr)
    b("config", "--user", containerfile_user(), "--workingdir", "/var/lib/samordna",
      "--cmd", "samordna-broker --config /etc/samordna/broker.cfg", ctr)
    image = b("commit", "--rm", ctr, "samordna-scratch")
    b.containers = []
    return image


def secret_folder(folder, files):
    """A folder laid out as the kubelet mounts a Secret: the files in a hidden timestamped
    folder, ..data a symlink to it, and each name a symlink through ..data."""
    hidden = os.path.join(folder, "..2026_01_01_00_00_00.000000001")
    os.makedirs(hidden)
    for name, path in files.items():
        shutil.copy(path, os.path.join(hidden, name))
        os.chmod(os.path.join(hidden, name), 0o440)
        os.chown(os.path.join(hidden, name), 0, GID)
        os.symlink(os.path.join("..data", name), os.path.join(folder, name))
    os.symlink(os.path.basename(hidden), os.path.join(folder, "..data"))
    return folder


def has_metrics(program):
    r = subprocess.run([os.path.join(samtest.BIN, program), "--help"], capture_output=True,
                       text=True, timeout=30)
    return "--metrics" in r.stdout


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def inside(p):
    """The pid of the program buildah runs for p: the descendant that runs args[0]. (A
    signal to buildah would not do: it kills what it runs rather than pass SIGTERM on.)"""
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    todo, program = [p.pid], os.path.basename(p.args[p.args.index("--") + 1])
    while todo:
        pid = todo.pop()
        try:
            if os.readlink(f"/proc/{pid}/exe").endswith("/" + program):
                return pid
        except OSError:
            pass
        todo += children.get(pid, [])
    raise AssertionError(f"{program} is not running under buildah run")


def stop(p):
    """SIGTERM to the program in the container; buildah's exit after it is waited for."""
    if p.poll() is None:
        os.kill(inside(p), signal.SIGTERM)
    try:
        p.wait(30 * samtest.SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError(f"{p.args[-1]} did not stop within 30 s of SIGTERM")
    return p.returncode


def test_image_from_scratch_runs_brokers_and_a_service():
    d = samtest.scratch("container")
    stage = staged_install()
    b = Buildah(d)
    procs = []
    try:
        image = build_image(b, stage)
        assert b("inspect", "--format", "{{.OCIv1.Config.User}}", image) == f"{UID}:{GID}"

        keys = os.path.join(d, "made")
        broker_pub, broker_sec = deploy_test.keys(keys, "broker", "broker", "broker")
        reg_pub, reg_sec = deploy_test.keys(keys, "fmov", "service", "registry", ["registry"])
        admin_pub, admin_sec = deploy_test.keys(keys, "fmov", "admin", "admin")
        # The Secrets of docs/operations.md, as the kubelet would mount them.
        broker_key = secret_folder(os.path.join(d, "broker-key"), {"broker.secret": broker_sec})
        trusted = secret_folder(os.path.join(d, "trusted"),
                                {"registry.cert": reg_pub, "admin.cert": admin_pub})
        reg_keys = secret_folder(os.path.join(d, "registry-key"),
                                 {"registry.secret": reg_sec, "broker.public": broker_pub})
        data = os.path.join(d, "data")
        os.makedirs(data, mode=0o700)
        os.chown(data, UID, GID)

        endpoints, metrics = [], []
        for i in range(2):
            port, mport = samtest.free_port(), samtest.free_port()
            endpoints.append(f"tcp://127.0.0.1:{port}")
            metrics.append(mport)
            procs.append(b.run(f"broker-{i}", image, [
                "samordna-broker", "--config", "/etc/samordna/broker.cfg",
                "--bind", endpoints[-1]],
                volumes=[(broker_key, "/etc/samordna/keys:ro"),
                         (trusted, "/etc/samordna/trusted:ro")],
                env=[f"SAMORDNA_METRICS=127.0.0.1:{mport}",
                     "SAMORDNA_CURVE_DIR=/etc/samordna/trusted"]))
        for mport in metrics:
            samtest.wait_for(lambda: http_status(mport, "/healthz") == 200, 30,
                             f"the broker's /healthz on {mport}")
            samtest.wait_for(lambda: http_status(mport, "/readyz") == 200, 30,
                             f"the broker's /readyz on {mport}")
        reg_metrics = samtest.free_port()
        procs.append(b.run("registry", image, [
            "samordna-registry", "--config", "/etc/samordna/registry.cfg"],
            volumes=[(reg_keys, "/etc/samordna/keys:ro"), (data, "/var/lib/samordna")],
            env=["SAMORDNA_BROKER=" + ",".join(endpoints),
                 f"SAMORDNA_METRICS=127.0.0.1:{reg_metrics}"]))
        for ep in endpoints:
            samtest.wait_for(lambda: procs[-1].poll() is not None
                             or deploy_test.pings(ep, "registry", admin_sec, broker_pub), 30,
                             f"the registry through the broker at {ep}")
            assert procs[-1].poll() is None, open(procs[-1].logpath).read()
        if has_metrics("samordna-registry"):  # the services' operator port, where built
            samtest.wait_for(lambda: http_status(reg_metrics, "/readyz") == 200, 30,
                             "the registry's /readyz")
        store = os.path.join(data, "registry")
        owners = {os.stat(os.path.join(store, f)).st_uid for f in os.listdir(store)}
        assert owners == {UID}, f"the store was written as {owners}, not the image's user"
        for p in reversed(procs):  # the registry first, as an operator would
            assert stop(p) == 0, f"{p.args[-3:]} exited {p.returncode}:\n" + \
                open(p.logpath).read()
        for i in range(2):
            with open(procs[i].logpath) as f:
                log = f.read()
            assert "broker.stopped" in log, f"broker-{i} did not stop cleanly:\n{log}"
            assert "trusted_keys=2" in log, f"broker-{i} did not read the Secret's layout:\n{log}"
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        b.cleanup()


if __name__ == "__main__":
    samtest.main()
