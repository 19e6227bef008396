/*  cmd_status.c — samctl's commands of the status service.

      board     the pilot status board (also --as-of a past day)
      kinds     milestone kinds; `kinds define` adds or relabels one
      milestone reach / revert / history
      meeting   log; meetings lists them
      step      add / update; steps lists them
      barrier   register / move / show; barriers lists them
      report    what changed in a period

    Writes build a CloudEvent (source --source, a fresh random id, the payload packed in
    binary_data) and publish it with events.publish; reads call status.* queries. Tables by
    default, --json for machines (each reply message as a JSON object, field names as in
    status.proto).
*/
#include "samctl.h"

#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <czmq.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define FREE(m) protobuf_c_message_free_unpacked(&(m)->base, NULL)

/* ---- options ------------------------------------------------------------------------------ */

/* Command-line words after the sub-command: --name VALUE options, repeatable ones collected,
   and positionals. */
typedef struct {
    const char *names[16];
    const char *values[16];
    size_t n;
    const char *pos[8];
    size_t npos;
    const char *multi[64]; /* every value of the repeatable option */
    size_t nmulti;
    bool flags[4]; /* boolean flags, by their index in the flag list */
} s_args_t;

/* Parses argv[from..] with `opts` (space-separated option names taking a value), `flags`
   (names without a value), `multi` (the one repeatable option). Returns 0 or -1 with a
   message in err. */
static int s_parse(int argc, char **argv, int from, const char *opts, const char *flags,
                   const char *multi, s_args_t *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    for (int i = from; i < argc; i++) {
        const char *w = argv[i];
        if (strncmp(w, "--", 2) != 0) {
            if (a->npos == 8) return snprintf(err, errlen, "too many arguments"), -1;
            a->pos[a->npos++] = w;
            continue;
        }
        const char *name = w + 2;
        char pat[64];
        snprintf(pat, sizeof pat, " %s ", name);
        char hay[512];
        snprintf(hay, sizeof hay, " %s ", flags ? flags : "");
        if (strstr(hay, pat)) {
            /* index of the flag in the list */
            int idx = 0;
            for (const char *p = hay + 1; p < strstr(hay, pat) + 1; p++)
                if (*p == ' ') idx++;
            if (idx < 4) a->flags[idx] = true;
            continue;
        }
        snprintf(hay, sizeof hay, " %s ", opts);
        bool is_multi = multi && strcmp(name, multi) == 0;
        if (!is_multi && !strstr(hay, pat))
            return snprintf(err, errlen, "unknown option --%s", name), -1;
        if (i + 1 >= argc) return snprintf(err, errlen, "--%s needs a value", name), -1;
        if (is_multi) {
            if (a->nmulti < 64) a->multi[a->nmulti++] = argv[++i];
            continue;
        }
        if (a->n == 16) return snprintf(err, errlen, "too many options"), -1;
        a->names[a->n] = name;
        a->values[a->n++] = argv[++i];
    }
    return 0;
}

/* The value of --name, or "" when not given (proto3 strings: "" is absent). */
static const char *s_opt(const s_args_t *a, const char *name)
{
    for (size_t i = a->n; i-- > 0;)
        if (strcmp(a->names[i], name) == 0) return a->values[i];
    return "";
}

/* ---- JSON from any reply message ---------------------------------------------------------- */

static json_t *s_json_msg(const ProtobufCMessage *m);

static json_t *s_json_value(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return json_string(*(char *const *)p ? *(char *const *)p : "");
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer((json_int_t) * (const int64_t *)p);
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p ? s_json_msg(*(ProtobufCMessage *const *)p)
                                             : json_null();
    default:
        return json_null();
    }
}

static size_t s_elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return 8;
    default:
        return 4;
    }
}

static json_t *s_json_msg(const ProtobufCMessage *m)
{
    json_t *o = json_object();
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)(base + f->offset);
            json_t *ja = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(ja, s_json_value(f, arr + k * s_elem_size(f)));
            json_object_set_new(o, f->name, ja);
        } else
            json_object_set_new(o, f->name, s_json_value(f, base + f->offset));
    }
    return o;
}

static void s_print_json(const ProtobufCMessage *m)
{
    samctl_print_json(s_json_msg(m));
}

/* ---- text columns (UTF-8 aware: Norwegian labels hold æ, ø, å) ------------------------------ */

/* Prints s in exactly `width` columns: cut with '.' when longer, padded when shorter. */
static void s_cell(const char *s, int width)
{
    int cols = 0;
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *cut = NULL;
    size_t total = 0;
    for (const unsigned char *q = p; *q; q++)
        if ((*q & 0xC0) != 0x80) total++;
    if ((int)total <= width) {
        fputs(s, stdout);
        cols = (int)total;
    } else {
        for (const unsigned char *q = p; *q; q++) {
            if ((*q & 0xC0) != 0x80) {
                if (cols == width - 1) {
                    cut = q;
                    break;
                }
                cols++;
            }
        }
        fwrite(p, 1, (size_t)(cut - p), stdout);
        putchar('.');
        cols = width;
    }
    for (; cols < width; cols++)
        putchar(' ');
}

#define EV(name) "no.samordna.status." name

/* ---- board --------------------------------------------------------------------------------- */

/* A milestone label on two header lines of `w` columns: first word, then the rest. */
static void s_head_word(const char *label, int line, int w)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", label);
    char *sp = strchr(buf, ' ');
    if (line == 0) {
        if (sp) *sp = 0;
        s_cell(buf, w);
    } else
        s_cell(sp ? sp + 1 : "", w);
}

static void s_board_text(const Samordna__V1__BoardReply *b)
{
    const int W = 10;
    printf("Statustavle per %s\n\n", b->as_of);
    for (int line = 0; line < 2; line++) {
        s_cell(line ? "" : "Pilot", 14);
        s_cell(line ? "" : "Kommune", 15);
        s_cell(line ? "" : "Utfordring", 25);
        s_cell(line ? "" : "Ledes av", 15);
        for (size_t k = 0; k < b->n_kinds; k++) {
            s_head_word(b->kinds[k]->label, line, W);
            putchar(' ');
        }
        s_cell(line ? "" : "Fase", 21);
        s_cell(line ? "" : "Siste møte", 12);
        printf("%s\n", line ? "" : "Hindre");
    }
    for (size_t r = 0; r < b->n_rows; r++) {
        const Samordna__V1__BoardRow *row = b->rows[r];
        s_cell(row->pilot, 13);
        putchar(' ');
        s_cell(row->municipality_name, 14);
        putchar(' ');
        s_cell(row->challenge, 24);
        putchar(' ');
        s_cell(row->investment_leader, 14);
        putchar(' ');
        for (size_t k = 0; k < row->n_cells; k++) {
            s_cell(*row->cells[k]->date ? row->cells[k]->date : "-", W);
            putchar(' ');
        }
        s_cell(*row->phase_label ? row->phase_label : "-", 20);
        putchar(' ');
        s_cell(*row->last_meeting_date ? row->last_meeting_date : "-", 11);
        printf(" %u\n", row->open_barriers);
    }
    if (b->n_rows == 0) printf("(no pilots)\n");
}

/* board [--as-of YYYY-MM-DD] [--pilot ID] */
int samctl_cmd_board(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "board [--as-of YYYY-MM-DD] [--pilot ID]";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1, "as-of pilot", NULL, NULL, &a, err, sizeof err) || a.npos)
        return samctl_usage("board", usage, a.npos ? "unexpected argument" : err);
    Samordna__V1__BoardRequest req = SAMORDNA__V1__BOARD_REQUEST__INIT;
    req.as_of = (char *)s_opt(&a, "as-of");
    req.pilot = (char *)s_opt(&a, "pilot");
    Samordna__V1__BoardReply *b = (Samordna__V1__BoardReply *)samctl_call(
        ctl, "status", "status.board", &req.base, &samordna__v1__board_reply__descriptor);
    if (!b) return 1;
    if (ctl->json)
        s_print_json(&b->base);
    else
        s_board_text(b);
    FREE(b);
    return 0;
}

/* ---- kinds --------------------------------------------------------------------------------- */

/* kinds | kinds define ID --label LABEL --order N */
int samctl_cmd_kinds(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "kinds [define ID --label LABEL --order N]";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1, "label order", NULL, NULL, &a, err, sizeof err))
        return samctl_usage("kinds", usage, err);
    if (a.npos >= 1 && strcmp(a.pos[0], "define") == 0) {
        if (a.npos != 2) return samctl_usage("kinds", usage, "name the kind");
        Samordna__V1__MilestoneKind k = SAMORDNA__V1__MILESTONE_KIND__INIT;
        k.id = (char *)a.pos[1];
        k.label = (char *)s_opt(&a, "label");
        k.order = (uint32_t)strtoul(s_opt(&a, "order"), NULL, 10);
        return samctl_publish(ctl, "status", EV("milestone_kind.defined"), NULL, k.id, &k.base);
    }
    if (a.npos) return samctl_usage("kinds", usage, "unexpected argument");
    Samordna__V1__MilestoneKindsReply *r = (Samordna__V1__MilestoneKindsReply *)samctl_call(
        ctl, "status", "status.kinds.list", NULL, &samordna__v1__milestone_kinds_reply__descriptor);
    if (!r) return 1;
    if (ctl->json)
        s_print_json(&r->base);
    else
        for (size_t i = 0; i < r->n_kinds; i++)
            printf("%3u  %-24s %s\n", r->kinds[i]->order, r->kinds[i]->id, r->kinds[i]->label);
    FREE(r);
    return 0;
}

/* ---- milestones ---------------------------------------------------------------------------- */

/* milestone reach PILOT KIND --date D [--actor A] [--evidence TEXT]
   milestone revert PILOT KIND --date D --reason TEXT [--actor A]
   milestone history PILOT */
int samctl_cmd_milestone(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "milestone reach PILOT KIND --date D [--actor AGENCY] [--evidence TEXT]\n"
                        "       samctl milestone revert PILOT KIND --date D --reason TEXT "
                        "[--actor AGENCY]\n"
                        "       samctl milestone history PILOT";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1, "date actor evidence reason", NULL, NULL, &a, err, sizeof err))
        return samctl_usage("milestone", usage, err);
    const char *sub = a.npos ? a.pos[0] : "";
    if (strcmp(sub, "history") == 0 && a.npos == 2) {
        Samordna__V1__MilestoneHistoryRequest req = SAMORDNA__V1__MILESTONE_HISTORY_REQUEST__INIT;
        req.pilot = (char *)a.pos[1];
        Samordna__V1__MilestoneHistoryReply *r = (Samordna__V1__MilestoneHistoryReply *)samctl_call(
            ctl, "status", "status.milestones.history", &req.base,
            &samordna__v1__milestone_history_reply__descriptor);
        if (!r) return 1;
        if (ctl->json)
            s_print_json(&r->base);
        else
            for (size_t i = 0; i < r->n_changes; i++) {
                Samordna__V1__MilestoneChange *c = r->changes[i];
                printf("%s  %-8s %-24s %-14s %s\n", c->date, c->reached ? "reached" : "reverted",
                       c->kind, c->actor, c->reached ? c->evidence : c->reason);
            }
        FREE(r);
        return 0;
    }
    if ((strcmp(sub, "reach") != 0 && strcmp(sub, "revert") != 0) || a.npos != 3)
        return samctl_usage("milestone", usage, "reach, revert or history, with pilot and kind");
    char subject[160];
    snprintf(subject, sizeof subject, "%s/%s", a.pos[1], a.pos[2]);
    if (strcmp(sub, "reach") == 0) {
        Samordna__V1__MilestoneReached m = SAMORDNA__V1__MILESTONE_REACHED__INIT;
        m.pilot = (char *)a.pos[1];
        m.kind = (char *)a.pos[2];
        m.date = (char *)s_opt(&a, "date");
        m.actor = (char *)s_opt(&a, "actor");
        m.evidence = (char *)s_opt(&a, "evidence");
        return samctl_publish(ctl, "status", EV("milestone.reached"), NULL, subject, &m.base);
    }
    Samordna__V1__MilestoneReverted m = SAMORDNA__V1__MILESTONE_REVERTED__INIT;
    m.pilot = (char *)a.pos[1];
    m.kind = (char *)a.pos[2];
    m.date = (char *)s_opt(&a, "date");
    m.actor = (char *)s_opt(&a, "actor");
    m.reason = (char *)s_opt(&a, "reason");
    return samctl_publish(ctl, "status", EV("milestone.reverted"), NULL, subject, &m.base);
}

/* ---- meetings ------------------------------------------------------------------------------ */

/* meeting log ID --kind K --date D [--pilot P | --municipality M] [--title T]
   [--participant A]... [--notes N] [--monthly-until D] */
int samctl_cmd_meeting(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "meeting log ID --kind KIND --date D [--pilot P | --municipality M] "
                        "[--title T] [--participant WHO]... [--notes TEXT] [--monthly-until D]";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1, "kind date pilot municipality title notes monthly-until", NULL,
                "participant", &a, err, sizeof err))
        return samctl_usage("meeting", usage, err);
    if (a.npos != 2 || strcmp(a.pos[0], "log") != 0)
        return samctl_usage("meeting", usage, "log and a meeting id");
    Samordna__V1__MeetingLogged m = SAMORDNA__V1__MEETING_LOGGED__INIT;
    m.id = (char *)a.pos[1];
    m.kind = (char *)s_opt(&a, "kind");
    m.date = (char *)s_opt(&a, "date");
    m.pilot = (char *)s_opt(&a, "pilot");
    m.municipality = (char *)s_opt(&a, "municipality");
    m.title = (char *)s_opt(&a, "title");
    m.notes = (char *)s_opt(&a, "notes");
    m.monthly_until = (char *)s_opt(&a, "monthly-until");
    m.n_participants = a.nmulti;
    m.participants = (char **)a.multi;
    return samctl_publish(ctl, "status", EV("meeting.logged"), NULL, m.id, &m.base);
}

/* meetings [--pilot P | --municipality M] [--from D] [--to D] [--kind K] [--page-size N]
   [--page-token T] */
int samctl_cmd_meetings(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "meetings [--pilot P | --municipality M] [--from D] [--to D] [--kind K] "
                        "[--page-size N] [--page-token T]";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1, "pilot municipality from to kind page-size page-token", NULL, NULL,
                &a, err, sizeof err) ||
        a.npos)
        return samctl_usage("meetings", usage, a.npos ? "unexpected argument" : err);
    Samordna__V1__MeetingsRequest req = SAMORDNA__V1__MEETINGS_REQUEST__INIT;
    req.pilot = (char *)s_opt(&a, "pilot");
    req.municipality = (char *)s_opt(&a, "municipality");
    req.from = (char *)s_opt(&a, "from");
    req.to = (char *)s_opt(&a, "to");
    req.kind = (char *)s_opt(&a, "kind");
    req.page_size = (uint32_t)strtoul(s_opt(&a, "page-size"), NULL, 10);
    req.page_token = (char *)s_opt(&a, "page-token");
    Samordna__V1__MeetingsReply *r =
        (Samordna__V1__MeetingsReply *)samctl_call(ctl, "status", "status.meetings.list", &req.base,
                                                   &samordna__v1__meetings_reply__descriptor);
    if (!r) return 1;
    if (ctl->json)
        s_print_json(&r->base);
    else {
        for (size_t i = 0; i < r->n_meetings; i++) {
            Samordna__V1__Meeting *m = r->meetings[i];
            printf("%s  ", m->date);
            s_cell(m->kind, 15);
            s_cell(*m->pilot ? m->pilot : *m->municipality ? m->municipality : "(programmet)", 16);
            printf("%s\n", m->title);
        }
        if (*r->next_page_token) printf("(more: --page-token %s)\n", r->next_page_token);
    }
    FREE(r);
    return 0;
}

/* ---- steps --------------------------------------------------------------------------------- */

/* step add PILOT ID --title T --owner A [--due D] [--state S] [--date D]
   step update PILOT ID --date D [--title T] [--owner A] [--due D] [--state S] [--note N] */
int samctl_cmd_step(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "step add PILOT ID --title T --owner AGENCY [--due D] [--state S] "
                        "[--date D]\n"
                        "       samctl step update PILOT ID --date D [--title T] [--owner A] "
                        "[--due D] [--state S] [--note N]";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1, "title owner due state date note", NULL, NULL, &a, err, sizeof err))
        return samctl_usage("step", usage, err);
    if (a.npos != 3) return samctl_usage("step", usage, "add or update, a pilot and a step id");
    char subject[160];
    snprintf(subject, sizeof subject, "%s/%s", a.pos[1], a.pos[2]);
    if (strcmp(a.pos[0], "add") == 0) {
        Samordna__V1__PlanStepAdded m = SAMORDNA__V1__PLAN_STEP_ADDED__INIT;
        m.pilot = (char *)a.pos[1];
        m.id = (char *)a.pos[2];
        m.title = (char *)s_opt(&a, "title");
        m.owner = (char *)s_opt(&a, "owner");
        m.due = (char *)s_opt(&a, "due");
        m.state = (char *)s_opt(&a, "state");
        m.date = (char *)s_opt(&a, "date");
        return samctl_publish(ctl, "status", EV("step.added"), NULL, subject, &m.base);
    }
    if (strcmp(a.pos[0], "update") != 0) return samctl_usage("step", usage, "add or update");
    Samordna__V1__PlanStepUpdated m = SAMORDNA__V1__PLAN_STEP_UPDATED__INIT;
    m.pilot = (char *)a.pos[1];
    m.id = (char *)a.pos[2];
    m.title = (char *)s_opt(&a, "title");
    m.owner = (char *)s_opt(&a, "owner");
    m.due = (char *)s_opt(&a, "due");
    m.state = (char *)s_opt(&a, "state");
    m.date = (char *)s_opt(&a, "date");
    m.note = (char *)s_opt(&a, "note");
    return samctl_publish(ctl, "status", EV("step.updated"), NULL, subject, &m.base);
}

/* steps [PILOT] [--state S] */
int samctl_cmd_steps(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "steps [PILOT] [--state S]";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1, "state", NULL, NULL, &a, err, sizeof err) || a.npos > 1)
        return samctl_usage("steps", usage, a.npos > 1 ? "one pilot at most" : err);
    Samordna__V1__PlanStepsRequest req = SAMORDNA__V1__PLAN_STEPS_REQUEST__INIT;
    req.pilot = (char *)(a.npos ? a.pos[0] : "");
    req.state = (char *)s_opt(&a, "state");
    Samordna__V1__PlanStepsReply *r = (Samordna__V1__PlanStepsReply *)samctl_call(
        ctl, "status", "status.steps.list", &req.base, &samordna__v1__plan_steps_reply__descriptor);
    if (!r) return 1;
    if (ctl->json)
        s_print_json(&r->base);
    else
        for (size_t i = 0; i < r->n_steps; i++) {
            Samordna__V1__PlanStep *s = r->steps[i];
            s_cell(s->pilot, 14);
            s_cell(s->id, 16);
            s_cell(s->state, 12);
            s_cell(s->owner, 14);
            s_cell(*s->due ? s->due : "-", 11);
            printf("%s\n", s->title);
        }
    FREE(r);
    return 0;
}

/* ---- barriers ------------------------------------------------------------------------------ */

static void s_barrier_text(const Samordna__V1__Barrier *b)
{
    printf("%s: %s\n", b->id, b->title);
    printf("  state      %s\n", b->state);
    printf("  found in   %s%s%s\n", b->pilot, *b->pilot && *b->municipality ? " / " : "",
           b->municipality);
    printf("  raised by  %s\n", b->raised_by);
    printf("  concerns   %s%s%s", b->concerns, *b->reference ? ": " : "", b->reference);
    if (*b->concerns_agency) printf(" (%s)", b->concerns_agency);
    printf("\n");
    if (*b->description) printf("  %s\n", b->description);
    for (size_t i = 0; i < b->n_history; i++)
        printf("  %s  %-18s %-14s %s\n", b->history[i]->date, b->history[i]->state,
               b->history[i]->by, b->history[i]->note);
}

/* barrier register ID --title T --concerns rule|practice|allocation_letter --date D
     [--pilot P] [--municipality M] [--raised-by A] [--reference R] [--concerns-agency A]
     [--description TEXT]
   barrier move ID STATE --date D [--by A] [--note N]
   barrier show ID */
int samctl_cmd_barrier(samctl_t *ctl, int argc, char **argv)
{
    const char *usage =
        "barrier register ID --title T --concerns rule|practice|allocation_letter --date D "
        "[--pilot P] [--municipality M] [--raised-by AGENCY] [--reference R] "
        "[--concerns-agency AGENCY] [--description TEXT]\n"
        "       samctl barrier move ID STATE --date D [--by AGENCY] [--note TEXT]\n"
        "       samctl barrier show ID";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1,
                "title concerns date pilot municipality raised-by reference concerns-agency "
                "description by note",
                NULL, NULL, &a, err, sizeof err))
        return samctl_usage("barrier", usage, err);
    const char *sub = a.npos ? a.pos[0] : "";
    if (strcmp(sub, "register") == 0 && a.npos == 2) {
        Samordna__V1__BarrierRegistered m = SAMORDNA__V1__BARRIER_REGISTERED__INIT;
        m.id = (char *)a.pos[1];
        m.title = (char *)s_opt(&a, "title");
        m.description = (char *)s_opt(&a, "description");
        m.pilot = (char *)s_opt(&a, "pilot");
        m.municipality = (char *)s_opt(&a, "municipality");
        m.raised_by = (char *)s_opt(&a, "raised-by");
        m.concerns = (char *)s_opt(&a, "concerns");
        m.reference = (char *)s_opt(&a, "reference");
        m.concerns_agency = (char *)s_opt(&a, "concerns-agency");
        m.date = (char *)s_opt(&a, "date");
        return samctl_publish(ctl, "status", EV("barrier.registered"), NULL, m.id, &m.base);
    }
    if (strcmp(sub, "move") == 0 && a.npos == 3) {
        Samordna__V1__BarrierMoved m = SAMORDNA__V1__BARRIER_MOVED__INIT;
        m.id = (char *)a.pos[1];
        m.state = (char *)a.pos[2];
        m.date = (char *)s_opt(&a, "date");
        m.by = (char *)s_opt(&a, "by");
        m.note = (char *)s_opt(&a, "note");
        return samctl_publish(ctl, "status", EV("barrier.moved"), NULL, m.id, &m.base);
    }
    if (strcmp(sub, "show") == 0 && a.npos == 2) {
        Samordna__V1__StatusGetRequest req = SAMORDNA__V1__STATUS_GET_REQUEST__INIT;
        req.id = (char *)a.pos[1];
        Samordna__V1__Barrier *b = (Samordna__V1__Barrier *)samctl_call(
            ctl, "status", "status.barriers.get", &req.base, &samordna__v1__barrier__descriptor);
        if (!b) return 1;
        if (ctl->json)
            s_print_json(&b->base);
        else
            s_barrier_text(b);
        FREE(b);
        return 0;
    }
    return samctl_usage("barrier", usage, "register, move or show, with a barrier id");
}

/* barriers [--state S] [--pilot P] [--municipality M] [--raised-by A] [--concerns C] [--open]
   [--page-size N] [--page-token T] */
int samctl_cmd_barriers(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "barriers [--state S] [--pilot P] [--municipality M] [--raised-by A] "
                        "[--concerns C] [--open] [--page-size N] [--page-token T]";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1, "state pilot municipality raised-by concerns page-size page-token",
                "open", NULL, &a, err, sizeof err) ||
        a.npos)
        return samctl_usage("barriers", usage, a.npos ? "unexpected argument" : err);
    Samordna__V1__BarriersRequest req = SAMORDNA__V1__BARRIERS_REQUEST__INIT;
    req.state = (char *)s_opt(&a, "state");
    req.pilot = (char *)s_opt(&a, "pilot");
    req.municipality = (char *)s_opt(&a, "municipality");
    req.raised_by = (char *)s_opt(&a, "raised-by");
    req.concerns = (char *)s_opt(&a, "concerns");
    req.open_only = a.flags[0];
    req.page_size = (uint32_t)strtoul(s_opt(&a, "page-size"), NULL, 10);
    req.page_token = (char *)s_opt(&a, "page-token");
    Samordna__V1__BarriersReply *r =
        (Samordna__V1__BarriersReply *)samctl_call(ctl, "status", "status.barriers.list", &req.base,
                                                   &samordna__v1__barriers_reply__descriptor);
    if (!r) return 1;
    if (ctl->json)
        s_print_json(&r->base);
    else {
        for (size_t i = 0; i < r->n_barriers; i++) {
            Samordna__V1__Barrier *b = r->barriers[i];
            const char *since = b->n_history ? b->history[b->n_history - 1]->date : "";
            s_cell(b->id, 18);
            s_cell(b->state, 18);
            printf("%s  ", since);
            s_cell(*b->pilot ? b->pilot : b->municipality, 14);
            s_cell(b->raised_by, 14);
            s_cell(b->concerns, 18);
            printf("%s\n", b->title);
        }
        if (*r->next_page_token) printf("(more: --page-token %s)\n", r->next_page_token);
    }
    FREE(r);
    return 0;
}

/* ---- report -------------------------------------------------------------------------------- */

/* report --from D --to D */
int samctl_cmd_report(samctl_t *ctl, int argc, char **argv)
{
    const char *usage = "report --from YYYY-MM-DD --to YYYY-MM-DD";
    s_args_t a;
    char err[128];
    if (s_parse(argc, argv, 1, "from to", NULL, NULL, &a, err, sizeof err) || a.npos)
        return samctl_usage("report", usage, a.npos ? "unexpected argument" : err);
    Samordna__V1__StatusReportRequest req = SAMORDNA__V1__STATUS_REPORT_REQUEST__INIT;
    req.from = (char *)s_opt(&a, "from");
    req.to = (char *)s_opt(&a, "to");
    Samordna__V1__StatusReportReply *r = (Samordna__V1__StatusReportReply *)samctl_call(
        ctl, "status", "status.report", &req.base, &samordna__v1__status_report_reply__descriptor);
    if (!r) return 1;
    if (ctl->json)
        s_print_json(&r->base);
    else {
        printf("Endringer %s – %s: %zu\n", r->from, r->to, r->n_changes);
        for (size_t i = 0; i < r->n_changes; i++) {
            Samordna__V1__StatusChange *c = r->changes[i];
            printf("%s  ", c->date);
            s_cell(c->what, 19);
            s_cell(*c->pilot ? c->pilot : *c->municipality ? c->municipality : "(programmet)", 14);
            printf("%s\n", c->summary);
        }
        if (r->truncated) printf("(cut at %zu changes: narrow the period)\n", r->n_changes);
    }
    FREE(r);
    return 0;
}
