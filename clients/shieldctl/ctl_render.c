/*
 * ctl_render.c: `shieldctl render`: print the exact prompt the model sees for one policy, or
 * with --ids its token ids, as the moderation module builds them.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int ctl_render(int argc, char **argv);

const char ctl_render_help[] = "print the exact prompt (or its token ids) for one policy";

static void usage(FILE *f)
{
    fprintf(f, "usage: shieldctl render [--model PATH] [--policies DIR] --policy NAME\n"
               "                        [--response TEXT] [--ids] TEXT|-\n"
               "\n"
               "Print the prompt of policy NAME for TEXT (\"-\": stdin) exactly as the model sees\n"
               "it (no newline added), or with --ids its token ids separated by spaces (this\n"
               "needs --model, whose tokenizer is used).\n");
}

int ctl_render(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"policies", required_argument, NULL, 'P'},
        {"policy", required_argument, NULL, 'p'},
        {"response", required_argument, NULL, 'r'},
        {"ids", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model_path = NULL;
    const char *dir = "policies";
    const char *name = NULL;
    const char *response = NULL;
    int ids_wanted = 0;
    sg_policy_set *set = NULL;
    const sg_policy *policy;
    sg_tok *tok = NULL;
    char *text = NULL;
    size_t text_len = 0;
    char *prompt = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int status = 1;
    int c;
    int rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_path = optarg;
            break;
        case 'P':
            dir = optarg;
            break;
        case 'p':
            name = optarg;
            break;
        case 'r':
            response = optarg;
            break;
        case 'i':
            ids_wanted = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || !name || (ids_wanted && !model_path)) {
        fprintf(stderr, "shieldctl render: %s\n",
                !name                        ? "--policy NAME is required"
                : ids_wanted && !model_path ? "--ids needs --model PATH"
                                            : "expected one TEXT (or -)");
        usage(stderr);
        return 2;
    }
    if (ctl_read_text(argv[optind], &text, &text_len) < 0)
        return 1;
    if (ctl_load("render", dir, NULL, NULL, NULL, &set, NULL, NULL) < 0)
        goto out;
    policy = sg_policy_find(set, name);
    if (!policy) {
        fprintf(stderr, "shieldctl render: no policy '%s' in %s\n", name, dir);
        goto out;
    }
    if (!ids_wanted) {
        rc = sg_moderate_render(set, policy, text, response, &prompt);
        if (rc < 0) {
            fprintf(stderr, "shieldctl render: %s\n", sg_engine_strerror(rc));
            goto out;
        }
        fwrite(prompt, 1, strlen(prompt), stdout);
        status = 0;
        goto out;
    }
    if (ctl_tok_open("render", model_path, &tok) < 0)
        goto out;
    rc = sg_moderate_tokenize(tok, set, policy, text, text_len, response,
                              response ? strlen(response) : 0, &ids, &n_ids);
    if (rc < 0) {
        fprintf(stderr, "shieldctl render: cannot tokenize: %s%s\n", sg_engine_strerror(rc),
                rc == SG_EINVAL ? " (is the text valid UTF-8?)" : "");
        goto out;
    }
    for (size_t i = 0; i < n_ids; i++)
        printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
    status = 0;

out:
    free(ids);
    free(prompt);
    sg_tok_free(tok);
    sg_policy_set_free(set);
    free(text);
    return status;
}
