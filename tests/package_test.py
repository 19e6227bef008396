"""The Debian package and the install, as an operator gets them: tools/package.sh packages
this build tree; the package is inspected with dpkg-deb, installed with dpkg into a scratch
root (its postinst run there: the samordna user, its folders, nothing enabled), the units
in that root are verified by systemd-analyze and rated by its security check (2.0 or
better), and a C program is built against the installed library through pkg-config.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import samtest  # noqa: E402

BUILD = os.path.dirname(samtest.BIN)
PROGRAMS = ["samordna-broker", "samordna-registry", "samordna-status", "samordna-grants",
            "samordna-notify", "samctl", "samordna-echo", "samordna-bench"]
UNITS = ["samordna-broker.service", "samordna@.service"]
_deb = []


def run(*args, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{args}: {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout


def deb():
    if not _deb:
        for tool in ("dpkg-deb", "dpkg", "cpack", "systemd-analyze"):
            if not shutil.which(tool):
                raise samtest.Skip(f"{tool} is not installed")
        out = run(os.path.join(samtest.SRC, "tools", "package.sh"),
                  env=dict(os.environ, SAMORDNA_PACKAGE_BUILD=BUILD))
        _deb.append(out.strip().splitlines()[-1])
    return _deb[0]


def installed_root():
    root = samtest.scratch("package-root")
    for d in ("var/lib/dpkg/updates", "var/lib/dpkg/info", "etc"):
        os.makedirs(os.path.join(root, d))
    open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
    out = run("dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
              "--log=/dev/null", "-i", deb())
    return root, out


def test_the_package_holds_everything_and_depends_on_debian_libraries():
    path = deb()
    info = run("dpkg-deb", "-I", path)
    depends = re.search(r"^ Depends: (.*)$", info, re.M).group(1)
    for lib in ("libzmq5", "libczmq4", "libprotobuf-c1", "liblmdb0", "libjansson4", "libcurl4",
                "libsodium23", "libsystemd0"):
        assert lib in depends, (lib, depends)
    files = run("dpkg-deb", "-c", path)
    for want in [f"./usr/bin/{p}" for p in PROGRAMS] + [
            f"./usr/lib/systemd/system/{u}" for u in UNITS] + [
            "./usr/lib/sysusers.d/samordna.conf", "./usr/lib/tmpfiles.d/samordna.conf",
            "./usr/lib/pkgconfig/samordna.pc", "./usr/lib/libsamordna.a",
            "./usr/include/samordna/sam_client.h",
            "./usr/include/samordna/samordna/v1/envelope.pb-c.h",
            "./usr/share/samordna/proto/samordna/v1/events.proto",
            "./usr/share/doc/samordna/README.md", "./usr/share/doc/samordna/security.md",
            "./usr/share/doc/samordna/examples/config/registry.cfg",
            "./usr/share/doc/samordna/examples/ostfold-2019.json"]:
        assert re.search(r"\s" + re.escape(want) + r"$", files, re.M), f"{want} missing"
    assert "powercut_fs" not in files, "a test tool is packaged"
    postinst = run("dpkg-deb", "--info", path, "postinst")
    commands = [line for line in postinst.splitlines() if not line.lstrip().startswith("#")]
    assert not any(re.search(r"systemctl (enable|start)|deb-systemd-helper enable", line)
                   for line in commands), postinst


def test_installed_into_a_root_it_makes_the_user_and_folders_and_enables_nothing():
    root, out = installed_root()
    passwd = open(os.path.join(root, "etc/passwd")).read()
    assert re.search(r"^samordna:x:\d+:\d+:", passwd, re.M), passwd
    state = os.stat(os.path.join(root, "var/lib/samordna"))
    assert oct(state.st_mode & 0o777) == "0o700", oct(state.st_mode)
    assert os.path.isdir(os.path.join(root, "etc/samordna/keys/trusted"))
    wants = os.path.join(root, "etc/systemd/system")
    assert not os.path.exists(wants) or not any(
        "samordna" in f for _, _, fs in os.walk(wants) for f in fs), "a unit was enabled"
    for u in UNITS:
        text = open(os.path.join(root, "usr/lib/systemd/system", u)).read()
        assert "ExecStart=/usr/bin/samordna-" in text, text


def test_the_units_verify_and_are_hardened():
    root, _ = installed_root()
    check = samtest.scratch("package-units")
    names = []
    for u in UNITS:
        text = open(os.path.join(root, "usr/lib/systemd/system", u)).read()
        # verify needs the programs where ExecStart says: point it into the scratch root
        name = u.replace("@.", "@registry.")
        with open(os.path.join(check, name), "w") as f:
            f.write(text.replace("/usr/bin/", os.path.join(root, "usr/bin") + "/"))
        names.append(name)
    run("systemd-analyze", "verify", *[os.path.join(check, n) for n in names])
    for n in names:
        out = run("systemd-analyze", "security", "--offline=yes", f"--root={root}",
                  n.replace("@registry.", "@registry."))
        level = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
        print(f"     ({n}: exposure {level})")
        assert level <= 2.0, (n, level, out[-3000:])
    for u in UNITS:
        text = open(os.path.join(root, "usr/lib/systemd/system", u)).read()
        for key in ("ProtectSystem=strict", "PrivateDevices=yes", "RestrictAddressFamilies=",
                    "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes",
                    "LockPersonality=yes", "User=samordna"):
            assert key in text, (u, key)
    for u in UNITS:
        text = open(os.path.join(root, "usr/lib/systemd/system", u)).read()
        assert "Type=notify" in text and "ExecReload=/bin/kill -HUP $MAINPID" in text, u


def test_a_program_builds_against_the_installed_library_with_pkg_config():
    root, _ = installed_root()
    prog = samtest.scratch("package-client")
    src = os.path.join(prog, "client.c")
    with open(src, "w") as f:
        f.write("""#include <sam_check.h>
#include <sam_client.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    char out[64];
    const char *bad = "a\\nb\\xff";
    sam_check_escape(bad, 100, out, sizeof out);
    char err[128];
    sam_client_t *c = sam_client_new(NULL, 0, NULL, err, sizeof err);
    sam_client_destroy(&c);
    puts(out);
    return sam_check_text_why("ok", 2) == NULL ? 0 : 1;
}
""")
    pc = os.path.join(root, "usr/lib/pkgconfig")
    flags = run("pkg-config", "--define-prefix", "--cflags", "--libs", "samordna",
                env=dict(os.environ, PKG_CONFIG_PATH=pc, PKG_CONFIG_LIBDIR=pc + ":" +
                         ":".join(["/usr/lib/x86_64-linux-gnu/pkgconfig", "/usr/lib/pkgconfig",
                                   "/usr/share/pkgconfig"]))).split()
    assert any(root in fl for fl in flags), flags
    exe = os.path.join(prog, "client")
    sanitize = ["-fsanitize=address,undefined"] if samtest.SANITIZED else []
    run("cc", "-o", exe, src, *flags, *sanitize)
    assert run(exe).strip() == "a\\nb\\xff", run(exe)  # a newline and a bad byte, escaped


if __name__ == "__main__":
    samtest.main()
