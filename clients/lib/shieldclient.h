#ifndef SG_SHIELDCLIENT_H
#define SG_SHIELDCLIENT_H
/*
 * shieldclient.h: libshieldclient, a small HTTP/1.1 client for shieldd's API over a Unix socket
 * or TCP. No dependency beyond libc; JSON is the caller's business.
 *
 *     sg_client *c;
 *     sg_client_response r;
 *     char err[256];
 *
 *     if (sg_client_new(&c, "unix:/run/shieldd/shieldd.sock", NULL, err, sizeof err) < 0)
 *         die(err);
 *     if (sg_client_request(c, "POST", "/v1/classify", "{\"text\":\"hi\"}", 13, &r) < 0)
 *         die(sg_client_errmsg(c));
 *     printf("%d %.*s\n", r.status, (int)r.body_len, r.body);
 *     sg_client_response_free(&r);
 *     sg_client_free(c);
 *
 * Endpoints: "unix:PATH", a bare path starting with '/' or './', "http://HOST:PORT[/]" (IPv4, IPv6 in
 * brackets, or a name). Responses may use Content-Length, chunked transfer coding, or end at
 * close. A connection is kept alive between requests when the server allows it (and reopened
 * once, transparently, if the server closed it in the meantime). A handle is not thread-safe:
 * use one per thread.
 */

#include <stddef.h>

typedef enum sg_client_err {
    SG_CLIENT_OK = 0,
    SG_CLIENT_ENOMEM = -1,
    SG_CLIENT_EINVAL = -2,     /* bad endpoint or argument */
    SG_CLIENT_ECONNECT = -3,   /* could not connect */
    SG_CLIENT_ETIMEDOUT = -4,  /* connect or read timeout */
    SG_CLIENT_EIO = -5,        /* send/receive failed, connection closed early */
    SG_CLIENT_EPROTO = -6,     /* malformed HTTP response */
    SG_CLIENT_ERR_COUNT = 7,
} sg_client_err;

/* A static description of an sg_client_err. Never NULL. */
const char *sg_client_strerror(int err);

typedef struct sg_client_opts {
    int connect_timeout_ms; /* default 5000; <= 0: none */
    int timeout_ms;         /* per read/write wait; default 60000; <= 0: none */
    int keep_alive;         /* default 1 */
    size_t max_body;        /* largest response body accepted; default 64 MiB */
    const char *api_key;    /* sent as "Authorization: Bearer KEY"; NULL (default):
                               $SHIELDD_API_KEY when set and not empty, else none. Copied. */
} sg_client_opts;

sg_client_opts sg_client_opts_default(void);

typedef struct sg_client sg_client;

typedef struct sg_client_response {
    int status;           /* HTTP status code */
    char *body;           /* malloc'd, NUL-terminated (not counted in body_len) */
    size_t body_len;
    char *content_type;   /* malloc'd or NULL */
    int retry_after;      /* seconds from Retry-After, -1 if absent */
} sg_client_response;

/*
 * The default endpoint: $SHIELDD_SOCKET (as unix:PATH), else $SHIELDD_URL, else
 * "unix:/run/shieldd/shieldd.sock". Static or environment storage; never NULL.
 */
const char *sg_client_default_endpoint(void);

/*
 * Create a client for `endpoint` (see above); opts NULL: defaults. Does not connect yet.
 * Returns 0 and *out (caller frees with sg_client_free), or SG_CLIENT_EINVAL/ENOMEM with a
 * message in err.
 */
int sg_client_new(sg_client **out, const char *endpoint, const sg_client_opts *opts, char *err,
                  size_t errlen);
void sg_client_free(sg_client *c);

/* The message of the last failure on `c`, naming the endpoint. Never NULL. */
const char *sg_client_errmsg(const sg_client *c);

/*
 * Send one request (body may be NULL for none; a body is sent as application/json) and read
 * the whole response into *resp (the caller frees it with sg_client_response_free, also after
 * a failure). Any HTTP status is a success of this call: check resp->status. Returns 0 or a
 * negative sg_client_err (message in sg_client_errmsg).
 */
int sg_client_request(sg_client *c, const char *method, const char *path, const char *body,
                      size_t body_len, sg_client_response *resp);
void sg_client_response_free(sg_client_response *resp);

#endif /* SG_SHIELDCLIENT_H */
