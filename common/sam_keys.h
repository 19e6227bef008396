/*  sam_keys.h — CURVE certificates of samordna: who holds a key, and what they may do.

    A certificate is a CZMQ zcert pair: NAME.cert (public key and metadata, safe to copy)
    and NAME.cert_secret (both keys; stays with its holder). Its metadata names
        agency = <agency id>     lowercase [a-z0-9-]{1,64}
        role   = admin | publisher | reader | service | gateway
                 (broker: the broker's own certificate; gateway: may present the caller it
                 verified with each request, Request.on_behalf, docs/security.md)
        services = <name>[,<name>…]   a service certificate only: the services it may offer
                                      (checked by the broker at READY; a service certificate
                                      without it offers nothing)
    The broker trusts the public certificates in its --curve-dir; a service, samctl or any
    client presents its secret certificate (--cert) and pins the broker's public key
    (--server-key, the Z85 key itself or a certificate file holding it).

    sam_keyring_t is the broker's view of its certificate directory: public key → agency and
    role, reloaded when the directory changes (checked at most every refresh call), so that
    removing a certificate revokes its key for every request that follows, on connections
    that were already open too.
*/
#ifndef SAM_KEYS_H
#define SAM_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define SAM_KEY_Z85_LEN 40 /* a Z85 CURVE key, without the terminating NUL */

/* True when `id` is a valid agency id: lowercase [a-z0-9-]{1,64}. */
bool sam_keys_agency_ok(const char *id);

/* True when `role` may be written into a certificate: admin, publisher, reader, service,
   gateway, broker. */
bool sam_keys_role_ok(const char *role);

/*  Creates a new CURVE key pair with metadata agency/role (and, for role service, the
    services it may offer: required there, refused elsewhere) and writes DIR/NAME.cert and
    DIR/NAME.cert_secret (mode 0600). Refuses to overwrite either file. Returns 0, or -1
    with the reason in err. On success `public_key` (SAM_KEY_Z85_LEN + 1 bytes, may be NULL)
    receives the Z85 public key. */
int sam_keys_new(const char *dir, const char *name, const char *agency, const char *role,
                 const char *services, char *public_key, char *err, size_t errlen);

/*  True when `services` is a comma-separated list of service names ([a-z0-9.-]{1,64} each,
    not "mmi.*"), at least one. */
bool sam_keys_services_ok(const char *services);

/*  True when the comma-separated `services` of a certificate names `service`. */
bool sam_keys_may_offer(const char *services, const char *service);

/*  The broker's public key from `arg`: a Z85 key of 40 characters, or the path of a
    certificate file (public or secret) holding it. Writes it to out (SAM_KEY_Z85_LEN + 1
    bytes). Returns 0, or -1 with the reason in err. */
int sam_keys_server_key(const char *arg, char *out, char *err, size_t errlen);

/*  Checks that `path` is a usable secret certificate (both keys present). Returns 0, or -1
    with the reason in err. */
int sam_keys_check_secret(const char *path, char *err, size_t errlen);

typedef struct sam_keyring_t sam_keyring_t;

/* What the keyring knows of one trusted key. Borrowed; valid until the next refresh. */
typedef struct {
    const char *agency;   /* "" when the certificate names none */
    const char *role;     /* "" when the certificate names none */
    const char *services; /* a service certificate's services list; "" when none */
    const char *file;     /* the certificate file it came from */
} sam_key_info_t;

/*  Opens a keyring over directory `dir` (loaded at once). Returns NULL when the directory
    cannot be read. */
sam_keyring_t *sam_keyring_new(const char *dir);
void sam_keyring_destroy(sam_keyring_t **self_p);

/*  Reloads the directory when it changed since the last load (file count, total size or
    newest modification time), or always when `force`. Returns the number of keys that were
    removed by the reload (0 when nothing changed), or -1 when the directory is unreadable
    (the keyring is then emptied: nobody is trusted). */
int sam_keyring_refresh(sam_keyring_t *self, bool force);

/* The trusted key `z85`, or NULL when it is not (or no longer) in the directory. */
const sam_key_info_t *sam_keyring_lookup(sam_keyring_t *self, const char *z85);

/* Number of trusted keys. */
size_t sam_keyring_size(sam_keyring_t *self);

/* Unit self-test over a scratch folder; returns 0 when every check passes. */
int sam_keys_selftest(const char *scratch, bool verbose);

#endif
