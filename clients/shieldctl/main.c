/*
 * shieldctl: the command-line client. Each subcommand lives in clients/shieldctl/ctl_NAME.c and
 * defines `int ctl_NAME(int argc, char **argv)` (argv[0] is the command name; returns the exit
 * status) and `const char ctl_NAME_help[]` (a one-line summary). The Makefile discovers them into
 * build/gen/ctl_cmds.h.
 */
#include <stdio.h>
#include <string.h>

#define SG_CTL_CMD(name)                                                                           \
    int ctl_##name(int argc, char **argv);                                                         \
    extern const char ctl_##name##_help[];
#include "ctl_cmds.h"
#undef SG_CTL_CMD

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
#define SG_CTL_CMD(name) {#name, ctl_##name, ctl_##name##_help},
#include "ctl_cmds.h"
#undef SG_CTL_CMD
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: shieldctl COMMAND [OPTIONS...]\n\ncommands:\n");
    for (const struct command *c = commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->help);
    fprintf(f, "\n'shieldctl COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (const struct command *c = commands; c->name; c++)
        if (strcmp(argv[1], c->name) == 0)
            return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "shieldctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
