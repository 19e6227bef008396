/*  sam_elect.c — leadership and fencing through etcd (contract in sam_elect.h).

    One thread per elector runs rounds; a round is a handful of small POSTs to etcd's JSON
    gateway, made in this order so that each decision rests on what etcd said in the round:
      1. the lease: keepalive (or grant when there is none). The time the request was SENT
         is the round's `sent`: etcd extends the lease from when it answers, which is later,
         so sent + ttl is a lower bound of the lease's end in etcd's view;
      2. the caller's handover request, if one waits: the handover key, under a short
         lease of its own (s_put_handover);
      3. our member key (position, role), under our lease;
      4. one read-only txn that ranges the leader key, the members/ prefix and the handover
         key: one consistent snapshot of the election (one revision);
      5. the decision (s_decide): leader, follower or candidate; a campaign or a
         resignation is one more guarded txn.
    Only step 4 confirming that the leader key is ours, under our current lease, moves the
    write deadline (sent + min(ttl, granted) - ttl/4); nothing else ever extends it, and
    losing the lease, the key or starting a handover sets it to 0 at once. The caller's
    may_write compares its own clock with that deadline, so fencing holds even when this
    thread is stuck in a request to an etcd that no longer answers.

    Endpoints are tried in turn: a request that gets no HTTP answer from one moves on to
    the next (and the next request starts there); when none answers, the round ends with
    reachable false. A lease that outlives an etcd restart (etcd restores leases and
    extends them) is kept: if the leader key is still ours under it, leadership resumes
    with its epoch — nobody else can have been elected while the key stood.

    etcd's JSON: keys and values are base64; int64 fields are strings; zero-valued fields
    are left out (a txn that failed has no "succeeded"; a keepalive of a lease etcd does not
    know answers {"result":{..."ID"...}} without TTL). Everything read from etcd is checked
    as if from a stranger: a name that breaks the rule counts as "someone else".
*/
#include "sam_elect.h"
#include "sam_http.h"
#include "sam_log.h"
#include "sam_metrics.h"
#include "sam_testkit.h"

#include <czmq.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_ENDPOINTS_MAX 16
#define S_REPLY_MAX (1 << 20) /* an etcd answer longer than this is refused */
#define S_KEY_MAX (SAM_ELECT_PREFIX_MAX + 2 * SAM_ELECT_NAME_MAX + 32)
#define S_B64_MAX (S_KEY_MAX / 3 * 4 + 8)
#define S_MEMBERS_MAX 64 /* live members read per round */

typedef struct {
    char name[SAM_ELECT_NAME_MAX + 1];
    uint64_t position;
} s_member_t;

/* One round's snapshot of the election (step 4). */
typedef struct {
    bool has_leader;
    char leader[SAM_ELECT_NAME_MAX + 1];
    int64_t leader_lease;
    uint64_t leader_rev; /* its create_revision: the epoch */
    bool has_handover;
    char handover[SAM_ELECT_NAME_MAX + 1];
    int64_t handover_mod; /* its mod_revision: a delete is guarded by it */
    s_member_t members[S_MEMBERS_MAX];
    size_t nmembers;
} s_view_t;

typedef enum { S_OK, S_UNREACHABLE, S_REFUSED } s_http_rc_t;

struct sam_elect_t {
    /* fixed at new */
    char *endpoint[S_ENDPOINTS_MAX];
    int nendpoints;
    char service[SAM_ELECT_NAME_MAX + 1];
    char instance[SAM_ELECT_NAME_MAX + 1];
    char leader_key[S_KEY_MAX], members_prefix[S_KEY_MAX], members_end[S_KEY_MAX];
    char member_key[S_KEY_MAX], handover_key[S_KEY_MAX];
    int ttl_ms;             /* as asked */
    int ttl_s;              /* as asked of etcd: ttl_ms rounded up */
    int round_ms;           /* ttl_ms / 4 */
    int handover_ms;        /* the leader's wait for a handover's target */
    int min_members;        /* live members needed for a campaign (sam_elect_opts_t) */
    int64_t waiting_logged; /* when too few members were last logged */
    pthread_t thread;
    bool started;

    /* shared with the caller: under mu */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop, again, abandon;
    sam_elect_state_t state;
    int64_t write_until; /* monotonic ms; 0: may not write */
    uint64_t position;
    unsigned leaderships; /* how often this elector became the leader (the selftest's) */
    int64_t paused_until; /* the selftest's: no rounds before this monotonic ms */
    char want_handover[SAM_ELECT_NAME_MAX + 1]; /* asked by the caller, not yet written */

    /* the thread's own */
    CURL *curl;
    int current; /* the endpoint tried first */
    char *body;
    size_t body_len;
    bool body_too_long;
    int64_t lease;          /* our lease's ID; 0: none */
    int64_t granted_ms;     /* the TTL etcd granted, in ms */
    int64_t lease_until;    /* sent + granted of the last successful keepalive: the lease's end */
    int64_t member_since;   /* when our member key was first put under this lease; 0: not yet */
    int64_t handover_since; /* when this leader saw the handover it is waiting out; 0: none */
    bool unreachable_logged;
    char last_endpoint[256];
};

/* ---- small helpers ----------------------------------------------------------------------- */

/* [A-Za-z0-9._-], 1..SAM_ELECT_NAME_MAX bytes */
static bool s_valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > SAM_ELECT_NAME_MAX) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

static bool s_valid_prefix(const char *s)
{
    if (!s || s[0] != '/' || strlen(s) > SAM_ELECT_PREFIX_MAX) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return false;
    return true;
}

static void s_b64(const char *bin, size_t len, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, (const unsigned char *)bin, len, sodium_base64_VARIANT_ORIGINAL);
}

/* A base64 string from etcd into out as a C string; -1 when it is not base64, too long
   or holds a NUL. */
static int s_unb64(const char *b64, char *out, size_t cap)
{
    size_t len = 0;
    if (!b64 || sodium_base642bin((unsigned char *)out, cap - 1, b64, strlen(b64), NULL, &len, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) != 0)
        return -1;
    out[len] = 0;
    return memchr(out, 0, len) ? -1 : 0;
}

/* An int64 field of etcd's JSON: a string of digits, or a number; 0 when absent. */
static int64_t s_int(json_t *v)
{
    if (json_is_integer(v)) return json_integer_value(v);
    if (json_is_string(v)) return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

static void s_put_int(json_t *obj, const char *key, int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)v);
    json_object_set_new(obj, key, json_string(num));
}

static json_t *s_key(const char *key)
{
    char b64[S_B64_MAX];
    s_b64(key, strlen(key), b64, sizeof b64);
    return json_string(b64);
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static size_t s_on_body(char *data, size_t size, size_t n, void *arg)
{
    sam_elect_t *self = arg;
    size_t len = size * n;
    if (self->body_len + len > S_REPLY_MAX) {
        self->body_too_long = true;
        return 0;
    }
    char *grown = realloc(self->body, self->body_len + len + 1);
    if (!grown) return 0;
    self->body = grown;
    memcpy(self->body + self->body_len, data, len);
    self->body_len += len;
    self->body[self->body_len] = 0;
    return len;
}

/*  POSTs `req` (consumed) to path on the endpoints in turn, from the current one, until one
    serves it: answers a JSON object with a status below 500. An endpoint that does not —
    no connection, a timeout, a 5xx (a member cut off from its cluster's quorum), something
    that is not etcd's JSON — is passed over for the next. S_OK with the answer in *reply
    (the caller frees) and its HTTP status in *status; S_UNREACHABLE when no endpoint served
    (the reasons are debug lines); S_REFUSED when the request could not be written. *sent is
    the monotonic time the request that was served was sent. */
static s_http_rc_t s_post(sam_elect_t *self, const char *path, json_t *req, json_t **reply,
                          long *status, int64_t *sent)
{
    *reply = NULL;
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text) return S_REFUSED;
    s_http_rc_t rc = S_UNREACHABLE;
    for (int i = 0; i < self->nendpoints; i++) {
        int at = (self->current + i) % self->nendpoints;
        char url[512];
        snprintf(url, sizeof url, "%s%s", self->endpoint[at], path);
        snprintf(self->last_endpoint, sizeof self->last_endpoint, "%s", self->endpoint[at]);
        self->body_len = 0;
        self->body_too_long = false;
        curl_easy_setopt(self->curl, CURLOPT_URL, url);
        curl_easy_setopt(self->curl, CURLOPT_POSTFIELDS, text);
        if (sent) *sent = zclock_mono();
        CURLcode cc = curl_easy_perform(self->curl);
        if (cc != CURLE_OK) {
            sam_debug("elect.http endpoint=%s path=%s error=%s", sam_logv(self->endpoint[at]), path,
                      sam_logv(self->body_too_long ? "answer too long" : curl_easy_strerror(cc)));
            continue;
        }
        curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, status);
        json_error_t jerr;
        *reply = json_loadb(self->body ? self->body : "", self->body_len, 0, &jerr);
        if (*status >= 500 || !json_is_object(*reply)) {
            sam_debug("elect.http endpoint=%s path=%s status=%ld error=%s",
                      sam_logv(self->endpoint[at]), path, *status,
                      *status >= 500 ? "\"server error\"" : "\"not etcd's JSON\"");
            json_decref(*reply);
            *reply = NULL;
            continue;
        }
        self->current = at;
        rc = S_OK;
        break;
    }
    free(text);
    return rc;
}

/* ---- the state the caller sees ------------------------------------------------------------ */

/* Sets the role, leader and epoch; logs a change. Under no lock: takes mu itself. */
static void s_set_role(sam_elect_t *self, sam_elect_role_t role, const char *leader, uint64_t epoch,
                       const char *lost_reason)
{
    pthread_mutex_lock(&self->mu);
    sam_elect_state_t was = self->state;
    self->state.role = role;
    self->state.epoch = epoch;
    snprintf(self->state.leader, sizeof self->state.leader, "%s", leader ? leader : "");
    if (role != SAM_ELECT_LEADER) self->write_until = 0;
    if (role == SAM_ELECT_LEADER && was.role != SAM_ELECT_LEADER) self->leaderships++;
    pthread_mutex_unlock(&self->mu);

    if (was.role == SAM_ELECT_LEADER && role != SAM_ELECT_LEADER)
        sam_warn("elect.lost service=%s epoch=%llu reason=%s", self->service,
                 (unsigned long long)was.epoch, lost_reason ? lost_reason : "unknown");
    if (role == SAM_ELECT_LEADER && (was.role != SAM_ELECT_LEADER || was.epoch != epoch))
        sam_info("elect.leader service=%s instance=%s epoch=%llu", self->service, self->instance,
                 (unsigned long long)epoch);
    if (role == SAM_ELECT_FOLLOWER &&
        (was.role != SAM_ELECT_FOLLOWER || was.epoch != epoch || strcmp(was.leader, leader) != 0))
        sam_info("elect.follower service=%s leader=%s epoch=%llu", self->service, sam_logv(leader),
                 (unsigned long long)epoch);
    if (role != was.role) {
        pthread_mutex_lock(&self->mu);
        self->again = true; /* a change: the next round at once (the member key's role) */
        pthread_mutex_unlock(&self->mu);
    }
}

static void s_set_reachable(sam_elect_t *self, bool reachable)
{
    pthread_mutex_lock(&self->mu);
    self->state.reachable = reachable;
    pthread_mutex_unlock(&self->mu);
    if (!reachable && !self->unreachable_logged) {
        sam_warn("elect.unreachable service=%s endpoint=%s", self->service,
                 sam_logv(self->last_endpoint));
        self->unreachable_logged = true;
    } else if (reachable && self->unreachable_logged) {
        sam_info("elect.reachable service=%s endpoint=%s", self->service,
                 sam_logv(self->last_endpoint));
        self->unreachable_logged = false;
    }
}

static void s_set_handover(sam_elect_t *self, const char *to)
{
    pthread_mutex_lock(&self->mu);
    snprintf(self->state.handover, sizeof self->state.handover, "%s", to ? to : "");
    pthread_mutex_unlock(&self->mu);
}

/* ---- one action per step of a round ------------------------------------------------------- */

/* etcd no longer knows our lease: leadership ends at once, a new lease next round. */
static void s_lease_gone(sam_elect_t *self, long status)
{
    sam_warn("elect.lease-gone service=%s lease=%lld status=%ld", self->service,
             (long long)self->lease, status);
    self->lease = 0;
    self->member_since = 0;
    s_set_role(self, SAM_ELECT_CANDIDATE, "", 0, "lease-gone");
}

/*  Step 1: keeps the lease alive, or grants one. 0 with *sent; -1 unreachable. A lease etcd
    no longer knows ends leadership at once and is replaced. */
static int s_lease(sam_elect_t *self, int64_t *sent)
{
    json_t *reply;
    long status = 0;
    if (self->lease) {
        json_t *req = json_object();
        s_put_int(req, "ID", self->lease);
        s_http_rc_t rc = s_post(self, "/v3/lease/keepalive", req, &reply, &status, sent);
        if (rc == S_UNREACHABLE) return -1;
        /* one POSTed message, one {"result":{...,"TTL":"N"}}; TTL absent (0): gone */
        json_t *result = reply ? json_object_get(reply, "result") : NULL;
        int64_t ttl = result ? s_int(json_object_get(result, "TTL")) : 0;
        json_decref(reply);
        if (ttl > 0) {
            self->granted_ms = ttl * 1000;
            self->lease_until = *sent + self->granted_ms;
            return 0;
        }
        s_lease_gone(self, status);
    }
    json_t *req = json_object();
    json_object_set_new(req, "TTL", json_integer(self->ttl_s));
    s_http_rc_t rc = s_post(self, "/v3/lease/grant", req, &reply, &status, sent);
    if (rc == S_UNREACHABLE) return -1;
    int64_t id = reply ? s_int(json_object_get(reply, "ID")) : 0;
    int64_t ttl = reply ? s_int(json_object_get(reply, "TTL")) : 0;
    if (id == 0 || ttl <= 0) {
        json_t *err = reply ? json_object_get(reply, "error") : NULL;
        sam_warn("elect.grant-refused service=%s status=%ld reason=%s", self->service, status,
                 sam_logv(json_is_string(err) ? json_string_value(err) : "no lease in the answer"));
        json_decref(reply);
        return -1;
    }
    json_decref(reply);
    if (ttl > self->ttl_s)
        sam_info("elect.ttl service=%s asked_s=%d granted_s=%lld", self->service, self->ttl_s,
                 (long long)ttl);
    self->lease = id;
    self->granted_ms = ttl * 1000;
    self->lease_until = *sent + self->granted_ms;
    self->member_since = 0;
    return 0;
}

/* A put of key = value under our lease: 0; -1 when etcd did not answer; -2 when it refused
   (logged; "requested lease not found" ends the lease). */
static int s_put(sam_elect_t *self, const char *key, const char *value, int64_t lease)
{
    json_t *req = json_object();
    json_object_set_new(req, "key", s_key(key));
    json_object_set_new(req, "value", s_key(value));
    s_put_int(req, "lease", lease);
    json_t *reply;
    long status = 0;
    s_http_rc_t rc = s_post(self, "/v3/kv/put", req, &reply, &status, NULL);
    int ok = rc == S_UNREACHABLE ? -1 : rc == S_OK && status == 200 ? 0 : -2;
    if (ok == -2) {
        json_t *err = json_object_get(reply, "error");
        sam_warn("elect.put-refused service=%s status=%ld reason=%s", self->service, status,
                 sam_logv(json_is_string(err) ? json_string_value(err) : "?"));
        if (status == 404 && lease == self->lease && lease) s_lease_gone(self, status);
    }
    json_decref(reply);
    return ok;
}

/*  The handover key naming `to`, under a lease of its own that is never kept alive: the
    leader's wait and a round more. So a handover that cannot happen (its target lags and
    there is no leader to give it up) ends by itself. 0, -1 unreachable, -2 refused. */
static int s_put_handover(sam_elect_t *self, const char *to)
{
    json_t *req = json_object(), *reply;
    json_object_set_new(req, "TTL", json_integer((self->handover_ms + 999) / 1000 + self->ttl_s));
    long status = 0;
    s_http_rc_t rc = s_post(self, "/v3/lease/grant", req, &reply, &status, NULL);
    int64_t lease = rc == S_OK ? s_int(json_object_get(reply, "ID")) : 0;
    json_decref(reply);
    if (rc == S_UNREACHABLE) return -1;
    if (!lease) {
        sam_warn("elect.grant-refused service=%s status=%ld reason=\"no lease for the handover\"",
                 self->service, status);
        return -2;
    }
    return s_put(self, self->handover_key, to, lease);
}

/* Step 2: the caller's handover request becomes the handover key. */
static void s_write_handover(sam_elect_t *self)
{
    char to[SAM_ELECT_NAME_MAX + 1];
    pthread_mutex_lock(&self->mu);
    snprintf(to, sizeof to, "%s", self->want_handover);
    bool self_leads = self->state.role == SAM_ELECT_LEADER;
    pthread_mutex_unlock(&self->mu);
    if (!*to) return;
    if (strcmp(to, self->instance) == 0 && self_leads) {
        sam_info("elect.handover service=%s to=%s reason=\"already the leader\"", self->service,
                 sam_logv(to));
    } else if (s_put_handover(self, to) != 0)
        return; /* asked again next round */
    else
        sam_info("elect.handover service=%s to=%s asked_by=%s", self->service, sam_logv(to),
                 self->instance);
    pthread_mutex_lock(&self->mu);
    if (strcmp(self->want_handover, to) == 0) self->want_handover[0] = 0;
    pthread_mutex_unlock(&self->mu);
}

/* Step 3: our member key: 0, -1 unreachable, -2 refused. */
static int s_write_member(sam_elect_t *self, int64_t now)
{
    pthread_mutex_lock(&self->mu);
    uint64_t position = self->position;
    sam_elect_role_t role = self->state.role;
    pthread_mutex_unlock(&self->mu);
    char value[128];
    snprintf(value, sizeof value, "{\"position\":%llu,\"role\":\"%s\"}",
             (unsigned long long)position, role == SAM_ELECT_LEADER ? "leader" : "follower");
    int rc = s_put(self, self->member_key, value, self->lease);
    if (rc == 0 && !self->member_since) self->member_since = now;
    return rc;
}

/* The kvs of one range response of a txn. */
static json_t *s_kvs(json_t *responses, size_t i)
{
    json_t *range = json_object_get(json_array_get(responses, i), "response_range");
    return json_object_get(range, "kvs");
}

/* Step 4: the snapshot, in one read-only txn. 0; -1 unreachable; -2 refused (logged). */
static int s_read_view(sam_elect_t *self, s_view_t *view)
{
    memset(view, 0, sizeof *view);
    json_t *req = json_object(), *ops = json_array();
    json_t *r1 = json_object(), *r2 = json_object(), *r3 = json_object();
    json_object_set_new(r1, "key", s_key(self->leader_key));
    json_object_set_new(r2, "key", s_key(self->members_prefix));
    json_object_set_new(r2, "range_end", s_key(self->members_end));
    s_put_int(r2, "limit", S_MEMBERS_MAX);
    json_object_set_new(r3, "key", s_key(self->handover_key));
    json_array_append_new(ops, json_pack("{s:o}", "request_range", r1));
    json_array_append_new(ops, json_pack("{s:o}", "request_range", r2));
    json_array_append_new(ops, json_pack("{s:o}", "request_range", r3));
    json_object_set_new(req, "success", ops);
    json_t *reply;
    long status = 0;
    s_http_rc_t rc = s_post(self, "/v3/kv/txn", req, &reply, &status, NULL);
    if (rc != S_OK || status != 200) {
        if (rc != S_UNREACHABLE)
            sam_warn("elect.read-refused service=%s status=%ld", self->service, status);
        json_decref(reply);
        return rc == S_UNREACHABLE ? -1 : -2;
    }
    json_t *responses = json_object_get(reply, "responses");
    json_t *kv = json_array_get(s_kvs(responses, 0), 0);
    if (kv) {
        view->has_leader = true;
        if (s_unb64(json_string_value(json_object_get(kv, "value")), view->leader,
                    sizeof view->leader) != 0 ||
            !s_valid_name(view->leader))
            snprintf(view->leader, sizeof view->leader, "(unreadable)");
        view->leader_lease = s_int(json_object_get(kv, "lease"));
        view->leader_rev = (uint64_t)s_int(json_object_get(kv, "create_revision"));
    }
    size_t plen = strlen(self->members_prefix), i;
    json_t *m;
    json_array_foreach(s_kvs(responses, 1), i, m)
    {
        char key[S_KEY_MAX], value[256];
        if (view->nmembers == S_MEMBERS_MAX) break;
        if (s_unb64(json_string_value(json_object_get(m, "key")), key, sizeof key) != 0 ||
            strncmp(key, self->members_prefix, plen) != 0 || !s_valid_name(key + plen))
            continue;
        s_member_t *mm = &view->members[view->nmembers];
        snprintf(mm->name, sizeof mm->name, "%s", key + plen);
        mm->position = 0;
        if (s_unb64(json_string_value(json_object_get(m, "value")), value, sizeof value) == 0) {
            json_t *doc = json_loads(value, 0, NULL);
            json_t *pos = json_object_get(doc, "position");
            if (json_is_integer(pos) && json_integer_value(pos) >= 0)
                mm->position = (uint64_t)json_integer_value(pos);
            json_decref(doc);
        }
        view->nmembers++;
    }
    kv = json_array_get(s_kvs(responses, 2), 0);
    if (kv && s_unb64(json_string_value(json_object_get(kv, "value")), view->handover,
                      sizeof view->handover) == 0) {
        view->has_handover = true;
        view->handover_mod = s_int(json_object_get(kv, "mod_revision"));
        if (!s_valid_name(view->handover))
            snprintf(view->handover, sizeof view->handover, "(unreadable)");
    }
    json_decref(reply);
    return 0;
}

static const s_member_t *s_member(const s_view_t *view, const char *name)
{
    for (size_t i = 0; i < view->nmembers; i++)
        if (strcmp(view->members[i].name, name) == 0) return &view->members[i];
    return NULL;
}

/*  A txn guarded by one compare of `key`: target ("CREATE" or "MOD") == rev, then delete
    the key; or, with put_value, create_revision == 0, then put it under our lease. Returns
    1 when it succeeded (*revision: the header's), 0 when the compare failed, -1 when etcd
    did not answer or refused. */
static int s_guarded(sam_elect_t *self, const char *key, const char *target, int64_t rev,
                     const char *put_value, uint64_t *revision)
{
    json_t *cmp = json_object();
    json_object_set_new(cmp, "key", s_key(key));
    json_object_set_new(cmp, "target", json_string(target));
    json_object_set_new(cmp, "result", json_string("EQUAL"));
    s_put_int(cmp, strcmp(target, "CREATE") == 0 ? "create_revision" : "mod_revision", rev);
    json_t *op = json_object();
    json_object_set_new(op, "key", s_key(key));
    if (put_value) {
        json_object_set_new(op, "value", s_key(put_value));
        s_put_int(op, "lease", self->lease);
    }
    json_t *req = json_pack("{s:[o], s:[{s:o}]}", "compare", cmp, "success",
                            put_value ? "request_put" : "request_delete_range", op);
    json_t *reply;
    long status = 0;
    s_http_rc_t rc = s_post(self, "/v3/kv/txn", req, &reply, &status, NULL);
    int out = -1;
    if (rc == S_OK && status == 200) {
        out = json_is_true(json_object_get(reply, "succeeded")) ? 1 : 0;
        if (revision)
            *revision =
                (uint64_t)s_int(json_object_get(json_object_get(reply, "header"), "revision"));
    } else if (rc == S_OK) {
        json_t *err = json_object_get(reply, "error");
        sam_warn("elect.txn-refused service=%s status=%ld reason=%s", self->service, status,
                 sam_logv(json_is_string(err) ? json_string_value(err) : "?"));
        if (status == 404) s_lease_gone(self, status);
    }
    json_decref(reply);
    return out;
}

/* Campaigns: 1 when we became the leader (*epoch), 0 when someone else did first, -1. */
static int s_campaign(sam_elect_t *self, uint64_t *epoch)
{
    return s_guarded(self, self->leader_key, "CREATE", 0, self->instance, epoch);
}

/* Whether a candidate may campaign now: rule in sam_elect.h. */
static bool s_may_campaign(sam_elect_t *self, const s_view_t *view, int64_t now)
{
    if (!self->member_since || now - self->member_since < 2 * self->round_ms) return false;
    if (view->has_handover && strcmp(view->handover, self->instance) != 0 &&
        s_member(view, view->handover))
        return false; /* a handover to a live member: only it campaigns */
    size_t live = view->nmembers + (s_member(view, self->instance) ? 0 : 1);
    if (self->min_members > 1 && live < (size_t)self->min_members) {
        if (!self->waiting_logged || now - self->waiting_logged >= 10000) {
            sam_info("elect.waiting service=%s live=%zu needed=%d reason=\"too few members to "
                     "compare positions: one holding every acknowledged write may be down\"",
                     self->service, live, self->min_members);
            self->waiting_logged = now;
        }
        return false;
    }
    pthread_mutex_lock(&self->mu);
    uint64_t mine = self->position;
    pthread_mutex_unlock(&self->mu);
    for (size_t i = 0; i < view->nmembers; i++)
        if (strcmp(view->members[i].name, self->instance) != 0 && view->members[i].position > mine)
            return false;
    return true;
}

/*  The leader's part of a handover to another live member: no writes from now; resign once
    the target has caught up; give up the handover after handover_ms. Returns true when
    we resigned. */
static bool s_lead_handover(sam_elect_t *self, const s_view_t *view, int64_t now)
{
    const s_member_t *target = s_member(view, view->handover);
    pthread_mutex_lock(&self->mu);
    self->write_until = 0;
    snprintf(self->state.handover, sizeof self->state.handover, "%s", view->handover);
    uint64_t mine = self->position;
    pthread_mutex_unlock(&self->mu);
    if (!self->handover_since) {
        self->handover_since = now;
        sam_info("elect.handover service=%s to=%s position=%llu waiting=true", self->service,
                 sam_logv(view->handover), (unsigned long long)mine);
    }
    if (target->position >= mine) {
        if (s_guarded(self, self->leader_key, "CREATE", (int64_t)view->leader_rev, NULL, NULL) != 1)
            return false; /* asked again next round */
        self->handover_since = 0;
        s_set_role(self, SAM_ELECT_CANDIDATE, "", 0, "handover");
        return true;
    }
    if (now - self->handover_since >= self->handover_ms) {
        sam_warn("elect.handover-timeout service=%s to=%s position=%llu target_position=%llu "
                 "waited_ms=%lld",
                 self->service, sam_logv(view->handover), (unsigned long long)mine,
                 (unsigned long long)target->position, (long long)(now - self->handover_since));
        if (s_guarded(self, self->handover_key, "MOD", view->handover_mod, NULL, NULL) >= 0) {
            self->handover_since = 0;
            s_set_handover(self, NULL);
        }
    }
    return false;
}

/* Step 5: what the snapshot makes of us. `sent` is this round's keepalive's. */
static void s_decide(sam_elect_t *self, const s_view_t *view, int64_t sent, int64_t now)
{
    bool handover_live = view->has_handover && s_member(view, view->handover);
    if (view->has_leader) {
        bool ours = strcmp(view->leader, self->instance) == 0 && view->leader_lease == self->lease;
        if (!ours) {
            self->handover_since = 0;
            s_set_role(self, SAM_ELECT_FOLLOWER, view->leader, view->leader_rev, "taken");
            s_set_handover(self, handover_live ? view->handover : NULL);
            return;
        }
        s_set_role(self, SAM_ELECT_LEADER, self->instance, view->leader_rev, NULL);
        if (view->has_handover && (strcmp(view->handover, self->instance) == 0 || !handover_live)) {
            /* done (we are the one asked for), or it names no live member: it goes */
            if (strcmp(view->handover, self->instance) != 0)
                sam_warn("elect.handover-dropped service=%s to=%s reason=\"not a live member\"",
                         self->service, sam_logv(view->handover));
            s_guarded(self, self->handover_key, "MOD", view->handover_mod, NULL, NULL);
            handover_live = false;
        }
        if (handover_live) {
            s_lead_handover(self, view, now);
            return;
        }
        self->handover_since = 0;
        int64_t ttl = self->granted_ms < self->ttl_ms ? self->granted_ms : self->ttl_ms;
        pthread_mutex_lock(&self->mu);
        self->state.handover[0] = 0;
        self->write_until = sent + ttl - self->ttl_ms / 4;
        pthread_mutex_unlock(&self->mu);
        return;
    }
    self->handover_since = 0;
    s_set_role(self, SAM_ELECT_CANDIDATE, "", 0, "gone");
    s_set_handover(self, handover_live ? view->handover : NULL);
    if (!s_may_campaign(self, view, now)) return;
    uint64_t epoch = 0;
    int won = s_campaign(self, &epoch);
    if (won == 1) {
        int64_t ttl = self->granted_ms < self->ttl_ms ? self->granted_ms : self->ttl_ms;
        s_set_role(self, SAM_ELECT_LEADER, self->instance, epoch, NULL);
        pthread_mutex_lock(&self->mu);
        self->write_until = sent + ttl - self->ttl_ms / 4; /* its lease, kept alive at `sent` */
        pthread_mutex_unlock(&self->mu);
        if (view->has_handover && strcmp(view->handover, self->instance) == 0) {
            s_guarded(self, self->handover_key, "MOD", view->handover_mod, NULL, NULL);
            s_set_handover(self, NULL);
        }
    } else if (won == 0) {
        pthread_mutex_lock(&self->mu);
        self->again = true; /* someone else won: read who in a round at once */
        pthread_mutex_unlock(&self->mu);
    }
}

/* When etcd answered nothing this round: a leader whose lease may have run out in etcd's
   view stops being one (its may_write had already run out by itself). */
static void s_unreachable(sam_elect_t *self, int64_t now)
{
    s_set_reachable(self, false);
    pthread_mutex_lock(&self->mu);
    bool leader = self->state.role == SAM_ELECT_LEADER;
    pthread_mutex_unlock(&self->mu);
    if (leader && now >= self->lease_until)
        s_set_role(self, SAM_ELECT_CANDIDATE, "", 0, "lease-expired");
}

static void s_round(sam_elect_t *self)
{
    int64_t sent = 0;
    if (s_lease(self, &sent) != 0) {
        s_unreachable(self, zclock_mono());
        return;
    }
    s_write_handover(self);
    s_view_t view;
    int rc = s_write_member(self, zclock_mono());
    if (rc == 0) rc = s_read_view(self, &view);
    if (rc == -2) {
        s_set_reachable(self, true); /* it answered, and refused: logged; the next round */
        return;
    }
    if (rc != 0) {
        s_unreachable(self, zclock_mono());
        return;
    }
    s_set_reachable(self, true);
    s_decide(self, &view, sent, zclock_mono());
}

static void s_revoke(sam_elect_t *self)
{
    if (!self->lease) return;
    json_t *req = json_object(), *reply;
    s_put_int(req, "ID", self->lease);
    long status = 0;
    if (s_post(self, "/v3/lease/revoke", req, &reply, &status, NULL) == S_OK && status == 200)
        sam_info("elect.resigned service=%s instance=%s", self->service, self->instance);
    json_decref(reply);
    self->lease = 0;
}

static void *s_run(void *arg)
{
    sam_elect_t *self = arg;
    pthread_mutex_lock(&self->mu);
    while (!self->stop) {
        self->again = false;
        int64_t started = zclock_mono(), next = self->paused_until;
        if (started >= next) {
            pthread_mutex_unlock(&self->mu);
            s_round(self);
            pthread_mutex_lock(&self->mu);
            next = started + self->round_ms;
        }
        while (!self->stop && !self->again && zclock_mono() < next) {
            int64_t wait = next - zclock_mono();
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&self->cond, &self->mu, &ts);
        }
    }
    bool abandon = self->abandon;
    self->write_until = 0;
    pthread_mutex_unlock(&self->mu);
    if (!abandon) s_revoke(self);
    return NULL;
}

/* ---- the public calls --------------------------------------------------------------------- */

static sam_elect_t *s_refuse(const char *reason)
{
    sam_error("elect.refused reason=%s", sam_logv(reason));
    return NULL;
}

/*  An elector's state and HTTP handle, no thread yet; NULL (logged) when an option is
    unusable. A member needs its instance name; one who only asks for a handover does not. */
static sam_elect_t *s_make(const sam_elect_opts_t *opts, bool member)
{
    if (!opts) return s_refuse("no options");
    const char *prefix = opts->prefix ? opts->prefix : "/samordna";
    if (!s_valid_name(opts->service)) return s_refuse("the service is not a name [A-Za-z0-9._-]");
    if ((member || opts->instance) && !s_valid_name(opts->instance))
        return s_refuse("the instance is not a name [A-Za-z0-9._-] of at most 95 bytes");
    if (!s_valid_prefix(prefix))
        return s_refuse("--etcd-prefix must start with / and hold no control character");
    int ttl = opts->ttl_ms ? opts->ttl_ms : SAM_ELECT_TTL_MS;
    if (ttl < 1000 || ttl > 600000) return s_refuse("--etcd-ttl-ms must be 1000..600000");
    if (!opts->endpoints || !*opts->endpoints) return s_refuse("--etcd names no endpoint");

    sam_elect_t *self = calloc(1, sizeof *self);
    if (!self) return s_refuse("out of memory");
    pthread_mutex_init(&self->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &ca);
    pthread_condattr_destroy(&ca);
    const char *reason = NULL;
    char *list = strdup(opts->endpoints), *save = NULL;
    for (char *tok = list ? strtok_r(list, ",", &save) : NULL; tok && !reason;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++; /* "a, b" */
        size_t len = strlen(tok);
        while (len && (tok[len - 1] == '/' || tok[len - 1] == ' '))
            tok[--len] = 0; /* "http://h:2379/" and "http://h:2379" are one */
        if (self->nendpoints == S_ENDPOINTS_MAX)
            reason = "--etcd names more than 16 endpoints";
        else if ((strncmp(tok, "http://", 7) != 0 && strncmp(tok, "https://", 8) != 0) ||
                 len > 200 || strpbrk(tok, " \t\r\n\"\\"))
            reason = "every --etcd endpoint must be http://HOST:PORT or https://HOST:PORT";
        else if (!(self->endpoint[self->nendpoints++] = strdup(tok)))
            reason = "out of memory";
    }
    if (!list) reason = "out of memory";
    free(list);
    if (!reason && self->nendpoints == 0) reason = "--etcd names no endpoint";
    snprintf(self->service, sizeof self->service, "%s", opts->service);
    snprintf(self->instance, sizeof self->instance, "%s", opts->instance ? opts->instance : "");
    snprintf(self->leader_key, S_KEY_MAX, "%s/%s/leader", prefix, opts->service);
    snprintf(self->members_prefix, S_KEY_MAX, "%s/%s/members/", prefix, opts->service);
    snprintf(self->members_end, S_KEY_MAX, "%s/%s/members0", prefix, opts->service); /* '/'+1 */
    snprintf(self->member_key, S_KEY_MAX, "%s/%s/members/%s", prefix, opts->service,
             opts->instance);
    snprintf(self->handover_key, S_KEY_MAX, "%s/%s/handover", prefix, opts->service);
    self->ttl_ms = ttl;
    self->ttl_s = (ttl + 999) / 1000;
    self->round_ms = ttl / 4;
    self->handover_ms = opts->handover_ms > 0 ? opts->handover_ms : SAM_ELECT_HANDOVER_MS;
    self->min_members = opts->min_members;
    self->state.reachable = false;
    if (!reason) {
        curl_global_init(CURL_GLOBAL_DEFAULT); /* counted: once per elector, undone in destroy */
        self->curl = curl_easy_init();
        if (!self->curl) reason = "libcurl could not start";
    }
    if (!reason) {
        static const char *const headers[] = {"Content-Type: application/json", NULL};
        struct curl_slist *h = NULL;
        for (int i = 0; headers[i]; i++)
            h = curl_slist_append(h, headers[i]);
        curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(self->curl, CURLOPT_PRIVATE, h); /* freed in destroy */
        curl_easy_setopt(self->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(self->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        long timeout = self->round_ms < 200 ? 200 : self->round_ms;
        curl_easy_setopt(self->curl, CURLOPT_TIMEOUT_MS, timeout);
        curl_easy_setopt(self->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout);
        curl_easy_setopt(self->curl, CURLOPT_WRITEFUNCTION, s_on_body);
        curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, self);
    }
    if (reason) {
        sam_elect_destroy(&self);
        return s_refuse(reason);
    }
    return self;
}

sam_elect_t *sam_elect_new(const sam_elect_opts_t *opts)
{
    sam_elect_t *self = s_make(opts, true);
    if (!self) return NULL;
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        sam_elect_destroy(&self);
        return s_refuse("the elector's thread could not start");
    }
    self->started = true;
    sam_info("elect.start service=%s instance=%s ttl_ms=%d endpoints=%d", self->service,
             self->instance, self->ttl_ms, self->nendpoints);
    return self;
}

void sam_elect_destroy(sam_elect_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_elect_t *self = *self_p;
    if (self->started) {
        pthread_mutex_lock(&self->mu);
        self->stop = true;
        pthread_cond_signal(&self->cond);
        pthread_mutex_unlock(&self->mu);
        pthread_join(self->thread, NULL);
    }
    if (self->curl) {
        struct curl_slist *h = NULL;
        curl_easy_getinfo(self->curl, CURLINFO_PRIVATE, (char **)&h);
        curl_easy_cleanup(self->curl);
        curl_slist_free_all(h);
        curl_global_cleanup();
    }
    for (int i = 0; i < self->nendpoints; i++)
        free(self->endpoint[i]);
    free(self->body);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

void sam_elect_state(sam_elect_t *self, sam_elect_state_t *out)
{
    pthread_mutex_lock(&self->mu);
    *out = self->state;
    pthread_mutex_unlock(&self->mu);
}

bool sam_elect_may_write(sam_elect_t *self, int64_t now_ms)
{
    pthread_mutex_lock(&self->mu);
    bool ok = self->state.role == SAM_ELECT_LEADER && !self->state.handover[0] &&
              self->write_until > 0 && now_ms < self->write_until;
    pthread_mutex_unlock(&self->mu);
    return ok;
}

void sam_elect_set_position(sam_elect_t *self, uint64_t seq)
{
    pthread_mutex_lock(&self->mu);
    self->position = seq;
    pthread_mutex_unlock(&self->mu);
}

int sam_elect_ask_handover(const sam_elect_opts_t *opts, const char *instance, char *err,
                           size_t errcap)
{
    snprintf(err, errcap, "%s", "");
    if (!s_valid_name(instance)) {
        snprintf(err, errcap, "--instance must be an instance name [A-Za-z0-9._-]");
        return -1;
    }
    sam_elect_t *self = s_make(opts, false);
    if (!self) {
        snprintf(err, errcap, "unusable --etcd, --etcd-prefix or service (see the log)");
        return -1;
    }
    int rc = s_put_handover(self, instance);
    if (rc == -1)
        snprintf(err, errcap, "etcd did not answer at %s", self->last_endpoint);
    else if (rc == -2)
        snprintf(err, errcap, "etcd refused the handover key (see the log)");
    else
        sam_info("elect.handover service=%s to=%s asked_by=\"(not a member)\"", self->service,
                 sam_logv(instance));
    sam_elect_destroy(&self);
    return rc == 0 ? 0 : -1;
}

int sam_elect_handover(sam_elect_t *self, const char *instance)
{
    if (!s_valid_name(instance)) {
        sam_warn("elect.handover-refused service=%s to=%s reason=\"not an instance name\"",
                 self->service, sam_logv(instance ? instance : ""));
        return -1;
    }
    pthread_mutex_lock(&self->mu);
    snprintf(self->want_handover, sizeof self->want_handover, "%s", instance);
    self->again = true;
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mu);
    return 0;
}

/* ---- selftest ------------------------------------------------------------------------------ */

#define CHECK SAM_CHECK

/* A real etcd on free loopback ports, its data in a folder of the scratch dir. */
typedef struct {
    char program[512];
    char dir[1024];
    char url[64], peer[64];
    pid_t pid;
} s_etcd_t;

/* The etcd program: $SAMORDNA_ETCD, else "etcd" on the PATH; false when there is none. */
static bool s_etcd_program(char *out, size_t cap)
{
    const char *env = getenv("SAMORDNA_ETCD");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/bin:/usr/sbin", path ? path : ""); /* Debian's too */
    char *copy = strdup(dirs), *save = NULL;
    bool found = false;
    for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/etcd", dir);
        found = access(out, X_OK) == 0;
    }
    free(copy);
    return found;
}

/* n free loopback ports, all held at once while they are chosen, so they differ. */
static void s_free_ports(int *port, int n)
{
    int fd[8];
    for (int i = 0; i < n && i < 8; i++) {
        fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        port[i] = -1;
        if (fd[i] >= 0 && bind(fd[i], (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd[i], (struct sockaddr *)&a, &len) == 0)
            port[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < n && i < 8; i++)
        if (fd[i] >= 0) close(fd[i]);
}

static double s_scale(void)
{
    const char *s = getenv("SAMORDNA_TIMEOUT_SCALE");
    double v = s ? atof(s) : 1;
    return v >= 1 ? v : 1;
}

static size_t s_sink(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* Whether etcd answers its /health with 200. */
static bool s_etcd_healthy(const s_etcd_t *etcd)
{
    char url[128];
    snprintf(url, sizeof url, "%s/health", etcd->url);
    CURL *c = curl_easy_init();
    if (!c) return false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 500L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_sink);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status == 200;
}

/* Starts etcd (again, on the same ports and data, when it ran before); true once healthy. A
   small election timeout lets etcd grant a 1 s lease (its floor is 1.5 election timeouts). */
static bool s_etcd_start(s_etcd_t *etcd)
{
    char data[1100], log[1100], cluster[128];
    snprintf(data, sizeof data, "%s/data", etcd->dir);
    snprintf(log, sizeof log, "%s/etcd.log", etcd->dir);
    snprintf(cluster, sizeof cluster, "selftest=%s", etcd->peer);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(etcd->program, "etcd", "--name", "selftest", "--data-dir", data,
              "--listen-client-urls", etcd->url, "--advertise-client-urls", etcd->url,
              "--listen-peer-urls", etcd->peer, "--initial-advertise-peer-urls", etcd->peer,
              "--initial-cluster", cluster, "--heartbeat-interval", "25", "--election-timeout",
              "250", (char *)NULL);
        _exit(127);
    }
    etcd->pid = pid;
    int64_t until = zclock_mono() + (int64_t)(15000 * s_scale());
    while (zclock_mono() < until) {
        if (s_etcd_healthy(etcd)) return true;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            etcd->pid = 0;
            return false;
        }
        zclock_sleep(50);
    }
    return false;
}

static void s_etcd_kill(s_etcd_t *etcd)
{
    if (etcd->pid <= 0) return;
    kill(etcd->pid, SIGKILL);
    waitpid(etcd->pid, NULL, 0);
    etcd->pid = 0;
}

/* The test's electors and what it has seen of them. */
typedef struct {
    sam_elect_t *e[4];
    int n;
    int overlap; /* polls that found two electors allowed to write */
    uint64_t last_epoch;
    bool epochs_rose; /* every new leadership seen had a higher epoch */
} s_group_t;

/* Polls every elector once: how many may write now (at most one, always), and whether the
   epoch seen rose. */
static void s_watch(s_group_t *g)
{
    int writers = 0;
    int64_t now = zclock_mono();
    for (int i = 0; i < g->n; i++) {
        if (!g->e[i]) continue;
        if (sam_elect_may_write(g->e[i], now)) writers++;
        sam_elect_state_t st;
        sam_elect_state(g->e[i], &st);
        if (st.role == SAM_ELECT_LEADER && st.epoch != g->last_epoch) {
            if (st.epoch < g->last_epoch) g->epochs_rose = false;
            g->last_epoch = st.epoch;
        }
    }
    if (writers > 1) g->overlap++;
}

/* Waits (watching) until exactly one elector leads and may write and every other follows it:
   its index, or -1 after timeout_ms. */
static int s_wait_leader(s_group_t *g, int64_t timeout_ms)
{
    int64_t until = zclock_mono() + (int64_t)(timeout_ms * s_scale());
    while (zclock_mono() < until) {
        s_watch(g);
        int leader = -1, leaders = 0, followers = 0, live = 0;
        sam_elect_state_t st[4];
        for (int i = 0; i < g->n; i++) {
            if (!g->e[i]) continue;
            live++;
            sam_elect_state(g->e[i], &st[i]);
            if (st[i].role == SAM_ELECT_LEADER && sam_elect_may_write(g->e[i], zclock_mono())) {
                leader = i;
                leaders++;
            }
        }
        for (int i = 0; leaders == 1 && i < g->n; i++)
            if (g->e[i] && i != leader && st[i].role == SAM_ELECT_FOLLOWER &&
                st[i].epoch == st[leader].epoch && strcmp(st[i].leader, st[leader].leader) == 0)
                followers++;
        if (leaders == 1 && followers == live - 1) return leader;
        zclock_sleep(10);
    }
    return -1;
}

/* Waits until elector `who` is the one leader: true, or false after timeout_ms. */
static bool s_wait_for(s_group_t *g, int who, int64_t timeout_ms)
{
    int64_t until = zclock_mono() + (int64_t)(timeout_ms * s_scale());
    while (zclock_mono() < until)
        if (s_wait_leader(g, 20) == who) return true;
    return false;
}

/* Watches for ms. */
static void s_watch_for(s_group_t *g, int64_t ms)
{
    int64_t until = zclock_mono() + ms;
    while (zclock_mono() < until) {
        s_watch(g);
        zclock_sleep(10);
    }
}

static sam_elect_t *s_elector(const char *endpoints, const char *service, const char *instance,
                              int handover_ms)
{
    sam_elect_opts_t o = {.endpoints = endpoints,
                          .prefix = "/selftest",
                          .service = service,
                          .instance = instance,
                          .ttl_ms = 1000,
                          .handover_ms = handover_ms};
    return sam_elect_new(&o);
}

/* A crash, as far as etcd can tell: the thread stops and nothing is revoked. */
static void s_abandon(sam_elect_t **self_p)
{
    pthread_mutex_lock(&(*self_p)->mu);
    (*self_p)->abandon = true;
    pthread_mutex_unlock(&(*self_p)->mu);
    sam_elect_destroy(self_p);
}

/* A stalled process, as far as etcd can tell: no rounds for ms (its lease runs on). */
static void s_pause(sam_elect_t *self, int ms)
{
    pthread_mutex_lock(&self->mu);
    self->paused_until = zclock_mono() + ms;
    pthread_mutex_unlock(&self->mu);
}

static unsigned s_leaderships(sam_elect_t *self)
{
    pthread_mutex_lock(&self->mu);
    unsigned n = self->leaderships;
    pthread_mutex_unlock(&self->mu);
    return n;
}

static void s_options_test(const char *url)
{
    sam_elect_opts_t o = {.endpoints = url, .service = "svc", .instance = "a", .ttl_ms = 1000};
    sam_elect_opts_t bad[] = {o, o, o, o, o, o, o};
    bad[0].instance = "a/b";
    bad[1].service = "";
    bad[2].endpoints = "ftp://127.0.0.1:1";
    bad[3].ttl_ms = 500;
    bad[4].prefix = "no-slash";
    bad[5].endpoints = ",";
    bad[6].instance = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(sam_elect_new(&bad[i]) == NULL);
    CHECK(sam_elect_new(NULL) == NULL);
    sam_elect_t *e = sam_elect_new(&o);
    CHECK(e != NULL);
    if (e) {
        CHECK(sam_elect_handover(e, "not a name") == -1);
        CHECK(sam_elect_handover(e, NULL) == -1);
    }
    sam_elect_destroy(&e);
    CHECK(e == NULL);
    sam_elect_destroy(&e);
}

/* Started together with no leader: the higher position wins, also when the lower one
   started first (a newcomer waits two rounds for the others' positions). */
static void s_cold_test(const s_etcd_t *etcd)
{
    s_group_t g = {.n = 2, .epochs_rose = true};
    g.e[0] = s_elector(etcd->url, "cold", "c-low", 0);
    if (g.e[0]) sam_elect_set_position(g.e[0], 3);
    zclock_sleep(50);
    g.e[1] = s_elector(etcd->url, "cold", "c-high", 0);
    if (g.e[1]) sam_elect_set_position(g.e[1], 7);
    CHECK(s_wait_leader(&g, 3000) == 1);
    CHECK(g.e[0] && s_leaderships(g.e[0]) == 0);
    CHECK(g.overlap == 0);
    for (int i = 0; i < g.n; i++)
        sam_elect_destroy(&g.e[i]);
}

/* Two electors: one leader; the leader destroyed, then crashed: another leads in time. */
static void s_two_test(const s_etcd_t *etcd, const char *closed)
{
    const int ttl = 1000, round = ttl / 4;
    /* a1 knows an endpoint that refuses connections and one that answers, but is no etcd
       (the runtime's own HTTP port: 404 in text), before the real one */
    char err[256], both[256];
    sam_metrics_t *metrics = sam_metrics_new("selftest_");
    sam_http_t *http = sam_http_new("127.0.0.1:0", metrics, err, sizeof err);
    CHECK(http != NULL);
    snprintf(both, sizeof both, "%s,http://127.0.0.1:%u,%s", closed,
             http ? (unsigned)sam_http_port(http) : 1u, etcd->url);
    s_group_t g = {.n = 3, .epochs_rose = true};
    g.e[0] = s_elector(etcd->url, "two", "a0", 0);
    g.e[1] = s_elector(both, "two", "a1", 0);
    int l = s_wait_leader(&g, 3000);
    CHECK(l >= 0);
    if (l < 0) goto done;
    sam_elect_state_t st;
    sam_elect_state(g.e[l], &st);
    uint64_t first = st.epoch;
    CHECK(first > 0 && st.reachable && strcmp(st.leader, l == 0 ? "a0" : "a1") == 0);
    /* fencing: never allowed to write as far as ttl ahead of now */
    int64_t now = zclock_mono();
    CHECK(sam_elect_may_write(g.e[l], now) && !sam_elect_may_write(g.e[l], now + ttl));
    s_watch_for(&g, 3 * round);
    CHECK(s_wait_leader(&g, 0) == l || s_wait_leader(&g, 1000) == l); /* it stays */

    /* destroyed: its lease is revoked, the other leads within ttl + a round */
    int64_t t0 = zclock_mono();
    sam_elect_destroy(&g.e[l]);
    int next = s_wait_leader(&g, 5000);
    int64_t took = zclock_mono() - t0;
    CHECK(next >= 0 && next != l);
    CHECK(took <= (ttl + round) * s_scale());
    if (next < 0) goto done;
    sam_elect_state(g.e[next], &st);
    CHECK(st.epoch > first);
    uint64_t second = st.epoch;

    /* crashed (nothing revoked): the lease must run out in etcd first — its TTL, etcd's
       sweep of expired leases (every 500 ms) and a round */
    g.e[2] = s_elector(etcd->url, "two", "a2", 0);
    CHECK(s_wait_leader(&g, 3000) == next);
    t0 = zclock_mono();
    s_abandon(&g.e[next]);
    int third = s_wait_leader(&g, 6000);
    took = zclock_mono() - t0;
    CHECK(third == 2);
    CHECK(took >= round && took <= (ttl + 500 + 2 * round) * s_scale());
    if (third >= 0) {
        sam_elect_state(g.e[third], &st);
        CHECK(st.epoch > second);
    }
done:
    CHECK(g.overlap == 0 && g.epochs_rose);
    for (int i = 0; i < g.n; i++)
        sam_elect_destroy(&g.e[i]);
    sam_http_destroy(&http);
    sam_metrics_destroy(&metrics);
}

/* Three electors: the highest position wins; a handover waits for its target; a handover
   that cannot complete is given up; etcd killed and back. */
static void s_three_test(s_etcd_t *etcd, const char *closed)
{
    const int ttl = 1000, round = ttl / 4;
    s_group_t g = {.n = 3, .epochs_rose = true};
    const char *names[] = {"b0", "b1", "b2"};
    for (int i = 0; i < 3; i++)
        g.e[i] = s_elector(etcd->url, "three", names[i], 1500);
    int l = s_wait_leader(&g, 3000);
    CHECK(l >= 0);
    if (l < 0) goto done;
    int low = (l + 1) % 3, high = (l + 2) % 3;
    sam_elect_set_position(g.e[l], 10);
    sam_elect_set_position(g.e[high], 10);
    sam_elect_set_position(g.e[low], 3);
    s_watch_for(&g, 3 * round); /* every position published */

    /* the lower one does not win over the higher — even when the higher is slow to notice
       (stalled for half a ttl: its member key stands, and the lower must wait for it) */
    unsigned low_led = s_leaderships(g.e[low]);
    s_pause(g.e[high], ttl / 2);
    sam_elect_destroy(&g.e[l]);
    int now_l = s_wait_leader(&g, 3000);
    CHECK(now_l == high);
    CHECK(s_leaderships(g.e[low]) == low_led);
    if (now_l != high) goto done;
    sam_elect_state_t st;
    sam_elect_state(g.e[low], &st);
    CHECK(st.role == SAM_ELECT_FOLLOWER && strcmp(st.leader, names[high]) == 0);
    uint64_t epoch = st.epoch;

    /* handover to the lagging one, asked on its side (as samctl promote --instance does):
       the leader stops writing at once, and resigns only once the target has caught up */
    g.e[l] = s_elector(etcd->url, "three", names[l], 1500);
    sam_elect_set_position(g.e[l], 1);
    CHECK(s_wait_leader(&g, 3000) == high);
    unsigned high_led = s_leaderships(g.e[high]), l_led = s_leaderships(g.e[l]);
    CHECK(sam_elect_handover(g.e[low], names[low]) == 0);
    int64_t until = zclock_mono() + (int64_t)(2000 * s_scale());
    while (zclock_mono() < until && sam_elect_may_write(g.e[high], zclock_mono()))
        s_watch(&g), zclock_sleep(10);
    sam_elect_state(g.e[high], &st);
    CHECK(!sam_elect_may_write(g.e[high], zclock_mono()) && st.role == SAM_ELECT_LEADER &&
          strcmp(st.handover, names[low]) == 0);
    s_watch_for(&g, 3 * round);
    sam_elect_state(g.e[high], &st);
    CHECK(st.role == SAM_ELECT_LEADER && !sam_elect_may_write(g.e[high], zclock_mono()));
    sam_elect_set_position(g.e[low], 10);
    int to = s_wait_leader(&g, 3000);
    CHECK(to == low);
    if (to != low) goto done;
    sam_elect_state(g.e[low], &st);
    CHECK(st.epoch > epoch && st.handover[0] == 0);
    epoch = st.epoch;
    /* only the target campaigned: the old leader did not lead again, nor did the third */
    CHECK(s_leaderships(g.e[high]) == high_led && s_leaderships(g.e[l]) == l_led);
    s_watch_for(&g, 2 * round);
    sam_elect_state(g.e[high], &st);
    CHECK(st.role == SAM_ELECT_FOLLOWER && st.handover[0] == 0);

    /* a handover whose target never catches up is given up after handover_ms (1.5 s here):
       the leader writes again, with its epoch */
    CHECK(sam_elect_handover(g.e[low], names[l]) == 0); /* position 1 < 10 */
    until = zclock_mono() + (int64_t)(2000 * s_scale());
    while (zclock_mono() < until && sam_elect_may_write(g.e[low], zclock_mono()))
        s_watch(&g), zclock_sleep(10);
    CHECK(!sam_elect_may_write(g.e[low], zclock_mono()));
    int64_t t0 = zclock_mono();
    CHECK(s_wait_leader(&g, 4000) == low);
    int64_t took = zclock_mono() - t0;
    CHECK(took >= 1000 && took <= (1500 + 3 * round) * s_scale());
    sam_elect_state(g.e[low], &st);
    CHECK(st.epoch == epoch && st.handover[0] == 0);

    /* asked by a process that is no member (samctl promote): to the other one at 10 */
    sam_elect_opts_t ask = {.endpoints = etcd->url, .prefix = "/selftest", .service = "three"};
    char err[200];
    CHECK(sam_elect_ask_handover(&ask, names[high], err, sizeof err) == 0 && !err[0]);
    CHECK(s_wait_for(&g, high, 3000));
    sam_elect_state(g.e[high], &st);
    CHECK(st.epoch > epoch);
    CHECK(sam_elect_ask_handover(&ask, "no/such", err, sizeof err) == -1 &&
          strstr(err, "--instance"));
    ask.endpoints = closed;
    CHECK(sam_elect_ask_handover(&ask, names[low], err, sizeof err) == -1 &&
          strstr(err, "did not answer"));
    ask.service = "";
    CHECK(sam_elect_ask_handover(&ask, names[low], err, sizeof err) == -1 && err[0]);
    int lead = high;

    /* etcd killed: the leader's may_write is false before ttl has passed since its last
       keepalive (which was sent before the kill); no one else may write meanwhile */
    int64_t killed = zclock_mono();
    s_etcd_kill(etcd);
    CHECK(!sam_elect_may_write(g.e[lead], killed + ttl));
    int late = 0; /* polls at killed + ttl or later that found it allowed to write */
    until = killed + 3 * ttl;
    while (zclock_mono() < until) {
        s_watch(&g);
        int64_t at = zclock_mono();
        if (at >= killed + ttl && sam_elect_may_write(g.e[lead], at)) late++;
        zclock_sleep(5);
    }
    CHECK(late == 0);
    for (int i = 0; i < 3; i++) {
        sam_elect_state(g.e[i], &st);
        CHECK(!st.reachable && !sam_elect_may_write(g.e[i], zclock_mono()));
    }

    /* etcd back: a leader again */
    CHECK(s_etcd_start(etcd));
    CHECK(s_wait_leader(&g, 6000) >= 0);
    for (int i = 0; i < 3; i++) {
        until = zclock_mono() + (int64_t)(2000 * s_scale());
        do
            sam_elect_state(g.e[i], &st);
        while (!st.reachable && zclock_mono() < until && (zclock_sleep(10), true));
        CHECK(st.reachable);
    }
done:
    CHECK(g.overlap == 0 && g.epochs_rose);
    for (int i = 0; i < g.n; i++)
        sam_elect_destroy(&g.e[i]);
}

int sam_elect_selftest(const char *scratch)
{
    s_etcd_t etcd = {0};
    if (!s_etcd_program(etcd.program, sizeof etcd.program)) {
        printf("sam_elect_selftest: skipped: no etcd program (Debian package etcd-server; "
               "or set SAMORDNA_ETCD)\n");
        return 1;
    }
    int failures = sam_testkit_failures();
    snprintf(etcd.dir, sizeof etcd.dir, "%s/etcd", scratch);
    zdir_t *old = zdir_new(etcd.dir, NULL); /* an earlier run's etcd: every run starts empty */
    if (old) zdir_remove(old, true);
    zdir_destroy(&old);
    zsys_dir_create("%s", etcd.dir);
    int port[3]; /* etcd's clients, its peers, and one where nothing listens */
    s_free_ports(port, 3);
    snprintf(etcd.url, sizeof etcd.url, "http://127.0.0.1:%d", port[0]);
    snprintf(etcd.peer, sizeof etcd.peer, "http://127.0.0.1:%d", port[1]);
    char closed_url[64];
    snprintf(closed_url, sizeof closed_url, "http://127.0.0.1:%d", port[2]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    bool up = s_etcd_start(&etcd);
    CHECK(up);
    if (up) {
        s_options_test(etcd.url);
        s_cold_test(&etcd);
        s_two_test(&etcd, closed_url);
        s_three_test(&etcd, closed_url);
    }
    s_etcd_kill(&etcd);
    curl_global_cleanup();
    return sam_testkit_failures() == failures ? 0 : -1;
}
