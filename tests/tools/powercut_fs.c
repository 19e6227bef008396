/*  powercut_fs — a FUSE file system for testing durability against a power loss.

        powercut_fs [--exit-with-parent] BACKING MOUNTPOINT

    It shows the folder BACKING at MOUNTPOINT, with a disk's volatile write cache modelled in
    between: what a program wrote reaches BACKING only when the program synced it, and a
    simulated power cut throws away everything else. tests/powercut_test.py runs a service
    with its store on it (tests/list/powercut.txt).

    What is volatile, what is durable:
    - File contents and file sizes are volatile. Every write() and truncate(), and every page
      the kernel writes back from a shared writable mmap, lands in this process's memory, a
      copy of each 4 KiB page touched; every later read through the mount sees it (as reads
      see the page cache), and the backing file is not touched.
    - fsync() and fdatasync() on any descriptor of a file make the whole file durable: its
      pages and its size are written to the backing file. So does msync(MS_SYNC), which the
      kernel turns into an fsync after writing the dirty pages back. FUSE passes no range, so
      a sync is of the whole file; fdatasync counts as fsync (it must carry the size anyway
      for the data to be readable). A write through a descriptor opened O_SYNC or O_DSYNC is
      durable when it returns: the kernel follows it with an fsync, and this file system
      syncs such a write itself as well.
    - close() is not a sync: FUSE's flush and release write nothing to the backing file.
    - The namespace is durable at once: creating a file (with size 0), mkdir, unlink,
      rename, link, symlink, chmod, chown and utimens reach the backing folder as they
      happen, as on a file system whose metadata journal commits synchronously. fsync of a
      folder is accepted and has nothing left to do. The tests never depend on a file
      created in the moments before a cut.
    - Power cut: writing "cut" to the control file /.powercut at the root of the mount (it
      is in no listing; a backing file of that name is hidden) drops every unsynced page and
      size change and ends this process at once, without answering that write or any request
      behind it. From then on every operation on the mount fails with ENOTCONN, as if the
      disk were gone, and the processes that used it are to be killed (a power cut kills
      them too). BACKING then holds exactly what was synced. Mount it again, a fresh mount
      so that no page cache of the old one can hide a loss, to see what a machine finds when
      the power comes back. The cut prints one line to stderr first: "power cut: dropped …".
    - Writing "cut-at-sync" instead arms the cut (that write is answered): the next sync of
      a file that has unsynced changes cuts the power instead of syncing, so the cut falls
      where it hurts most, in the middle of a commit whose data is written and whose sync
      was asked for but never answered. A program that acknowledges before its sync returns
      has then acknowledged something lost.
    - An orderly stop (SIGTERM, SIGINT, SIGHUP, or the mount being unmounted) writes every
      file back first, as unmounting a real file system does, and ends with 0.

    Not modelled: torn or reordered writes (a cut keeps what was synced and nothing else: the
    worst case for durability, not for integrity); a cut in the middle of a sync (one thread
    serves the requests one at a time, so a cut falls between two); extended attributes;
    fallocate; locks (the kernel keeps POSIX and flock locks itself, local to the mount);
    timestamps (a file's times are the backing file's, which an unsynced write leaves as
    they were). The backing file is not fsynced: the host keeps it across a simulated cut.

    One thread serves every request in order, so the state needs no locking and a cut is
    atomic with respect to every other request. The kernel's writeback cache is off, so
    every write() reaches this process before it returns; direct I/O is off, so mmap works,
    shared and writable too, through the kernel's page cache (which a fresh mount starts
    without).

    --exit-with-parent: stop in order (SIGTERM) when the process that started this one ends,
    so a test killed by its timeout leaves no mount behind.

    Exit status: 0 after an orderly stop and after a power cut, 1 on a usage or I/O error,
    3 when the mount itself failed (no /dev/fuse, no permission to mount): the environment
    cannot run FUSE.
*/
#include <fuse.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define S_PAGE 4096
#define S_CONTROL "/.powercut"
#define S_EXIT_NO_MOUNT 3

/* One page of a file's volatile content: the whole page as programs now see it. */
typedef struct {
    uint64_t index; /* offset / S_PAGE */
    uint8_t *data;  /* S_PAGE bytes, zero past the file's size */
} s_page_t;

/*  A regular file that is open or has unsynced changes, keyed by the backing inode (so a
    rename or a second name changes nothing). Invariants: durable <= size, durable <=
    backing_size; bytes below `durable` not in a page read from the backing file, the
    others read as zeros. */
typedef struct s_file_t {
    struct s_file_t *next;
    dev_t dev;
    ino_t ino;
    int fd;             /* the backing file, read-write (read-only if it cannot be written) */
    int handles;        /* open FUSE handles */
    off_t size;         /* the size programs see */
    off_t durable;      /* bytes of the backing file that are still the file's content */
    off_t backing_size; /* the backing file's size */
    s_page_t *pages;    /* sorted by index */
    size_t npages, cap;
} s_file_t;

/*  What fi->fh points to, for every open file and folder. The kernel sends RELEASE after
    close() returns, in the background, so an orderly stop can come first: every handle is
    in a list, to be freed then. */
typedef enum { S_OPEN_FILE, S_OPEN_CONTROL, S_OPEN_FOLDER } s_kind_t;
typedef struct s_handle_t {
    struct s_handle_t *prev, *next;
    s_kind_t kind;
    s_file_t *file; /* S_OPEN_FILE */
    bool dsync;     /* S_OPEN_FILE opened O_SYNC or O_DSYNC */
    int dirfd;      /* S_OPEN_FOLDER: the backing folder */
} s_handle_t;

static struct {
    int root; /* the backing folder */
    s_file_t *files;
    s_handle_t *handles; /* open files and folders but the control file */
    bool cut_at_sync;    /* armed: the next sync of a changed file cuts the power instead */
    uint64_t writes, syncs, pages_synced; /* since the mount, for the closing line */
} s_fs = {.root = -1};

static bool s_file_dirty(const s_file_t *f)
{
    return f->npages || f->size != f->backing_size || f->durable != f->backing_size;
}

/*  The backing path of a FUSE path, relative to s_fs.root. A path is NULL only for an open
    file that lost its last name (nullpath_ok): the calls that may get one reach the file
    through its handle, or answer ENOENT when there is none. */
static const char *s_rel(const char *path)
{
    return path[0] == '/' && path[1] ? path + 1 : ".";
}

static bool s_is_control(const char *path)
{
    return path && strcmp(path, S_CONTROL) == 0;
}

/* The handle of an open file or of the control file; NULL for none or a folder's. */
static s_handle_t *s_handle(const struct fuse_file_info *fi)
{
    s_handle_t *h = fi ? (s_handle_t *)(uintptr_t)fi->fh : NULL;
    return h && h->kind != S_OPEN_FOLDER ? h : NULL;
}

static s_handle_t *s_handle_new(s_kind_t kind)
{
    s_handle_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->kind = kind;
    h->dirfd = -1;
    h->next = s_fs.handles;
    if (h->next) h->next->prev = h;
    s_fs.handles = h;
    return h;
}

/* Frees the handle; its file's state is the caller's to release. */
static void s_handle_free(s_handle_t *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        s_fs.handles = h->next;
    if (h->next) h->next->prev = h->prev;
    if (h->dirfd >= 0) close(h->dirfd);
    if (h->file) h->file->handles--;
    free(h);
}

/* ---- pages ---------------------------------------------------------------------------- */

/* The page with that index, or NULL; *pos is where it is or would go. */
static s_page_t *s_page_find(s_file_t *f, uint64_t index, size_t *pos)
{
    size_t lo = 0, hi = f->npages;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->pages[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos) *pos = lo;
    return lo < f->npages && f->pages[lo].index == index ? &f->pages[lo] : NULL;
}

/* Reads [off, off + n) as the backing file holds it for this file: zeros from `durable` on. */
static int s_read_durable(s_file_t *f, uint8_t *buf, size_t n, off_t off)
{
    size_t done = 0;
    while (done < n && off + (off_t)done < f->durable) {
        size_t want = n - done;
        if ((off_t)want > f->durable - off - (off_t)done)
            want = (size_t)(f->durable - off - (off_t)done);
        ssize_t got = pread(f->fd, buf + done, want, off + (off_t)done);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -errno;
        if (got == 0) break; /* shorter than recorded: the rest reads as zeros */
        done += (size_t)got;
    }
    memset(buf + done, 0, n - done);
    return 0;
}

/* The page with that index, made from the durable content when it is not there yet. */
static uint8_t *s_page_get(s_file_t *f, uint64_t index, int *err)
{
    size_t pos;
    s_page_t *p = s_page_find(f, index, &pos);
    if (p) return p->data;
    if (f->npages == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        s_page_t *pages = realloc(f->pages, cap * sizeof *pages);
        if (!pages) {
            *err = -ENOMEM;
            return NULL;
        }
        f->pages = pages;
        f->cap = cap;
    }
    uint8_t *data = malloc(S_PAGE);
    if (!data) {
        *err = -ENOMEM;
        return NULL;
    }
    int rc = s_read_durable(f, data, S_PAGE, (off_t)(index * S_PAGE));
    if (rc) {
        free(data);
        *err = rc;
        return NULL;
    }
    memmove(f->pages + pos + 1, f->pages + pos, (f->npages - pos) * sizeof *f->pages);
    f->pages[pos] = (s_page_t){index, data};
    f->npages++;
    return data;
}

static void s_pages_drop(s_file_t *f, size_t from)
{
    for (size_t i = from; i < f->npages; i++)
        free(f->pages[i].data);
    f->npages = from;
}

/* ---- files ---------------------------------------------------------------------------- */

static s_file_t *s_file_find(dev_t dev, ino_t ino)
{
    for (s_file_t *f = s_fs.files; f; f = f->next)
        if (f->dev == dev && f->ino == ino) return f;
    return NULL;
}

/* The state of the file behind a fresh descriptor, which it takes (the existing state keeps
   its own descriptor, and this one is closed). NULL with *err set on failure. */
static s_file_t *s_file_adopt(int fd, int *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *err = -errno;
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        *err = -EOPNOTSUPP;
        close(fd);
        return NULL;
    }
    s_file_t *f = s_file_find(st.st_dev, st.st_ino);
    if (f) {
        close(fd);
        return f;
    }
    if (!(f = calloc(1, sizeof *f))) {
        *err = -ENOMEM;
        close(fd);
        return NULL;
    }
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->fd = fd;
    f->size = f->durable = f->backing_size = st.st_size;
    f->next = s_fs.files;
    s_fs.files = f;
    return f;
}

/* Opens the backing file by path for our own use: read-write, read-only if it must. */
static int s_open_backing(const char *path, int extra, mode_t mode, bool write)
{
    int fd = openat(s_fs.root, s_rel(path), O_RDWR | O_CLOEXEC | O_NOFOLLOW | extra, mode);
    if (fd < 0 && !write && (errno == EACCES || errno == EROFS))
        fd = openat(s_fs.root, s_rel(path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | extra, mode);
    return fd < 0 ? -errno : fd;
}

static void s_file_free(s_file_t *f)
{
    for (s_file_t **p = &s_fs.files; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    s_pages_drop(f, 0);
    free(f->pages);
    close(f->fd);
    free(f);
}

/* Forgets a file nobody has open once it is clean, or gone from the namespace. */
static void s_file_release(s_file_t *f)
{
    if (!f || f->handles > 0) return;
    struct stat st;
    if (!s_file_dirty(f) || (fstat(f->fd, &st) == 0 && st.st_nlink == 0)) s_file_free(f);
}

/* The part of the `left` bytes from `at` that lies in one page: sets the page's index and
   the offset in it, returns the length. */
static size_t s_page_span(off_t at, size_t left, uint64_t *index, size_t *in)
{
    *index = (uint64_t)at / S_PAGE;
    *in = (size_t)((uint64_t)at % S_PAGE);
    return S_PAGE - *in < left ? S_PAGE - *in : left;
}

static int s_file_read(s_file_t *f, char *buf, size_t n, off_t off)
{
    if (off >= f->size) return 0;
    if ((off_t)n > f->size - off) n = (size_t)(f->size - off);
    size_t done = 0;
    while (done < n) {
        off_t at = off + (off_t)done;
        uint64_t index;
        size_t in, chunk = s_page_span(at, n - done, &index, &in);
        s_page_t *p = s_page_find(f, index, NULL);
        if (p) {
            memcpy(buf + done, p->data + in, chunk);
        } else {
            int rc = s_read_durable(f, (uint8_t *)buf + done, chunk, at);
            if (rc) return rc;
        }
        done += chunk;
    }
    return (int)done;
}

static int s_file_write(s_file_t *f, const char *buf, size_t n, off_t off)
{
    size_t done = 0;
    while (done < n) {
        off_t at = off + (off_t)done;
        uint64_t index;
        size_t in, chunk = s_page_span(at, n - done, &index, &in);
        int err = 0;
        uint8_t *page = s_page_get(f, index, &err);
        if (!page) return done ? (int)done : err;
        memcpy(page + in, buf + done, chunk);
        done += chunk;
        if (at + (off_t)chunk > f->size) f->size = at + (off_t)chunk;
    }
    s_fs.writes++;
    return (int)done;
}

static int s_file_truncate(s_file_t *f, off_t size)
{
    if (size < 0) return -EINVAL;
    if (size < f->size) {
        size_t keep;
        uint64_t first_gone = ((uint64_t)size + S_PAGE - 1) / S_PAGE;
        s_page_find(f, first_gone, &keep);
        s_pages_drop(f, keep);
        size_t in = (size_t)((uint64_t)size % S_PAGE);
        s_page_t *p = in ? s_page_find(f, (uint64_t)size / S_PAGE, NULL) : NULL;
        if (p) memset(p->data + in, 0, S_PAGE - in); /* a later growth reads zeros there */
        if (f->durable > size) f->durable = size;
    }
    f->size = size;
    return 0;
}

/* ---- the power cut ---------------------------------------------------------------------- */

static void s_cut(const char *when)
{
    size_t pages = 0, files = 0, sizes = 0;
    for (s_file_t *f = s_fs.files; f; f = f->next) {
        pages += f->npages;
        files += s_file_dirty(f);
        sizes += f->size != f->backing_size || f->durable != f->backing_size;
    }
    fprintf(stderr,
            "powercut_fs: power cut %s: dropped %zu unsynced pages (%zu bytes) and %zu size "
            "changes of %zu files; since the mount: %llu writes, %llu syncs, %llu pages "
            "synced\n",
            when, pages, pages * S_PAGE, sizes, files, (unsigned long long)s_fs.writes,
            (unsigned long long)s_fs.syncs, (unsigned long long)s_fs.pages_synced);
    /* Nothing is freed and nothing answered: the process ends as the machine does. The
       kernel fails every pending and later request on the mount once /dev/fuse closes. */
    _exit(0);
}

/* Makes the file's content and size durable in the backing file. */
static int s_file_sync(s_file_t *f)
{
    if (!s_file_dirty(f)) return 0;
    if (s_fs.cut_at_sync) s_cut("at a sync");
    if (f->durable < f->backing_size) { /* a shrink first, so no stale byte survives a growth */
        if (ftruncate(f->fd, f->durable) != 0) return -errno;
        f->backing_size = f->durable;
    }
    for (size_t i = 0; i < f->npages; i++) {
        off_t at = (off_t)(f->pages[i].index * S_PAGE);
        size_t n = f->size - at < S_PAGE ? (size_t)(f->size - at) : S_PAGE;
        size_t done = 0;
        while (done < n) {
            ssize_t put = pwrite(f->fd, f->pages[i].data + done, n - done, at + (off_t)done);
            if (put < 0 && errno == EINTR) continue;
            if (put < 0) return -errno;
            done += (size_t)put;
        }
        if (at + (off_t)n > f->backing_size) f->backing_size = at + (off_t)n;
    }
    if (f->backing_size != f->size && ftruncate(f->fd, f->size) != 0) return -errno;
    s_fs.pages_synced += f->npages;
    s_fs.syncs++;
    s_pages_drop(f, 0);
    f->durable = f->backing_size = f->size;
    return 0;
}

/* ---- operations ------------------------------------------------------------------------- */

static void *s_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* Write-through: every write() reaches us before it returns (no writeback cache). */
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    cfg->direct_io = 0; /* through the page cache, so mmap works */
    cfg->kernel_cache = 0;
    cfg->auto_cache = 0;
    cfg->hard_remove = 1; /* unlink unlinks; open handles keep working through fi */
    cfg->nullpath_ok = 1;
    cfg->use_ino = 1;
    return NULL;
}

static void s_fill_control(struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFREG | 0200;
    st->st_nlink = 1;
    st->st_uid = getuid();
    st->st_gid = getgid();
}

static void s_show_size(const s_file_t *f, struct stat *st)
{
    st->st_size = f->size;
    st->st_blocks = (f->size + 511) / 512;
}

static int s_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    s_handle_t *h = s_handle(fi);
    if (h && !h->file) {
        s_fill_control(st);
        return 0;
    }
    if (h) {
        if (fstat(h->file->fd, st) != 0) return -errno;
        s_show_size(h->file, st);
        return 0;
    }
    if (!path) return -ENOENT;
    if (s_is_control(path)) {
        s_fill_control(st);
        return 0;
    }
    if (fstatat(s_fs.root, s_rel(path), st, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
    s_file_t *f = S_ISREG(st->st_mode) ? s_file_find(st->st_dev, st->st_ino) : NULL;
    if (f) s_show_size(f, st);
    return 0;
}

static int s_access(const char *path, int mask)
{
    if (s_is_control(path)) return 0;
    return faccessat(s_fs.root, s_rel(path), mask, 0) == 0 ? 0 : -errno;
}

static int s_readlink(const char *path, char *buf, size_t size)
{
    if (size == 0) return -EINVAL;
    ssize_t n = readlinkat(s_fs.root, s_rel(path), buf, size - 1);
    if (n < 0) return -errno;
    buf[n] = '\0';
    return 0;
}

static int s_opendir(const char *path, struct fuse_file_info *fi)
{
    int fd = openat(s_fs.root, s_rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    s_handle_t *h = s_handle_new(S_OPEN_FOLDER);
    if (!h) {
        close(fd);
        return -ENOMEM;
    }
    h->dirfd = fd;
    fi->fh = (uint64_t)(uintptr_t)h;
    return 0;
}

static int s_releasedir(const char *path, struct fuse_file_info *fi)
{
    s_handle_free((s_handle_t *)(uintptr_t)fi->fh);
    return 0;
}

/* The whole listing at every call (offset 0 to the filler: libfuse pages it itself). */
static int s_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                     struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    s_handle_t *h = (s_handle_t *)(uintptr_t)fi->fh;
    int fd = dup(h->dirfd);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int err = -errno;
        close(fd);
        return err;
    }
    rewinddir(d); /* the duplicate shares its offset with the handle's descriptor */
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d))) {
        struct stat st = {.st_ino = e->d_ino, .st_mode = DTTOIF(e->d_type)};
        if (fill(buf, e->d_name, &st, 0, 0)) break;
    }
    int err = errno ? -errno : 0;
    closedir(d);
    return err;
}

static int s_mknod(const char *path, mode_t mode, dev_t rdev)
{
    if (s_is_control(path)) return -EEXIST;
    if (S_ISREG(mode)) {
        int fd = openat(s_fs.root, s_rel(path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd < 0) return -errno;
        close(fd);
        return 0;
    }
    return mknodat(s_fs.root, s_rel(path), mode, rdev) == 0 ? 0 : -errno;
}

static int s_mkdir(const char *path, mode_t mode)
{
    if (s_is_control(path)) return -EEXIST;
    return mkdirat(s_fs.root, s_rel(path), mode) == 0 ? 0 : -errno;
}

/* The state of whatever a name is about to stop naming, to forget it afterwards. */
static s_file_t *s_file_at(const char *path)
{
    struct stat st;
    if (fstatat(s_fs.root, s_rel(path), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return NULL;
    return s_file_find(st.st_dev, st.st_ino);
}

static int s_unlink(const char *path)
{
    if (s_is_control(path)) return -EPERM;
    s_file_t *f = s_file_at(path);
    if (unlinkat(s_fs.root, s_rel(path), 0) != 0) return -errno;
    s_file_release(f);
    return 0;
}

static int s_rmdir(const char *path)
{
    return unlinkat(s_fs.root, s_rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno;
}

static int s_symlink(const char *target, const char *path)
{
    if (s_is_control(path)) return -EEXIST;
    return symlinkat(target, s_fs.root, s_rel(path)) == 0 ? 0 : -errno;
}

static int s_rename(const char *from, const char *to, unsigned int flags)
{
    if (flags) return -EINVAL; /* RENAME_NOREPLACE and RENAME_EXCHANGE are not modelled */
    if (s_is_control(from) || s_is_control(to)) return -EPERM;
    s_file_t *replaced = s_file_at(to);
    if (renameat(s_fs.root, s_rel(from), s_fs.root, s_rel(to)) != 0) return -errno;
    s_file_release(replaced);
    return 0;
}

static int s_link(const char *from, const char *to)
{
    if (s_is_control(from) || s_is_control(to)) return -EPERM;
    return linkat(s_fs.root, s_rel(from), s_fs.root, s_rel(to), 0) == 0 ? 0 : -errno;
}

static int s_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    s_handle_t *h = s_handle(fi);
    if ((h && !h->file) || s_is_control(path)) return -EPERM;
    if (h) return fchmod(h->file->fd, mode) == 0 ? 0 : -errno;
    if (!path) return -ENOENT;
    return fchmodat(s_fs.root, s_rel(path), mode, 0) == 0 ? 0 : -errno;
}

static int s_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    s_handle_t *h = s_handle(fi);
    if ((h && !h->file) || s_is_control(path)) return -EPERM;
    if (h) return fchown(h->file->fd, uid, gid) == 0 ? 0 : -errno;
    if (!path) return -ENOENT;
    return fchownat(s_fs.root, s_rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int s_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    s_handle_t *h = s_handle(fi);
    if ((h && !h->file) || s_is_control(path)) return 0;
    if (h) return futimens(h->file->fd, tv) == 0 ? 0 : -errno;
    if (!path) return -ENOENT;
    return utimensat(s_fs.root, s_rel(path), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int s_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    s_handle_t *h = s_handle(fi);
    if ((h && !h->file) || s_is_control(path)) return 0; /* open(…, O_TRUNC) of the control */
    if (h) return s_file_truncate(h->file, size);
    if (!path) return -ENOENT;
    int fd = s_open_backing(path, 0, 0, true);
    if (fd < 0) return fd;
    int err = 0;
    s_file_t *f = s_file_adopt(fd, &err);
    if (!f) return err;
    err = s_file_truncate(f, size);
    s_file_release(f);
    return err;
}

/* A handle on a freshly opened backing descriptor. */
static int s_open_handle(int fd, struct fuse_file_info *fi)
{
    int err = 0;
    s_file_t *f = s_file_adopt(fd, &err);
    if (!f) return err;
    s_handle_t *h = s_handle_new(S_OPEN_FILE);
    if (!h) {
        s_file_release(f);
        return -ENOMEM;
    }
    h->file = f;
    h->dsync = (fi->flags & O_DSYNC) != 0; /* O_SYNC includes O_DSYNC */
    f->handles++;
    if (fi->flags & O_TRUNC) s_file_truncate(f, 0);
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 0;
    fi->keep_cache = 0;
    return 0;
}

static s_handle_t s_control_handle = {.kind = S_OPEN_CONTROL};

static int s_open(const char *path, struct fuse_file_info *fi)
{
    if (s_is_control(path)) {
        if ((fi->flags & O_ACCMODE) == O_RDONLY) return -EACCES;
        fi->fh = (uint64_t)(uintptr_t)&s_control_handle;
        fi->direct_io = 1;
        return 0;
    }
    int fd = s_open_backing(path, 0, 0, (fi->flags & O_ACCMODE) != O_RDONLY);
    return fd < 0 ? fd : s_open_handle(fd, fi);
}

static int s_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (s_is_control(path)) return -EEXIST;
    int fd = s_open_backing(path, O_CREAT | (fi->flags & O_EXCL), mode, true);
    return fd < 0 ? fd : s_open_handle(fd, fi);
}

static int s_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
    s_handle_t *h = s_handle(fi);
    if (!h->file) return -EACCES;
    return s_file_read(h->file, buf, n, off);
}

static int s_write(const char *path, const char *buf, size_t n, off_t off,
                   struct fuse_file_info *fi)
{
    s_handle_t *h = s_handle(fi);
    if (!h->file) {
        size_t len = n && buf[n - 1] == '\n' ? n - 1 : n; /* echo cut > …/.powercut */
        if (len == 11 && memcmp(buf, "cut-at-sync", 11) == 0) {
            s_fs.cut_at_sync = true;
            fprintf(stderr, "powercut_fs: armed: the next sync of a changed file cuts\n");
            return (int)n;
        }
        if (len == 3 && memcmp(buf, "cut", 3) == 0) s_cut("on demand");
        return -EINVAL;
    }
    int put = s_file_write(h->file, buf, n, off);
    if (put > 0 && h->dsync) {
        int err = s_file_sync(h->file);
        if (err) return err;
    }
    return put;
}

static int s_statfs(const char *path, struct statvfs *st)
{
    return fstatvfs(s_fs.root, st) == 0 ? 0 : -errno;
}

/* close() is not a sync: nothing reaches the backing file here. */
static int s_flush(const char *path, struct fuse_file_info *fi)
{
    return 0;
}

static int s_release(const char *path, struct fuse_file_info *fi)
{
    s_handle_t *h = s_handle(fi);
    if (!h->file) return 0;
    s_file_t *f = h->file;
    s_handle_free(h);
    s_file_release(f);
    return 0;
}

static int s_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    s_handle_t *h = s_handle(fi);
    return h->file ? s_file_sync(h->file) : 0;
}

/* The namespace is durable as it changes: a folder has nothing left to sync. */
static int s_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    return 0;
}

static const struct fuse_operations s_ops = {
    .init = s_init,
    .getattr = s_getattr,
    .access = s_access,
    .readlink = s_readlink,
    .opendir = s_opendir,
    .readdir = s_readdir,
    .releasedir = s_releasedir,
    .mknod = s_mknod,
    .mkdir = s_mkdir,
    .unlink = s_unlink,
    .rmdir = s_rmdir,
    .symlink = s_symlink,
    .rename = s_rename,
    .link = s_link,
    .chmod = s_chmod,
    .chown = s_chown,
    .utimens = s_utimens,
    .truncate = s_truncate,
    .open = s_open,
    .create = s_create,
    .read = s_read,
    .write = s_write,
    .statfs = s_statfs,
    .flush = s_flush,
    .release = s_release,
    .fsync = s_fsync,
    .fsyncdir = s_fsyncdir,
};

/* The orderly stop: every file written back, every handle and state freed. */
static int s_write_back_all(void)
{
    int rc = 0;
    uint64_t pages = s_fs.pages_synced;
    s_fs.cut_at_sync = false; /* an orderly stop is not a power cut */
    /* Handles left: closed, with their RELEASE not come yet, or open when the stop came. */
    while (s_fs.handles)
        s_handle_free(s_fs.handles);
    while (s_fs.files) {
        int err = s_file_sync(s_fs.files);
        if (err) {
            fprintf(stderr, "powercut_fs: writing back a file failed: %s\n", strerror(-err));
            rc = -1;
        }
        s_file_free(s_fs.files);
    }
    fprintf(stderr,
            "powercut_fs: stopped: wrote back %llu pages; since the mount: %llu writes, %llu "
            "syncs, %llu pages synced\n",
            (unsigned long long)(s_fs.pages_synced - pages), (unsigned long long)s_fs.writes,
            (unsigned long long)s_fs.syncs, (unsigned long long)pages);
    return rc;
}

static int s_usage(void)
{
    fprintf(stderr, "usage: powercut_fs [--exit-with-parent] BACKING MOUNTPOINT\n"
                    "  shows BACKING at MOUNTPOINT; unsynced writes stay in memory until\n"
                    "  fsync, and writing \"cut\" to MOUNTPOINT/.powercut drops them and ends\n");
    return 1;
}

int main(int argc, char **argv)
{
    int i = 1;
    bool with_parent = false;
    if (i < argc && strcmp(argv[i], "--exit-with-parent") == 0) {
        with_parent = true;
        i++;
    }
    if (argc - i != 2 || argv[i][0] == '-') return s_usage();
    const char *backing = argv[i], *mountpoint = argv[i + 1];
    if (with_parent) {
        pid_t parent = getppid();
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) {
            fprintf(stderr, "powercut_fs: the process that started this one is gone\n");
            return 1;
        }
    }
    if ((s_fs.root = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "powercut_fs: %s: %s\n", backing, strerror(errno));
        return 1;
    }
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    if (fuse_opt_add_arg(&args, argv[0]) || fuse_opt_add_arg(&args, "-o") ||
        fuse_opt_add_arg(&args, "fsname=powercut,subtype=powercut,default_permissions")) {
        fuse_opt_free_args(&args);
        close(s_fs.root);
        return 1;
    }
    struct fuse *fuse = fuse_new(&args, &s_ops, sizeof s_ops, NULL);
    fuse_opt_free_args(&args);
    if (!fuse) {
        close(s_fs.root);
        return 1;
    }
    if (fuse_mount(fuse, mountpoint) != 0) {
        fprintf(stderr, "powercut_fs: cannot mount %s (FUSE is not available here)\n", mountpoint);
        fuse_destroy(fuse);
        close(s_fs.root);
        return S_EXIT_NO_MOUNT;
    }
    struct fuse_session *se = fuse_get_session(fuse);
    int rc = fuse_set_signal_handlers(se);
    if (rc == 0) {
        fprintf(stderr, "powercut_fs: %s mounted on %s\n", backing, mountpoint);
        rc = fuse_loop(fuse); /* one thread: requests are served one at a time, in order */
        fuse_remove_signal_handlers(se);
    }
    fuse_unmount(fuse);
    int wb = s_write_back_all();
    fuse_destroy(fuse);
    close(s_fs.root);
    /* fuse_loop: 0 when unmounted, the signal's number when stopped by one, < 0 on error. */
    return rc >= 0 && wb == 0 ? 0 : 1;
}
