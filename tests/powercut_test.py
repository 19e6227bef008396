"""Durability against a power cut, not only a process crash.

A kill -9 proves little about syncing: the operating system keeps what the process wrote, so
every kill -9 test passes with --nosync too. Here the registry's store lives on powercut_fs
(tests/tools/powercut_fs.c), a FUSE file system that keeps every write in its own memory
until the file is fsynced (fdatasync, msync or an O_DSYNC write count too; close does not)
and throws all of the unsynced part away on a simulated power cut: only what was synced is
in the backing folder. After the cut, every process is killed, the dead mount is unmounted
and the backing folder mounted afresh, so no page cache can hide a loss.

The registry runs three times in the one test, under load (WINDOW publishes always in
flight). Each session waits for ACKED acknowledgements, then the power is cut:
  - default mode, cut at once: every acknowledged event is there after the cut, with the
    sequence number it was acknowledged with;
  - default mode, cut at the next sync: powercut_fs cuts when the registry asks for the sync
    of a commit whose pages are written, so that batch is lost; none of it may have been
    acknowledged. This is what tells "acknowledged after the sync" from "acknowledged, then
    synced" (which a cut at an arbitrary moment almost never catches);
  - --nosync, cut at once: the same check finds acknowledged events missing, which shows it
    can fail. Nothing in that mode syncs (MDB_NOSYNC skips the fdatasync of each commit and
    writes the meta page without O_DSYNC), so every event of the session is lost; the test
    asserts only that some acknowledged event is.
After a cut the test sends one more publish and reads every reply up to that one's (the
registry answers in order, refusing what it can no longer store), so an acknowledgement the
registry sent before the cut is counted even if it was still on its way.
A baseline published and stopped in order before each session must survive every cut: the
cut drops what was not synced, not the store.

The first test checks the file system itself, with plain file calls: what each kind of sync
keeps and what a cut drops.

Where FUSE cannot run (no /dev/fuse, no permission to mount, powercut_fs not built because
libfuse3 was missing) the tests raise samtest.Skip and the module exits 77: CTest counts it
as skipped, never as passed.
"""
import errno
import mmap
import os
import re
import shutil
import subprocess
import time

import samtest
from samordna.v1 import events_pb2, registry_pb2 as R

FS = os.path.join(samtest.BIN, "powercut_fs")
FS_NO_MOUNT = 3  # powercut_fs's exit status when the mount itself failed

BASELINE = 200  # events published and synced before the session under test
ACKED = 2000    # acknowledgements the session under test waits for before the cut
WINDOW = 600    # publishes kept in flight all the while (registry credit: 256)


def mount_points():
    """Every mount point of this process's namespace, as paths."""
    with open("/proc/self/mountinfo") as f:
        return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
                for line in f]


def unmount(path):
    """Unmounts a mount whose server is gone or going; lazily if something still holds it."""
    for cmd in (["fusermount3", "-u", path], ["fusermount3", "-u", "-z", path],
                ["umount", path], ["umount", "-l", path]):
        if path not in mount_points():
            break
        if shutil.which(cmd[0]):
            subprocess.run(cmd, capture_output=True, timeout=30 * samtest.SLOW)
    samtest.wait_for(lambda: path not in mount_points(), 10, f"{path} to be unmounted")


class PowerCutFS:
    """powercut_fs showing <testdata>/NAME/backing at <testdata>/NAME/mnt."""

    def __init__(self, name):
        base = os.path.realpath(os.path.join(samtest.TESTDATA, name))
        for mp in mount_points():  # left by an earlier run that was killed
            if mp == base or mp.startswith(base + "/"):
                unmount(mp)
        samtest.scratch(name)
        self.backing = os.path.join(base, "backing")
        self.mnt = os.path.join(base, "mnt")
        os.makedirs(self.backing)
        os.makedirs(self.mnt)
        self.proc = None

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def mounted(self):
        return self.mnt in mount_points()

    def mount(self):
        if not os.path.exists(FS):
            raise samtest.Skip("powercut_fs was not built: libfuse3 (pkg-config fuse3) was not "
                               "found when the build was configured")
        if not os.path.exists("/dev/fuse"):
            raise samtest.Skip("this machine has no /dev/fuse")
        self.proc = samtest.Proc("powercut_fs", ["powercut_fs", "--exit-with-parent",
                                                 self.backing, self.mnt])
        samtest.wait_for(lambda: self.mounted() or not self.proc.alive(), 10, "the FUSE mount")
        if not self.mounted():
            code = self.proc.p.wait()
            if code == FS_NO_MOUNT:
                raise samtest.Skip("FUSE cannot mount here: " +
                                   " / ".join(self.proc.logtext().strip().splitlines()[-3:]))
            raise AssertionError(f"powercut_fs ended with {code}: {self.proc.logtext()}")
        os.stat(self.mnt)  # answered by powercut_fs once the kernel's handshake is done

    def _control(self, word):
        """Writes `word` to the control file: True when powercut_fs answered, False when it
        ended instead (then the write fails, as everything on the mount does after a cut)."""
        fd = os.open(self.path(".powercut"), os.O_WRONLY)
        try:
            return os.write(fd, word) == len(word)
        except OSError as e:
            assert e.errno in (errno.ECONNABORTED, errno.ENOTCONN), e
            return False
        finally:
            try:
                os.close(fd)
            except OSError:
                pass  # the connection is gone

    def cut(self):
        """The power cut, now; returns powercut_fs's report of it."""
        assert not self._control(b"cut"), "powercut_fs answered the write that cuts the power"
        return self.cut_report()

    def arm(self):
        """The next sync of a changed file cuts the power instead (see powercut_fs.c)."""
        assert self._control(b"cut-at-sync"), "powercut_fs refused cut-at-sync"

    def cut_report(self):
        """Once powercut_fs has ended after a cut: its report ("at a sync: dropped …")."""
        try:
            code = self.proc.p.wait(10 * samtest.SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError("powercut_fs still runs after the cut")
        report = [ln for ln in self.proc.logtext().splitlines() if "power cut " in ln]
        assert code == 0 and report, f"powercut_fs ended with {code}: {self.proc.logtext()}"
        return report[-1].split("power cut ", 1)[1]

    def unmount_dead(self):
        """After a cut, once the processes that used the mount are dead."""
        assert not self.proc.alive()
        unmount(self.mnt)

    def stop(self):
        """An orderly stop: powercut_fs writes everything back, unmounts and ends with 0 (and,
        under the sanitizers, without a leak)."""
        code = self.proc.stop()
        assert code == 0, f"powercut_fs ended with {code}: {self.proc.logtext()[-2000:]}"
        assert not self.mounted(), "powercut_fs ended and left its mount"

    def cleanup(self):
        """In every case, after the processes on the mount are dead: no mount is left."""
        if self.proc is not None and self.proc.alive():
            try:
                self.proc.stop()
            except AssertionError:
                pass  # it was killed instead
        if self.mounted():
            unmount(self.mnt)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data, sync=None, flags=0):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flags, 0o644)
    try:
        assert os.write(fd, data) == len(data)
        if sync:
            sync(fd)
    finally:
        os.close(fd)


def test_the_file_system_keeps_only_what_was_synced():
    fs = PowerCutFS("powercut-fs")
    try:
        fs.mount()
        p = fs.path
        write_file(p("closed"), b"c" * 10000)  # close() is not a sync
        write_file(p("fsynced"), b"f" * 10000, os.fsync)
        write_file(p("fdatasynced"), b"d" * 10000, os.fdatasync)
        write_file(p("o-dsync"), b"o" * 5000, flags=os.O_DSYNC)
        os.mkdir(p("folder"))
        write_file(p("folder", "inner"), b"i" * 100, os.fsync)
        for name, synced in (("mapped-msync", True), ("mapped", False)):
            fd = os.open(p(name), os.O_RDWR | os.O_CREAT, 0o644)
            os.ftruncate(fd, 8192)
            os.fsync(fd)  # the size and its zeros are durable; what is mapped next may not be
            with mmap.mmap(fd, 8192) as m:
                m[100:105] = b"mmap!"
                if synced:
                    m.flush()  # msync(MS_SYNC)
            os.close(fd)
        write_file(p("overwritten"), b"1" * 9000, os.fsync)
        with open(p("overwritten"), "r+b") as f:
            f.seek(10)
            f.write(b"2" * 5000)  # then closed without a sync, and shrunk without one
        os.truncate(p("overwritten"), 5)
        write_file(p("shrunk-grown"), b"x" * 9000, os.fsync)
        with open(p("shrunk-grown"), "r+b") as f:
            f.truncate(100)
            f.seek(5000)
            f.write(b"y")
            f.flush()
            os.fsync(f.fileno())  # nothing of the old bytes past 100 may come back
        # Before the cut, every read sees what was written (powercut_fs's own copy: a fresh
        # open drops the kernel's cached pages).
        assert read_file(p("closed")) == b"c" * 10000
        assert read_file(p("overwritten")) == b"1" * 5
        assert read_file(p("mapped"))[100:105] == b"mmap!"
        assert os.path.getsize(p("closed")) == 10000
        report = fs.cut()
        print(f"     cut: {report}", flush=True)
        fs.unmount_dead()
        fs.mount()
        assert os.path.getsize(p("closed")) == 0, "an unsynced write survived the cut"
        assert read_file(p("fsynced")) == b"f" * 10000
        assert read_file(p("fdatasynced")) == b"d" * 10000
        assert read_file(p("o-dsync")) == b"o" * 5000
        assert read_file(p("folder", "inner")) == b"i" * 100
        assert read_file(p("mapped-msync")) == b"\0" * 100 + b"mmap!" + b"\0" * 8087
        assert read_file(p("mapped")) == b"\0" * 8192, "an unsynced mmap write survived"
        assert read_file(p("overwritten")) == b"1" * 9000, "an unsynced overwrite survived"
        assert read_file(p("shrunk-grown")) == b"x" * 100 + b"\0" * 4900 + b"y"
        assert sorted(os.listdir(fs.mnt)) == sorted(
            ["closed", "fsynced", "fdatasynced", "o-dsync", "folder", "mapped-msync", "mapped",
             "overwritten", "shrunk-grown"]), os.listdir(fs.mnt)
        # Armed, the cut waits for a sync of a changed file: not a clean one, not a write.
        fs.arm()
        with open(p("fsynced"), "r+b") as f:
            os.fsync(f.fileno())
        write_file(p("armed"), b"a" * 3000)
        assert fs.proc.alive(), "powercut_fs cut before any sync of a changed file"
        fd = os.open(p("armed"), os.O_WRONLY)
        try:
            os.fsync(fd)
            raise AssertionError("the sync that was to cut the power was answered")
        except OSError as e:
            assert e.errno in (errno.ECONNABORTED, errno.ENOTCONN), e
        finally:
            try:
                os.close(fd)
            except OSError:
                pass  # the connection is gone
        report = fs.cut_report()
        assert report.startswith("at a sync: dropped 1 unsynced pages (4096 bytes)"), report
        fs.unmount_dead()
        fs.mount()
        assert os.path.getsize(p("armed")) == 0, "the write of the sync that cut survived"
        assert read_file(p("fsynced")) == b"f" * 10000
        # An orderly stop writes everything back, as unmounting a real file system does.
        write_file(p("at-stop"), b"s" * 3000)
        fs.stop()
        assert read_file(os.path.join(fs.backing, "at-stop")) == b"s" * 3000
        fs.mount()
        assert read_file(p("at-stop")) == b"s" * 3000
        fs.stop()
    finally:
        fs.cleanup()


# ---- the registry across a power cut --------------------------------------------------------

def person_event(eid):
    person = R.Person(id="p-" + eid, name="Person " + eid)
    return samtest.publish_req("no.samordna.registry.person.registered", person, eid=eid)


class Publisher:
    """person.registered events published through one client, `window` kept in flight."""

    def __init__(self, c, prefix, window):
        self.c, self.prefix, self.window = c, prefix, window
        self.sent = {}     # request id -> event id
        self.acked = {}    # event id -> the seq it was acknowledged with
        self.refused = {}  # event id -> (status code, message)

    def in_flight(self):
        return len(self.sent) - len(self.acked) - len(self.refused)

    def send(self):
        eid = f"{self.prefix}-{len(self.sent)}"
        self.sent[self.c.send("registry", "events.publish", person_event(eid))] = eid
        return eid

    def fill(self, total=None):
        while self.in_flight() < self.window and (total is None or len(self.sent) < total):
            self.send()

    def take(self, timeout):
        """The next reply, recorded; None when none came within `timeout` seconds."""
        if not self.c.sock.poll(int(timeout * 1000)):
            return None
        rep = self.c.recv()
        eid = self.sent.get(rep.id)
        assert eid is not None, f"a reply to request {rep.id}, which was never sent"
        if rep.status.code == 200:
            pr = events_pb2.PublishReply()
            pr.ParseFromString(rep.body)
            assert not pr.duplicate and pr.seq > 0, (eid, pr)
            self.acked[eid] = pr.seq
        else:
            self.refused[eid] = (rep.status.code, rep.status.message)
        return rep

    def run(self, want, total):
        """Until `want` are acknowledged, sending at most `total`; all must be."""
        while len(self.acked) < want:
            self.fill(total)
            assert self.take(20 * samtest.SLOW) is not None, \
                f"no reply within 20 s, {len(self.acked)} acknowledged"
            assert not self.refused, f"refused before any cut: {list(self.refused.items())[:3]}"

    def keep_up_until(self, done, what, timeout=30):
        """Keeps the window full until done() (checked between replies)."""
        end = time.time() + timeout * samtest.SLOW
        while not done():
            assert time.time() < end, f"timed out after {timeout}s waiting for {what}"
            self.fill()
            self.take(0.05)

    def drain(self, alive, timeout=30):
        """After a cut: one more publish, then replies until its own has come. The registry
        answers in order, so by then every reply it sent before the cut is in, whatever it
        answered. If the registry ended instead (nothing it had sent is then owed to us),
        what has arrived is taken."""
        last = self.send()
        end = time.time() + timeout * samtest.SLOW
        while last not in self.acked and last not in self.refused and alive():
            assert time.time() < end, f"the registry neither answered nor ended in {timeout}s"
            self.take(0.05)
        while self.take(0) is not None:
            pass


def read_outbox(c):
    """[(seq, event id)] of the whole outbox."""
    got = []
    while True:
        rep, rr = c.call("registry", "events.read",
                         events_pb2.ReadRequest(after_seq=got[-1][0] if got else 0, max=1000),
                         events_pb2.ReadReply, timeout=20)
        assert rep.status.code == 200, rep.status.message
        if not rr.events:
            return got
        got += [(e.seq, e.event.id) for e in rr.events]


def power_cut_run(name, flags=(), at_sync=False):
    """A baseline synced and stopped in order; then a registry session with `flags` under
    load, ended by a power cut (now, after ACKED acknowledgements, or at the first sync after
    them); then the store as the registry finds it when the power is back. Returns what was
    acknowledged, sent and kept, and powercut_fs's report of the cut."""
    fs = PowerCutFS(name)
    procs, clients = [], []

    def start(*extra):
        brk, ep = samtest.broker()
        reg = samtest.service("registry", ep, fs.path("store"), *extra)
        c = samtest.Client(ep)
        procs.extend([brk, reg])
        clients.append(c)
        return ep, reg, c

    try:
        fs.mount()
        ep, reg, c = start()
        base = Publisher(c, "base", 50)
        base.run(BASELINE, BASELINE)
        assert reg.stop() == 0, "the baseline registry did not stop in order"
        reg = samtest.service("registry", ep, fs.path("store"), *flags)
        procs.append(reg)
        pub = Publisher(c, name, WINDOW)
        pub.run(ACKED, ACKED + WINDOW)
        if at_sync:  # the cut falls in the next commit, between its writes and its sync
            fs.arm()
            pub.keep_up_until(lambda: not fs.proc.alive(), "a sync to cut at")
            report = fs.cut_report()
        else:  # the cut falls with WINDOW publishes in flight
            report = fs.cut()
        pub.drain(reg.alive)
        for p in procs:  # a power cut ends every process
            p.kill9()
        for cl in clients:
            cl.close()
        fs.unmount_dead()
        # The power is back: a fresh mount, a fresh broker, the registry in its default mode.
        fs.mount()
        _, reg, c = start()
        stored = read_outbox(c)
        assert reg.stop() == 0
        for p in procs:  # the last broker; the others are dead already
            p.stop()
        fs.stop()
        return {"base": base.acked, "acked": pub.acked, "sent": list(pub.sent.values()),
                "refused": pub.refused, "stored": stored, "report": report}
    finally:
        for p in procs:
            p.kill9()
        for cl in clients:
            cl.close()
        fs.cleanup()


def lost_acknowledged(run):
    """The check itself: acknowledged events missing after the cut, or kept under another
    seq than the one acknowledged. Also what holds in every mode: the outbox is contiguous
    from 1, the synced baseline is whole, and nothing in it was never published."""
    stored = {eid: seq for seq, eid in run["stored"]}
    seqs = [seq for seq, _ in run["stored"]]
    assert seqs == list(range(1, len(seqs) + 1)), f"outbox seqs not contiguous: {seqs[:10]}"
    assert all(stored.get(eid) == seq for eid, seq in run["base"].items()), \
        "the synced baseline did not survive the cut"
    unknown = set(stored) - set(run["base"]) - set(run["sent"])
    assert not unknown, f"events nobody published: {sorted(unknown)[:5]}"
    return sorted((eid for eid, seq in run["acked"].items() if stored.get(eid) != seq),
                  key=lambda e: run["acked"][e])


def summary(what, run, lost):
    kept = len(run["stored"]) - len(run["base"])
    unanswered = len(run["sent"]) - len(run["acked"]) - len(run["refused"])
    return (f"     {what}: {len(run['acked'])} acknowledged, {len(lost)} of them lost; "
            f"{kept} kept; {len(run['refused'])} refused after the cut, {unanswered} "
            f"unanswered; "
            f"cut {run['report'].split('; since')[0]}")


def test_acknowledged_events_survive_a_power_cut_only_when_synced():
    for what, run in (("default, cut now", power_cut_run("powercut-sync")),
                      ("default, cut at a sync", power_cut_run("powercut-at-sync",
                                                               at_sync=True))):
        lost = lost_acknowledged(run)
        print(summary(what, run, lost), flush=True)
        assert not lost, (f"{what}: {len(lost)} acknowledged events lost in a power cut, "
                          f"first {lost[:5]}: the registry acknowledged before its commit "
                          f"was synced")
        assert not run["report"].startswith("at a sync: dropped 0 "), run["report"]

    run = power_cut_run("powercut-nosync", ["--nosync"])
    lost = lost_acknowledged(run)
    print(summary("--nosync, cut now", run, lost), flush=True)
    assert lost, ("with --nosync no acknowledged event was lost in the power cut: the check "
                  "above cannot tell a synced store from an unsynced one")
    assert not run["report"].startswith("on demand: dropped 0 "), run["report"]


if __name__ == "__main__":
    samtest.main()
