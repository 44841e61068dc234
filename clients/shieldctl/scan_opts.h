#ifndef SG_CTL_SCAN_OPTS_H
#define SG_CTL_SCAN_OPTS_H
/*
 * scan_opts.h: the getopt_long entries of the options that `shieldctl scan` takes and
 * `shieldctl eval` passes on to it, in one place so that the two commands cannot drift apart.
 * Use inside a `struct option` array initializer; the letters are what both switch on.
 */

#include <getopt.h>

#define CTL_SCAN_LONGOPTS                                                                          \
    {"in", required_argument, NULL, 'i'}, {"out", required_argument, NULL, 'o'},                   \
        {"format", required_argument, NULL, 'F'}, {"field", required_argument, NULL, 'f'},         \
        {"response-field", required_argument, NULL, 'r'},                                          \
        {"id-field", required_argument, NULL, 'I'}, {"policy", required_argument, NULL, 'p'},      \
        {"policies", required_argument, NULL, 'P'}, {"model", required_argument, NULL, 'm'},       \
        {"threads", required_argument, NULL, 't'}, {"precision", required_argument, NULL, 'x'},    \
        {"socket", required_argument, NULL, 'S'}, {"url", required_argument, NULL, 'U'},           \
        {"concurrency", required_argument, NULL, 'c'}, {"timeout", required_argument, NULL, 'T'}

#endif /* SG_CTL_SCAN_OPTS_H */
