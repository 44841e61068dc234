#ifndef SG_CTL_REMOTE_H
#define SG_CTL_REMOTE_H
/*
 * remote.h: shieldctl's side of the daemon's HTTP API, on libshieldclient: choosing the
 * endpoint (--socket, --url, $SHIELDD_SOCKET, $SHIELDD_URL, the standard socket) and turning a
 * reply into JSON or into the daemon's own error message.
 */

#include <stdio.h>

#include <jansson.h>

#include "shieldclient.h"

/*
 * The endpoint string for --socket PATH (`sock`) or --url URL (`url`), both possibly NULL
 * (then sg_client_default_endpoint()). Returns a pointer that lives as long as the arguments
 * and the environment, or NULL after printing "CMD: give only one of --socket and --url".
 */
const char *ctl_endpoint(const char *cmd, const char *sock, const char *url);

/*
 * Send a request and parse a JSON reply into *out (new reference). A non-2xx status is printed
 * to stderr as "CMD: HTTP STATUS: MESSAGE" with the daemon's own message (its
 * {"error":{"message"}}, or the body as it came), like a transport error. Returns 0, or -1
 * after printing. *status (if not NULL) receives the HTTP status (0 when none came back).
 */
int ctl_remote_json(const char *cmd, sg_client *c, const char *method, const char *path,
                    json_t *body, json_t **out, int *status);

/* Open a client for `endpoint` with a timeout in ms (0: the default); prints on failure. */
sg_client *ctl_client_open(const char *cmd, const char *endpoint, int timeout_ms);

/* The daemon's message of an error reply body (its error.message), or NULL. Borrowed from j. */
const char *ctl_error_message(json_t *j);

/* The options of a subcommand that only asks the daemon. */
typedef struct ctl_remote_args {
    const char *sock; /* --socket PATH, or NULL */
    const char *url;  /* --url URL, or NULL */
    int timeout_ms;   /* --timeout MS; 0: the client's default */
    int as_json;      /* --json */
} ctl_remote_args;

/*
 * Parse `[--socket PATH | --url URL] [--timeout MS] [--json]` (--timeout only when
 * `with_timeout`) and no operands into *a for subcommand `cmd`; --help prints `usage` to stdout,
 * a wrong argument prints it to stderr. Returns -1 to go on, else the exit status to return now
 * (0 after --help, 2 after an error).
 */
int ctl_remote_args_parse(const char *cmd, int argc, char **argv, int with_timeout,
                          void (*usage)(FILE *), ctl_remote_args *a);

/*
 * Open a client (ctl_client_open) for the endpoint of --socket `sock` / --url `url`
 * (ctl_endpoint) into *c, caller frees with sg_client_free(); *ep (if not NULL) receives the
 * endpoint string. Returns 0, or after printing the exit status: 2 if both options were given,
 * 1 if the client cannot be opened.
 */
int ctl_connect(const char *cmd, const char *sock, const char *url, int timeout_ms,
                sg_client **c, const char **ep);

#endif /* SG_CTL_REMOTE_H */
