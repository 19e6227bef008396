/*  bench_gateway.c — durable publishes over HTTP through samordna-gateway, beside the same
    events through ZeroMQ in the same run.

    One broker, the registry (--credit 1024) and the gateway are started on loopback. Then:
      - ZeroMQ: person.registered events published by one sam_client with 64 in flight (the
        concurrency of the HTTP runs), each acknowledged after its group commit; events/s and
        the p50/p99 of one acknowledgement;
      - HTTP single: Debian's `wrk`, 2 threads, 64 keep-alive connections, each request one
        binary-mode event (ce-* headers, the Person packed by the Lua script, a unique id per
        thread and request); every answer must be 201 (the script counts the others);
      - HTTP batch: the same with application/cloudevents-batch+json of S_BATCH events each
        (data_base64); events/s = requests/s × S_BATCH;
      - GET /v1/healthz per second over the same 64 connections;
      - GETs of the web board per second: a suite of its own (broker, the four services,
        the gateway) in board/ under the work folder, with the Østfold fixture imported by
        samctl, and `GET /?as_of=2019-11-30` over 64 connections, every answer checked to be
        200 (each one asks seven queries of four services and renders the page).
    Beside each rate, the gateway's own CPU time per event (from /proc): on a shared machine
    the rates follow the load, that figure much less.
    The Lua scripts are written into the work folder from the texts below, so the family needs
    nothing but wrk on PATH. A figure is never asserted: the machine is shared.
*/
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"

#include "samordna/v1/registry.pb-c.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_CONNECTIONS 64
#define S_BATCH 100
/* The board's data: the project's Østfold fixture, read from the source tree. */
#define S_FIXTURE SAMORDNA_SOURCE_DIR "/deploy/examples/ostfold-2019.json"

/* Binary mode: one person.registered a request, its Person packed here (field 1 id, field 2
   name, both short strings). */
static const char s_single_lua[] =
    "local counter = 1\n"
    "local threads = {}\n"
    "function setup(thread)\n"
    "  thread:set('tid', counter)\n"
    "  table.insert(threads, thread)\n"
    "  counter = counter + 1\n"
    "end\n"
    "function init(args)\n"
    "  n = 0\n"
    "  bad = 0\n"
    "  prefix = 'h' .. tid .. '-'\n"
    "end\n"
    "function request()\n"
    "  n = n + 1\n"
    "  local id = prefix .. n\n"
    "  local name = 'Person ' .. n\n"
    "  local body = string.char(10, #id) .. id .. string.char(18, #name) .. name\n"
    "  return wrk.format('POST', '/v1/events', {\n"
    "    ['ce-specversion'] = '1.0', ['ce-id'] = 'bench:' .. id, ['ce-source'] = 'fmov',\n"
    "    ['ce-type'] = 'no.samordna.registry.person.registered',\n"
    "    ['content-type'] = 'application/protobuf'}, body)\n"
    "end\n"
    "function response(status, headers, body)\n"
    "  if status ~= 201 then\n"
    "    bad = bad + 1\n"
    "    if bad == 1 then io.stderr:write(status .. ' ' .. body .. '\\n') end\n"
    "  end\n"
    "end\n"
    "function done(summary, latency, requests)\n"
    "  local total = 0\n"
    "  for _, t in ipairs(threads) do total = total + t:get('bad') end\n"
    "  io.write(string.format('refused %d\\n', total))\n"
    "end\n";

/* Batch mode: S_BATCH events a request, each Person base64 in data_base64; an answer is 200
   with every element's status 201 (counted by looking for any other status). */
static const char s_batch_lua[] =
    "local counter = 1\n"
    "local threads = {}\n"
    "local b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'\n"
    "local function enc(data)\n"
    "  local out, len = {}, #data\n"
    "  for i = 1, len, 3 do\n"
    "    local a, b, c = data:byte(i, i + 2)\n"
    "    local n = a * 65536 + (b or 0) * 256 + (c or 0)\n"
    "    local c1, c2 = math.floor(n / 262144), math.floor(n / 4096) % 64\n"
    "    local c3, c4 = math.floor(n / 64) % 64, n % 64\n"
    "    out[#out + 1] = b64:sub(c1 + 1, c1 + 1) .. b64:sub(c2 + 1, c2 + 1) ..\n"
    "      (b and b64:sub(c3 + 1, c3 + 1) or '=') .. (c and b64:sub(c4 + 1, c4 + 1) or '=')\n"
    "  end\n"
    "  return table.concat(out)\n"
    "end\n"
    "function setup(thread)\n"
    "  thread:set('tid', counter)\n"
    "  table.insert(threads, thread)\n"
    "  counter = counter + 1\n"
    "end\n"
    "function init(args)\n"
    "  n = 0\n"
    "  bad = 0\n"
    "  prefix = 'b' .. tid .. '-'\n"
    "  size = tonumber(args[1])\n"
    "end\n"
    "function request()\n"
    "  local parts = {}\n"
    "  for i = 1, size do\n"
    "    n = n + 1\n"
    "    local id = prefix .. n\n"
    "    local name = 'Person ' .. n\n"
    "    local data = string.char(10, #id) .. id .. string.char(18, #name) .. name\n"
    "    parts[i] = '{\"specversion\":\"1.0\",\"id\":\"bench:' .. id ..\n"
    "      '\",\"source\":\"fmov\",\"type\":\"no.samordna.registry.person.registered\",' ..\n"
    "      '\"datacontenttype\":\"application/protobuf\",\"data_base64\":\"' .. enc(data) .. "
    "'\"}'\n"
    "  end\n"
    "  return wrk.format('POST', '/v1/events',\n"
    "    {['content-type'] = 'application/cloudevents-batch+json'},\n"
    "    '[' .. table.concat(parts, ',') .. ']')\n"
    "end\n"
    "function response(status, headers, body)\n"
    "  if status ~= 200 or body:find('\"status\":[^2]') or body:find('\"status\":2[^0]') then\n"
    "    bad = bad + 1\n"
    "    if bad == 1 then io.stderr:write(status .. ' ' .. body:sub(1, 400) .. '\\n') end\n"
    "  end\n"
    "end\n"
    "function done(summary, latency, requests)\n"
    "  local total = 0\n"
    "  for _, t in ipairs(threads) do total = total + t:get('bad') end\n"
    "  io.write(string.format('refused %d\\n', total))\n"
    "end\n";

/* A GET of the board whose answers must be 200 (counted like the others). */
static const char s_get_lua[] =
    "local threads = {}\n"
    "function setup(thread)\n"
    "  table.insert(threads, thread)\n"
    "end\n"
    "function init(args)\n"
    "  bad = 0\n"
    "end\n"
    "function response(status, headers, body)\n"
    "  if status ~= 200 then\n"
    "    bad = bad + 1\n"
    "    if bad == 1 then io.stderr:write(status .. ' ' .. body:sub(1, 400) .. '\\n') end\n"
    "  end\n"
    "end\n"
    "function done(summary, latency, requests)\n"
    "  local total = 0\n"
    "  for _, t in ipairs(threads) do total = total + t:get('bad') end\n"
    "  io.write(string.format('refused %d\\n', total))\n"
    "end\n";

/* The status of GET path on 127.0.0.1:port, or -1 when nothing answers. */
static int s_http_status(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int status = -1;
    char buf[256];
    int n =
        snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, buf, (size_t)n) == n) {
        ssize_t got = read(fd, buf, sizeof buf - 1);
        if (got > 12) {
            buf[got] = '\0';
            status = atoi(buf + 9);
        }
    }
    close(fd);
    return status;
}

/* A wrk latency like "1.23ms", "850.00us" or "1.01s" in µs. */
static double s_us(const char *text)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (!end) return -1;
    if (strncmp(end, "us", 2) == 0) return v;
    if (strncmp(end, "ms", 2) == 0) return v * 1000;
    if (strncmp(end, "s", 1) == 0) return v * 1e6;
    return -1;
}

typedef struct {
    double rps, p50_us, p99_us;
    long requests; /* answered in the run */
    long refused;
    double gw_cpu_s; /* CPU seconds of the gateway during the run */
} s_wrk_t;

/* CPU seconds (user + system) a process has used so far, from /proc; 0 when unreadable. */
static double s_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command's name, which may hold spaces */
    unsigned long utime = 0, stime = 0;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int s_gw_pid; /* the gateway's process, for its CPU time */

/* Runs wrk against url with the script (may be NULL) and its argument; parses its report. */
static int s_wrk(bench_t *b, const char *script, const char *arg, const char *url, int secs,
                 s_wrk_t *out)
{
    char cmd[2048];
    char path[1024] = "";
    if (script) snprintf(path, sizeof path, "%s/%s", b->work_dir, script);
    snprintf(cmd, sizeof cmd, "wrk -t1 -c%d -d%ds --timeout 10s --latency %s%s %s %s %s 2>&1",
             S_CONNECTIONS, secs, script ? "-s " : "", path, url, arg ? "--" : "", arg ? arg : "");
    double cpu0 = s_cpu_s(s_gw_pid);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    memset(out, 0, sizeof *out);
    out->refused = -1;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        char word[64];
        if (sscanf(line, " Requests/sec: %lf", &out->rps) == 1) continue;
        if (strstr(line, " requests in ") && sscanf(line, " %ld", &out->requests) == 1) continue;
        if (sscanf(line, " 50%% %63s", word) == 1) out->p50_us = s_us(word);
        if (sscanf(line, " 99%% %63s", word) == 1) out->p99_us = s_us(word);
        if (sscanf(line, "refused %ld", &out->refused) == 1) continue;
        if (strstr(line, "Non-2xx") || strstr(line, "Socket errors") ||
            (line[0] != ' ' && strncmp(line, "Running", 7) != 0 &&
             strncmp(line, "Transfer", 8) != 0))
            fprintf(stderr, "bench gateway: wrk: %s", line);
    }
    int rc = pclose(p);
    out->gw_cpu_s = s_cpu_s(s_gw_pid) - cpu0;
    if (rc != 0 || out->rps <= 0) {
        fprintf(stderr, "bench gateway: wrk failed (is it installed? tools/deps.sh): %s\n", cmd);
        return -1;
    }
    return 0;
}

static int s_write(bench_t *b, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", b->work_dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The ZeroMQ path: n events, `window` in flight, one client. */
static int s_zmq(const char *broker, size_t n, size_t window, double *rate, double *p50,
                 double *p99)
{
    const char *eps[] = {broker};
    char err[256];
    sam_client_opts_t opts = {.max_pending = window};
    sam_client_t *c = sam_client_new(eps, 1, &opts, err, sizeof err);
    if (!c) return -1;
    int64_t *lat = calloc(n, sizeof *lat), *sent_at = calloc(n, sizeof *sent_at);
    int rc = -1;
    size_t next = 0, acked = 0, refused = 0;
    uint64_t first = 0;
    int64_t t0 = zclock_usecs();
    while (lat && sent_at && acked < n) {
        while (next < n && next - acked < window) {
            char id[32], eid[48], name[32];
            snprintf(id, sizeof id, "z-%zu", next);
            snprintf(eid, sizeof eid, "bench:%s", id);
            snprintf(name, sizeof name, "Person %zu", next);
            Samordna__V1__Person person = SAMORDNA__V1__PERSON__INIT;
            person.id = id;
            person.name = name;
            sent_at[next] = zclock_usecs();
            uint64_t rid = bench_publish(c, "registry", "no.samordna.registry.person.registered",
                                         eid, "fmov", NULL, &person.base);
            if (!rid) goto done;
            if (next++ == 0) first = rid;
        }
        sam_result_t res;
        if (sam_client_recv(c, 10000, &res) != 0) goto done;
        uint64_t idx = res.id - first;
        if (res.id >= first && idx < next) {
            lat[acked++] = zclock_usecs() - sent_at[idx];
            if (res.code != SAM_OK && refused++ == 0)
                fprintf(stderr, "bench gateway: zmq refused: %u %s\n", res.code, res.message);
        }
        sam_result_clear(&res);
    }
    *rate = (double)n / ((double)(zclock_usecs() - t0) / 1e6);
    *p50 = bench_percentile(lat, n, 50);
    *p99 = bench_percentile(lat, n, 99);
    rc = refused ? -1 : 0;
done:
    free(lat);
    free(sent_at);
    sam_client_destroy(&c);
    return rc;
}

/* Runs bin_dir/samctl --broker broker a1 a2 and waits, its output into board/samctl.log: its
   exit code, or -1. */
static int s_samctl(bench_t *b, const char *broker, const char *a1, const char *a2)
{
    char path[1024], log[1024];
    snprintf(path, sizeof path, "%s/samctl", b->bin_dir);
    snprintf(log, sizeof log, "%s/board/samctl.log", b->work_dir);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr)) _exit(126);
        execl(path, path, "--broker", broker, a1, a2, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*  GETs of the board per second, in a suite of its own under work_dir/board/: the fixture
    imported, the board of 2019-11-30 asked over S_CONNECTIONS connections for `secs`. */
static int s_board(bench_t *b, int secs)
{
    char ep[64], http_ep[64], dir[1024], listen[32], url[96];
    bench_endpoint(ep, sizeof ep);
    bench_endpoint(http_ep, sizeof http_ep);
    int port = atoi(strrchr(http_ep, ':') + 1);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/?as_of=2019-11-30", port);
    snprintf(dir, sizeof dir, "%s/board", b->work_dir);
    if (zsys_dir_create("%s", dir) != 0) {
        fprintf(stderr, "bench gateway: cannot create %s\n", dir);
        return -1;
    }
    const char *services[] = {"registry", "status", "grants", "notify"};
    for (size_t i = 0; i < 4; i++)
        for (const char *f = "data.mdb"; f; f = strcmp(f, "data.mdb") == 0 ? "lock.mdb" : NULL) {
            char path[1200];
            snprintf(path, sizeof path, "%s/%s/%s", dir, services[i], f);
            zsys_file_delete(path);
        }
    bench_proc_t broker = {0}, svc[4] = {{0}}, gw = {0};
    int rc = -1;
    if (bench_spawn(b, &broker, "board/broker.log", "samordna-broker", "--bind", ep, "--insecure",
                    NULL))
        goto done;
    for (size_t i = 0; i < 4; i++) {
        char prog[64];
        snprintf(prog, sizeof prog, "samordna-%s", services[i]);
        if (bench_spawn(b, &svc[i], "board/services.log", prog, "--broker", ep, "--data-dir", dir,
                        "--insecure", "--log-level", "warn", NULL))
            goto done;
    }
    for (size_t i = 0; i < 4; i++)
        if (bench_wait_service(ep, services[i], 10000) != 0) {
            fprintf(stderr, "bench gateway: %s did not answer\n", services[i]);
            goto done;
        }
    if (access(S_FIXTURE, R_OK) != 0) {
        fprintf(stderr,
                "bench gateway: the board's data %s is not readable; run the bench from a build "
                "of a source tree that has it\n",
                S_FIXTURE);
        goto done;
    }
    if (s_samctl(b, ep, "import", S_FIXTURE) != 0) {
        fprintf(stderr, "bench gateway: samctl import %s failed (%s/samctl.log)\n", S_FIXTURE, dir);
        goto done;
    }
    if (bench_spawn(b, &gw, "board/gateway.log", "samordna-gateway", "--broker", ep, "--insecure",
                    "--listen", listen, "--log-level", "warn", NULL))
        goto done;
    s_gw_pid = gw.pid;
    /* the page is 200 once the gateway knows the services and status has the grid */
    for (int i = 0; i < 200 && s_http_status(port, "/?as_of=2019-11-30") != 200; i++)
        zclock_sleep(100);
    s_wrk_t gets;
    if (s_http_status(port, "/?as_of=2019-11-30") != 200) {
        fprintf(stderr, "bench gateway: the board did not answer 200 (%s/gateway.log)\n", dir);
    } else if (s_wrk(b, "get.lua", NULL, url, secs, &gets) == 0) {
        if (gets.refused != 0)
            fprintf(stderr, "bench gateway: %ld GETs of the board were not 200\n", gets.refused);
        else {
            bench_figure("gateway.http.get_board_per_s", gets.rps, "requests/s");
            bench_figure("gateway.http.get_board.p50", gets.p50_us, "us");
            bench_figure("gateway.http.get_board.p99", gets.p99_us, "us");
            if (gets.requests > 0)
                bench_figure("gateway.http.get_board.cpu_per_get",
                             gets.gw_cpu_s * 1e6 / (double)gets.requests, "us");
            rc = 0;
        }
    }
done:
    bench_stop(&gw);
    for (size_t i = 0; i < 4; i++)
        bench_stop(&svc[3 - i]);
    bench_stop(&broker);
    return rc;
}

int bench_gateway(bench_t *b)
{
    char ep[64], http_ep[64];
    bench_endpoint(ep, sizeof ep);
    bench_endpoint(http_ep, sizeof http_ep);
    int port = atoi(strrchr(http_ep, ':') + 1);
    char listen[32], url[64], health[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/events", port);
    snprintf(health, sizeof health, "http://127.0.0.1:%d/v1/healthz", port);
    const char *stores[] = {"registry/data.mdb", "registry/lock.mdb"};
    for (size_t i = 0; i < sizeof stores / sizeof stores[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", b->work_dir, stores[i]);
        zsys_file_delete(path);
    }
    if (s_write(b, "single.lua", s_single_lua) || s_write(b, "batch.lua", s_batch_lua) ||
        s_write(b, "get.lua", s_get_lua)) {
        fprintf(stderr, "bench gateway: cannot write the wrk scripts into %s\n", b->work_dir);
        return 1;
    }
    bench_proc_t broker = {0}, reg = {0}, gw = {0};
    int rc = 1;
    if (bench_spawn(b, &broker, "broker.log", "samordna-broker", "--bind", ep, "--insecure",
                    NULL) ||
        bench_spawn(b, &reg, "registry.log", "samordna-registry", "--broker", ep, "--data-dir",
                    b->work_dir, "--insecure", "--credit", "1024", NULL) ||
        bench_spawn(b, &gw, "gateway.log", "samordna-gateway", "--broker", ep, "--insecure",
                    "--listen", listen, "--service", "registry", "--log-level", "warn", NULL))
        goto done;
    if (bench_wait_service(ep, "registry", 10000) != 0) {
        fprintf(stderr, "bench gateway: the registry did not answer\n");
        goto done;
    }
    for (int i = 0; i < 100 && s_http_status(port, "/v1/healthz") != 200; i++)
        zclock_sleep(100);
    if (s_http_status(port, "/v1/healthz") != 200) {
        fprintf(stderr, "bench gateway: the gateway did not become healthy\n");
        goto done;
    }
    s_gw_pid = gw.pid;
    int secs = (int)(5 * b->scale);
    if (secs < 2) secs = 2;
    size_t n = (size_t)(50000 * b->scale);
    if (n < 2000) n = 2000;
    double zrate = 0, zp50 = 0, zp99 = 0;
    if (s_zmq(ep, n, S_CONNECTIONS, &zrate, &zp50, &zp99) != 0) {
        fprintf(stderr, "bench gateway: the ZeroMQ run failed\n");
        goto done;
    }
    bench_figure("gateway.zmq.events_per_s", zrate, "events/s");
    bench_figure("gateway.zmq.p50", zp50, "us");
    bench_figure("gateway.zmq.p99", zp99, "us");

    s_wrk_t single, batch, gets;
    char size[16];
    snprintf(size, sizeof size, "%d", S_BATCH);
    if (s_wrk(b, "single.lua", NULL, url, secs, &single) != 0 ||
        s_wrk(b, "batch.lua", size, url, secs, &batch) != 0 ||
        s_wrk(b, NULL, NULL, health, secs, &gets) != 0)
        goto done;
    if (single.refused != 0 || batch.refused != 0) {
        fprintf(stderr, "bench gateway: %ld single and %ld batch answers were not 201\n",
                single.refused, batch.refused);
        goto done;
    }
    bench_figure("gateway.http.events_per_s", single.rps, "events/s");
    bench_figure("gateway.http.p50", single.p50_us, "us");
    bench_figure("gateway.http.p99", single.p99_us, "us");
    bench_figure("gateway.http.p50_vs_zmq", zp50 > 0 ? single.p50_us / zp50 : 0, "x");
    bench_figure("gateway.http.batch.events_per_s", batch.rps * S_BATCH, "events/s");
    bench_figure("gateway.http.batch.p50", batch.p50_us, "us");
    bench_figure("gateway.http.batch.p99", batch.p99_us, "us");
    bench_figure("gateway.http.get_healthz_per_s", gets.rps, "requests/s");
    /* What the gateway itself costs, whatever else the machine runs: its CPU time per event. */
    if (single.requests > 0)
        bench_figure("gateway.http.cpu_per_event", single.gw_cpu_s * 1e6 / (double)single.requests,
                     "us");
    if (batch.requests > 0)
        bench_figure("gateway.http.batch.cpu_per_event",
                     batch.gw_cpu_s * 1e6 / ((double)batch.requests * S_BATCH), "us");
    rc = 0;
done:
    bench_stop(&gw);
    bench_stop(&reg);
    bench_stop(&broker);
    if (rc == 0 && s_board(b, secs) != 0) rc = 1;
    return rc;
}
