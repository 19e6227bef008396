"""The example configuration files of deploy/config/ as operators install them.

Each process is started with --config deploy/config/<name>.cfg and only what cannot exist on
a test machine given on the command line (endpoints, data folder, certificate paths, which
win over the file); the broker runs with CURVE like a deployment and every service must
answer ping through it. Every option a program lists in --help is in its file, or on the
short list of options left out on purpose, so a new option cannot go undocumented. A
misspelt key must stop the program with a message naming it.
"""
import os
import re
import shutil
import subprocess

import samtest

CONFIG = os.path.join(samtest.SRC, "deploy", "config")
SERVICES = ["registry", "status", "grants", "notify"]
# Not in the files on purpose: weaker security or durability must be asked for by hand,
# --instance defaults to host-pid, and the rest are not options of a running process.
LEFT_OUT = {"insecure", "nosync", "instance", "config", "help", "help-format", "version", "now"}


def cfg(name):
    return os.path.join(CONFIG, name + ".cfg")


def samctl(*args):
    r = subprocess.run([os.path.join(samtest.BIN, "samctl"), *args], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def keys(folder, agency, role, name, services=()):
    """Writes a certificate pair with `samctl keys new`; returns (public, secret) paths."""
    samctl("keys", "new", "--agency", agency, "--role", role, "--name", name, "--out", folder,
           *[a for s in services for a in ("--service", s)])
    public = os.path.join(folder, name + ".cert")
    return public, public + "_secret"


def options(program):
    """The long options a program lists in --help."""
    r = subprocess.run([os.path.join(samtest.BIN, program), "--help"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return set(re.findall(r"^  --([a-z0-9-]+)", r.stdout, re.M))


def keys_in(path):
    """The top-level keys of a ZPL file (blocks included, their children not)."""
    with open(path) as f:
        return {m.group(1) for m in (re.match(r"([a-z0-9-]+)\s*(=|$)", line) for line in f)
                if m}


def test_every_option_is_in_its_file():
    for name in ["broker"] + SERVICES:
        program = "samordna-" + name
        want = options(program) - LEFT_OUT
        have = keys_in(cfg(name))
        assert want - have == set(), f"{name}.cfg lacks {sorted(want - have)}"
        assert have - want == set(), f"{name}.cfg has unknown {sorted(have - want)}"


def test_every_process_starts_from_its_file():
    d = samtest.scratch("deploy-configs")
    folder, trusted = os.path.join(d, "keys"), os.path.join(d, "trusted")
    os.makedirs(trusted)
    broker_public, broker_secret = keys(folder, "broker", "broker", "broker")
    # The services share one service key; the test asks as admin. The broker trusts both.
    service_public, service_secret = keys(folder, "fmov", "service", "services", SERVICES)
    admin_public, admin_secret = keys(folder, "fmov", "admin", "admin")
    for public in [service_public, admin_public]:
        shutil.copy(public, trusted)
    port = samtest.free_port()
    ep = f"tcp://127.0.0.1:{port}"
    # the files' metrics ports are fixed (9100…): a test machine's own may be taken
    broker = samtest.Proc("broker-deploy", ["samordna-broker", "--config", cfg("broker"),
                                            "--bind", ep, "--curve-dir", trusted,
                                            "--cert", broker_secret,
                                            "--metrics", f"127.0.0.1:{samtest.free_port()}"])
    samtest.wait_for(lambda: samtest._port_open(port), 5, f"broker on {ep}")
    procs = []
    for name in SERVICES:
        procs.append(samtest.Proc(f"{name}-deploy",
                                  [f"samordna-{name}", "--config", cfg(name), "--broker", ep,
                                   "--data-dir", os.path.join(d, "data"),
                                   "--cert", service_secret, "--server-key", broker_public,
                                   "--metrics", f"127.0.0.1:{samtest.free_port()}"]))
    for name, proc in zip(SERVICES, procs):
        samtest.wait_for(lambda: not proc.alive() or pings(ep, name, admin_secret,
                                                           broker_public), 15,
                         f"{name} from {name}.cfg")
        assert proc.alive(), f"{name} exited on its deploy config:\n{proc.logtext()}"
    for proc in reversed(procs):  # notify first: it follows the others' outboxes
        assert proc.stop() == 0, proc.logtext()
    assert broker.stop() == 0


def pings(ep, name, secret, server_public):
    def curve(sock):
        sock.curve_publickey, sock.curve_secretkey = z85_pair(secret)
        sock.curve_serverkey = z85_pair(server_public)[0]
    c = samtest.Client(ep, curve=curve)
    try:
        rep, _ = c.call(name, "ping", timeout=0.5)
        return rep.status.code == 200
    except AssertionError:
        return False
    finally:
        c.close()


def z85_pair(path):
    """(public, secret) keys of a certificate file; secret is None in a public one."""
    text = open(path).read()
    public = re.search(r'public-key = "(.{40})"', text).group(1).encode()
    secret = re.search(r'secret-key = "(.{40})"', text)
    return public, secret.group(1).encode() if secret else None


def test_a_misspelt_key_is_refused():
    d = samtest.scratch("deploy-typo")
    for name in ["broker"] + SERVICES:
        with open(cfg(name)) as f:
            text = f.read()
        # Each key of the file in turn, misspelt as a hand edit might.
        for key in re.findall(r"^([a-z0-9-]+)\s*(?:=|$)", text, re.M):
            typo = key + "s"
            bad = os.path.join(d, name + ".cfg")
            with open(bad, "w") as f:
                f.write(re.sub(rf"^{key}(\s*=|$)", rf"{typo}\1", text, flags=re.M))
            r = subprocess.run([os.path.join(samtest.BIN, "samordna-" + name), "--config", bad],
                               capture_output=True, text=True, timeout=30 * samtest.SLOW)
            assert r.returncode != 0, f"{name} accepted '{typo}'"
            assert f"unknown option '{typo}'" in r.stderr, r.stderr


def test_configuration_reference_is_current():
    """docs/configuration.md holds each program's option table as its --help prints it."""
    with open(os.path.join(samtest.SRC, "docs", "configuration.md")) as f:
        doc = f.read()
    marker = ("<!-- Below this line: made by tools/config-doc.sh from the option tables. "
              "Do not edit. -->\n")
    assert marker in doc, "docs/configuration.md lost its marker line"
    want = ""
    for name in ["broker"] + SERVICES + ["gateway"]:
        r = subprocess.run([os.path.join(samtest.BIN, "samordna-" + name), "--help",
                            "--help-format", "markdown"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        want += "\n" + r.stdout
    assert doc.split(marker, 1)[1] == want, \
        "docs/configuration.md is not what the option tables say: run tools/config-doc.sh"


def test_environment_between_flags_and_file():
    """SAMORDNA_* wins over the configuration file and loses to the command line."""
    d = samtest.scratch("deploy-env")
    _, ep = samtest.broker()
    from_file, from_env, from_flag = (os.path.join(d, x) for x in ("file", "env", "flag"))
    conf = os.path.join(d, "registry.cfg")
    with open(conf, "w") as f:
        f.write(f'data-dir = "{from_file}"\nlog-level = "debug"\n')
    env = {"SAMORDNA_BROKER": ep, "SAMORDNA_INSECURE": "1", "SAMORDNA_DATA_DIR": from_env,
           "SAMORDNA_CONFIG": conf, "SAMORDNA_LOG_LEVEL": "warn"}
    p = samtest.Proc("registry-env", ["samordna-registry"], env=env)
    samtest.wait_service(ep, "registry")
    assert os.path.exists(os.path.join(from_env, "registry")), \
        "the registry did not open its store under SAMORDNA_DATA_DIR"
    assert not os.path.exists(from_file), "the file's data-dir won over the environment"
    assert " INFO " not in p.logtext(), "SAMORDNA_LOG_LEVEL=warn was not applied"
    assert p.stop() == 0
    p = samtest.Proc("registry-flag", ["samordna-registry", "--data-dir", from_flag], env=env)
    samtest.wait_service(ep, "registry")
    assert os.path.exists(from_flag), "the command line did not win over the environment"
    assert p.stop() == 0
    r = subprocess.run([os.path.join(samtest.BIN, "samordna-registry")], capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, SAMORDNA_INSECURE="maybe"))
    assert r.returncode == 2 and "SAMORDNA_INSECURE" in r.stderr, (r.returncode, r.stderr)


def test_outbox_recipe_as_documented():
    """The mdb_dump | perl | protoc block of docs/operations.md reads a real registry's
    outbox: run as written, with only its two folders pointed at the test's."""
    for tool in ("mdb_dump", "perl", "protoc"):
        if not shutil.which(tool):
            raise samtest.Skip(f"{tool} is not installed")
    with open(os.path.join(samtest.SRC, "docs", "operations.md")) as f:
        doc = f.read()
    block = re.search(r"<!-- recipe: outbox -->\n```sh\n(.*?)```", doc, re.S)
    assert block, "docs/operations.md lost its outbox recipe"
    d = samtest.scratch("deploy-recipe")
    _, ep = samtest.broker()
    reg = samtest.service("registry", ep, os.path.join(d, "var"))
    # the fixture's registry part: the other services are not running, so samctl gives up
    # on their events after its timeout; what the registry acknowledged is stored
    subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep, "--insecure",
                    "--timeout-ms", "1000", "import",
                    os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")],
                   capture_output=True, timeout=120)
    assert reg.stop() == 0
    script = block.group(1)
    script = re.sub(r"^store=\S+", f"store={os.path.join(d, 'var', 'registry')}", script,
                    flags=re.M)
    script = re.sub(r"^proto=\S+", f"proto={os.path.join(samtest.SRC, 'proto')}", script,
                    flags=re.M)
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "seq: 1" in r.stdout and 'type: "no.samordna.registry.agency.registered"' in r.stdout \
        and 'subject' in r.stdout and "hiof" in r.stdout, r.stdout


if __name__ == "__main__":
    samtest.main()
